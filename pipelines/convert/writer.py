"""Writing samples into a ``.beton`` with FFCV's ``DatasetWriter``: fields ``image``
(``RGBImageField``) and ``label`` (``IntField``, or an ``NDArrayField`` of multi-hot uint8
vectors), through a temporary file renamed only on success (``cleanup``).

FFCV's writer encodes samples in worker processes and its parent waits for a sample count
that a crashed worker never reports, so a sample must never fail inside a worker: images are
checked before writing (``images.check_all``), a worker that still cannot decode one flags
it and writes a stub (the conversion then fails), and the page is sized for the largest image.
"""
import multiprocessing
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..worker_processes import forks_start_as_workers
from .cleanup import partial_path, release_shared_memory, remove_stale_partials, segment_note
from .errors import ConversionError
from .images import read_rgb

# 'smart' stores an image raw while its pixels take at most this many bytes (up to 128x128
# RGB: CIFAR-like images stay lossless and cost no decode) and as JPEG above it (ImageNet-like
# images: ~10x smaller files). FFCV's own 'smart' has no threshold by default and then
# stores everything raw.
SMART_THRESHOLD = 128 * 128 * 3


class Samples:
    """What FFCV's writer workers index: sample ``i`` -> (RGB uint8 HWC array, label)."""

    def __init__(self, labels: Sequence[int]):
        # class indices, or multi-hot uint8 vectors (a CSV source: multi-label)
        self.labels = [label if isinstance(label, np.ndarray) else int(label) for label in labels]
        self.failed = multiprocessing.Value("b", 0)  # set by a worker that could not decode

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        np.random.seed(i)  # FFCV's 'proportion' mode draws np.random: same choice every run
        return self.image(i), self.labels[i]

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError


class FileSamples(Samples):
    def __init__(self, paths: Sequence[str], labels: Sequence[int]):
        super().__init__(labels)
        self.paths = list(paths)

    def image(self, i: int) -> np.ndarray:
        try:
            return read_rgb(self.paths[i])
        except Exception:  # a worker must not die (FFCV would hang): flag it, write a stub
            self.failed.value = 1
            return np.zeros((1, 1, 3), np.uint8)


class ArraySamples(Samples):
    def __init__(self, images: np.ndarray, labels: Sequence[int]):
        super().__init__(labels)
        self.images = images

    def image(self, i: int) -> np.ndarray:
        return self.images[i]


def page_size_for(largest_image: int) -> int:
    """FFCV's default page (8 MiB), doubled until twice the largest image's raw pixels fit:
    a sample larger than a page kills the writer's worker, and FFCV then waits forever. Twice,
    because a JPEG of a small noisy image at high quality can outgrow its raw pixels."""
    from ffcv.writer import MIN_PAGE_SIZE

    size = 4 * MIN_PAGE_SIZE
    while size < 2 * largest_image:
        size *= 2
    return size


def write_beton(out: Path, samples: Samples, *, write_mode: str, max_resolution: Optional[int],
                jpeg_quality: int, workers: int, page_size: int,
                compress_probability: float = 0.5) -> None:
    """Write ``samples`` to ``out`` through a temporary file that is renamed only on success;
    on any failure or interruption the temporary file and the writer's workers are removed."""
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import DatasetWriter

    vector = bool(samples.labels) and isinstance(samples.labels[0], np.ndarray)
    fields = {"image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution,
                                     smart_threshold=SMART_THRESHOLD, jpeg_quality=jpeg_quality,
                                     compress_probability=compress_probability),
              "label": NDArrayField(np.dtype("uint8"), samples.labels[0].shape) if vector
              else IntField()}
    remove_stale_partials(out)
    partial = partial_path(out)
    note = segment_note(partial)

    class NotingWriter(DatasetWriter):
        def prepare(self):  # FFCV creates its shared-memory segment here: note its name
            super().prepare()
            note.write_text(self.metadata_sm.name)

    before = set(multiprocessing.active_children())
    writer = NotingWriter(str(partial), fields, page_size=page_size, num_workers=workers)
    try:
        chunk = max(1, min(100, len(samples) // (4 * workers)))  # >= 4 chunks per worker
        with forks_start_as_workers():
            writer.from_indexed_dataset(samples, chunksize=chunk)
        if samples.failed.value:
            raise ConversionError("an image became unreadable while writing (was SRC modified "
                                  "during the conversion?); nothing written")
        os.replace(partial, out)
        note.unlink(missing_ok=True)
    except BaseException:
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
            process.join()
        release_shared_memory(writer)
        partial.unlink(missing_ok=True)
        note.unlink(missing_ok=True)
        raise
