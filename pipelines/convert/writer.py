"""Writing samples into a ``.beton`` with FFCV's ``DatasetWriter``: fields ``image``
(``RGBImageField``) and ``label`` (``IntField``, or an ``NDArrayField`` of multi-hot uint8
vectors) or ``mask`` (``operations.cpu.mask_field.MaskField``), through a temporary file
renamed only on success (``cleanup``).

FFCV's writer encodes samples in worker processes and its parent waits for a sample count
that a crashed worker never reports, so a sample must never fail inside a worker: images are
checked before writing (``images.check_all``), a worker that still cannot decode one flags
it and writes a stub (the conversion then fails), and the page is sized for the largest image.
"""
import multiprocessing
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..worker_processes import forks_start_as_workers
from .cleanup import partial_path, release_shared_memory, remove_stale_partials, segment_note
from .errors import ConversionError
from .images import read_rgb
from .masks import read_mask, resize_nearest, stored_size

# 'smart' stores an image raw while its pixels take at most this many bytes (up to 128x128
# RGB: CIFAR-like images stay lossless and cost no decode) and as JPEG above it (ImageNet-like
# images: ~10x smaller files). FFCV's own 'smart' has no threshold by default and then
# stores everything raw.
SMART_THRESHOLD = 128 * 128 * 3


class Samples:
    """What FFCV's writer workers index: sample ``i`` -> (RGB uint8 HWC array, its target)."""

    #: what ``image`` or ``target`` read, for the error of a file that failed while writing
    files = "an image"

    def __init__(self, targets: Sequence):
        self.targets = list(targets)
        self.failed = multiprocessing.Value("b", 0)  # set by a worker that could not decode

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        np.random.seed(i)  # FFCV's 'proportion' mode draws np.random: same choice every run
        return self.image(i), self.target(i)

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def target(self, i: int):
        """A class index, or a multi-hot uint8 vector (a CSV source: multi-label)."""
        label = self.targets[i]
        return label if isinstance(label, np.ndarray) else int(label)

    def fields(self) -> dict:
        """The .beton's fields besides ``image``: ``label``, an ``IntField``, or an
        ``NDArrayField`` of multi-hot vectors."""
        from ffcv.fields import IntField, NDArrayField

        first = self.targets[0] if self.targets else 0
        vector = isinstance(first, np.ndarray)
        return {"label": NDArrayField(np.dtype("uint8"), first.shape) if vector else IntField()}


class FileSamples(Samples):
    def __init__(self, paths: Sequence[str], labels: Sequence):
        super().__init__(labels)
        self.paths = list(paths)

    def image(self, i: int) -> np.ndarray:
        try:
            return read_rgb(self.paths[i])
        except Exception:  # a worker must not die (FFCV would hang): flag it, write a stub
            self.failed.value = 1
            return np.zeros((1, 1, 3), np.uint8)


class MaskSamples(FileSamples):
    """Image/mask file pairs: the target is the mask (field ``mask``, a ``MaskField``) as
    ``dtype``, shrunk by nearest neighbour to the size FFCV's RGBImageField shrinks the image
    to under ``max_resolution``."""

    files = "an image or mask"

    def __init__(self, pairs: Sequence[Tuple[str, str]], dtype: np.dtype,
                 max_resolution: Optional[int]):
        super().__init__([image for image, _ in pairs], [mask for _, mask in pairs])
        self.dtype, self.max_resolution = dtype, max_resolution

    def target(self, i: int) -> np.ndarray:
        try:
            ids = read_mask(self.targets[i])
        except Exception:  # as ``image``: flag it, write a stub
            self.failed.value = 1
            return np.zeros((1, 1), self.dtype)
        size = stored_size(*ids.shape, self.max_resolution)
        return resize_nearest(ids, *size).astype(self.dtype)

    def fields(self) -> dict:
        from operations.cpu.mask_field import MaskField

        return {"mask": MaskField()}


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
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    fields = {"image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution,
                                     smart_threshold=SMART_THRESHOLD, jpeg_quality=jpeg_quality,
                                     compress_probability=compress_probability),
              **samples.fields()}
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
            raise ConversionError(f"{samples.files} became unreadable while writing (was SRC "
                                  f"modified during the conversion?); nothing written")
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
