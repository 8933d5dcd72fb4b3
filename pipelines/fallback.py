"""Training without a .beton: a plain PyTorch DataLoader over an image folder that runs the
same compiled pipeline as the FFCV Loader, and the messages that say what that costs.

``FallbackLoader`` yields what ``CompiledPipeline.loader`` yields — ``(images, labels)``, images
(B, C, H, W) channels_last on the pipeline's device with the device stage's dtype, labels int64
(B,) — from the same ops with the same keyed draws:

- decoder: the image file decoded by PIL (RGB), cropped by the decoder's own keyed crop
  function (``random_resized_crop_box`` / ``center_crop_box``) and resized by FFCV's own
  ``resize_crop`` (OpenCV INTER_AREA), so there is no interpolation difference; ``decode`` keeps
  the image as is. Pixels differ from a .beton's only where ``pureffcv convert`` stored the
  image as JPEG (a lossy re-encoding) or where PIL and libjpeg-turbo decode a JPEG differently.
- CPU ops: each op's ``apply`` (its compiled batch function) on the stacked NHWC batch, with
  the samples' data-set indices (their position in the folder's ImageFolder order, which ``pureffcv
  convert`` also uses), run in the main process: Numba's parallel loops in forked DataLoader
  workers are not safe, so workers only decode.
- the plan's boundary steps as torch (to a tensor, float16 from its bit patterns when a CPU
  op produced float16, to the device, channels_last), then the device ops' ``apply``.

Batch ops (mixup, cutmix) are not applied here, as the Loader does not apply them either; the
DataModule does, after the batch reaches the device.
"""
import math
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from operations.errors import PureffcvError
from operations.host_rng import sample_key, stream_key

from .convert.errors import ConversionError
from .convert.folders import scan_image_folder
from .convert.images import read_rgb, readable
from .worker_processes import torch_worker_init


class FallbackError(PureffcvError, ValueError):
    """The fallback cannot run this folder or pipeline; ``str()`` is one line."""


class FallbackWarning(UserWarning):
    """Training reads an image folder through the slow fallback."""


def use_fallback(beton: Union[str, Path, None], image_folder: Union[str, Path, None]) -> bool:
    """True when a split's .beton does not exist but its image folder does."""
    return (beton is None or not Path(beton).is_file()) and \
        image_folder is not None and Path(image_folder).is_dir()


def warn_fallback(split: str, folder: Union[str, Path]) -> None:
    """Warn that ``split`` trains from an image folder through the fallback, what it costs
    and how to avoid it."""
    warnings.warn(FallbackWarning(
        f"{split}: no .beton file, so training reads the image folder {folder} through a plain "
        f"PyTorch DataLoader (PIL decoding in worker processes: slower than FFCV, 1.6x in "
        f"a 2-core measurement); convert it once with `pureffcv convert {folder} OUT.beton`, "
        f"or pass --convert to do that before training"), stacklevel=2)


class SkippedImagesWarning(FallbackWarning):
    """Some images of the folder cannot be decoded and are left out."""


#: skipped images a warning names one by one
NAMED = 5


def readable_images(paths: List[str], labels: List[int], workers: int = 1):
    """(paths, labels, skipped (path, reason) pairs): every image decoded once, as ``pureffcv
    convert`` does, and the unreadable ones left out, so that sample ``i`` here is sample
    ``i`` of the .beton that convert would write from the same folder."""
    paths, labels, skipped, _ = readable(paths, labels, workers)
    return paths, labels, skipped


def warn_skipped(folder, skipped: List[Tuple[str, str]], kept: int) -> None:
    """Warn that ``skipped`` images of ``folder`` are left out: counted, and the first few
    named with their reasons."""
    named = "; ".join(f"{path}: {reason}" for path, reason in skipped[:NAMED])
    more = f"; and {len(skipped) - NAMED} more" if len(skipped) > NAMED else ""
    warnings.warn(SkippedImagesWarning(
        f"{folder}: {len(skipped)} unreadable image(s) skipped, training on the other {kept} "
        f"({named}{more})"), stacklevel=3)


class FallbackLoader:
    """Batches of an ImageFolder tree (``folder/<class>/<image>``) through a compiled split.

    - ``compiled``: a ``compiler.CompiledPipeline``; its clock gives the epoch (call
      ``compiled.set_epoch(n)`` before ``iter``, as with the FFCV Loader).
    - ``image_folder``: the ImageFolder root; labels are the sorted class folders' indices,
      or those of ``classes`` (the class map the run's other splits use; it must name every
      class folder), so that train and val agree (``pipelines.missing_betons``).
    - ``batch_size``, ``shuffle``, ``drop_last``: None keeps the spec's loader options
      (shuffle unless its order is sequential).
    - ``num_workers``: DataLoader worker processes that decode and crop (0: in this process).

    A split with views (``image.views``) is refused (FallbackError, one line): convert the
    folder to a .beton.

    Every image is decoded once first, as ``pureffcv convert`` does: unreadable ones (a
    truncated JPEG, say) are left out, counted and named in a ``SkippedImagesWarning``
    (``skipped`` lists them), and training goes on with the others.

    Shuffling draws from a torch generator seeded by (spec seed, epoch): reproducible, but
    not FFCV's random order.
    """

    def __init__(self, compiled, image_folder: Union[str, Path], batch_size: Optional[int] = None,
                 num_workers: int = 0, shuffle: Optional[bool] = None,
                 drop_last: Optional[bool] = None, classes: Optional[Dict[str, int]] = None):
        from ffcv.pipeline.compiler import Compiler

        if getattr(compiled, "views", ()):
            raise FallbackError(f"{compiled.split.name}: the image-folder fallback serves one "
                                f"image per sample, not views; convert {image_folder} to a "
                                f".beton first (pureffcv convert)")
        try:
            paths, labels, _ = scan_image_folder(Path(image_folder), classes)
        except (ConversionError, OSError) as exc:
            raise FallbackError(str(exc).splitlines()[0]) from None
        paths, labels, self.skipped = readable_images(paths, labels, max(1, num_workers))
        if self.skipped:
            warn_skipped(image_folder, self.skipped, len(paths))
        if not paths:
            raise FallbackError(f"{image_folder}: none of its {len(self.skipped)} images could "
                                f"be read")
        options = compiled.split.loader
        Compiler.set_num_threads(options.num_workers)  # as FFCV's Loader does: prange or not
        self.compiled = compiled
        self.dataset = FolderDataset(paths, labels, compiled.decoder.op, compiled.clock.seed)
        self.cpu_ops = [runnable(step) for step in compiled.cpu_steps]
        self.boundary = [boundary_step(step) for step in compiled.plan.stage("boundary")]
        self.device_ops = [runnable(step) for step in compiled.plan.stage("device")]
        self.device = torch.device(compiled.device)
        self.batch_size = batch_size or options.batch_size
        self.num_workers = num_workers
        self.shuffle = options.order != "sequential" if shuffle is None else shuffle
        self.drop_last = options.drop_last if drop_last is None else drop_last

    def __len__(self) -> int:
        count = len(self.dataset)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self):
        epoch = self.compiled.clock.epoch
        self.dataset.epoch = epoch  # read by the workers, which fork at iter
        generator = torch.Generator().manual_seed(self.compiled.clock.seed * 1_000_003 + epoch)
        batches = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=self.shuffle,
            drop_last=self.drop_last, num_workers=self.num_workers, collate_fn=stack,
            generator=generator, worker_init_fn=torch_worker_init)
        for images, labels, indices in batches:
            yield self.transform(images, labels, indices)

    def transform(self, images: np.ndarray, labels: np.ndarray,
                  indices: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        """A decoded uint8 NHWC batch through the CPU ops, the boundary and the device ops."""
        for op in self.cpu_ops:  # compiled once per op (PureOperation.apply)
            images = op.apply(images, indices)
        batch = images
        for step in self.boundary:
            batch = step(batch)
        for op in self.device_ops:
            batch = op.apply(batch, indices)
        return batch, torch.from_numpy(labels).to(self.device, non_blocking=True)


class FolderDataset(torch.utils.data.Dataset):
    """Sample ``i``: (the decoder's output for image ``i`` as uint8 HWC, its label, ``i``)."""

    def __init__(self, paths: List[str], labels: List[int], decoder, seed: int):
        self.paths, self.labels = paths, labels
        self.seed, self.epoch = seed, 0
        self.position = getattr(decoder, "position", 0)
        self.decoder = decoder
        self.crop = decoder_crop(decoder)

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, index: int) -> np.uint64:
        """Sample ``index``'s key for the decoder at this epoch, as the Loader computes it."""
        return np.uint64(sample_key(stream_key(self.seed, self.epoch, self.position), index))

    def __getitem__(self, index: int):
        from ffcv.libffcv import resize_crop

        image = read_rgb(self.paths[index])
        if self.crop is None:
            return image, self.labels[index], index
        y, x, h, w = self.crop(self.key(index), np.int64(image.shape[0]), np.int64(image.shape[1]))
        # the size is read per sample: progressive resizing changes it between epochs
        out = np.empty(tuple(self.decoder.output_size) + (3,), np.uint8)
        resize_crop(np.ascontiguousarray(image), y, y + h, x, x + w, out)
        return out, self.labels[index], index


def decoder_crop(decoder):
    """The decoder's njit crop function ``(key, height, width) -> (y, x, h, w)``, or None for
    a plain decode; FallbackError for other decoders."""
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder

    if hasattr(decoder, "get_crop_generator"):  # a subclass of SimpleRGBImageDecoder too
        crop = decoder.get_crop_generator
        crop(np.uint64(0), np.int64(1), np.int64(1))  # compile now, before workers fork
        return crop
    if isinstance(decoder, SimpleRGBImageDecoder):
        return None
    raise FallbackError(f"the image-folder fallback cannot run the decoder "
                        f"{type(decoder).__name__}; convert the folder to a .beton")


def stack(samples) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DataLoader collate: (uint8 NHWC images, int64 labels, int64 indices) as numpy."""
    images, labels, indices = zip(*samples)
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        sizes = ", ".join(sorted(f"{s[1]}x{s[0]}" for s in shapes))
        raise FallbackError(f"images of different sizes in one batch ({sizes}); 'decode' needs "
                            f"one size: decode with center_crop or random_resized_crop")
    return np.stack(images), np.asarray(labels, np.int64), np.asarray(indices, np.int64)


def boundary_step(step) -> Callable:
    """A plan's boundary step as a function of the batch, as the Loader runs it."""
    if step.name == "to_tensor":
        return lambda images: torch.from_numpy(np.ascontiguousarray(images))
    if step.name == "float16_from_bits":  # uint16 bit patterns -> float16: the op's own view
        as_float16 = step.op.generate_code()
        return lambda batch: as_float16(batch, None)
    if step.name == "to_device":
        return lambda batch: batch.to(step.op.device, non_blocking=True)
    if step.name == "to_torch_image":  # ToTorchImage(channels_last=True): a view
        return lambda batch: batch.permute(0, 3, 1, 2)
    raise FallbackError(f"the image-folder fallback cannot run the boundary step "
                        f"'{step.name}'; convert the folder to a .beton")


def runnable(step):
    """A step's op, which runs outside a Loader through its ``apply``; FallbackError for a raw
    FFCV Operation, which has none."""
    if not hasattr(step.op, "apply"):
        raise FallbackError(f"the image-folder fallback cannot run '{step.name}' (a raw FFCV "
                            f"operation, not a pureffcv op); convert the folder to a .beton")
    return step.op
