"""Image decoders: the first step of an image pipeline (JPEG/raw -> uint8 HWC).

FFCV's RandomResizedCropRGBImageDecoder draws its crops from Numba's global RNG, which Python
cannot seed; these decoders compute each sample's crop from the keyed RNG instead
(``random_resized_crop_box``), so a crop depends only on (seed, epoch, position, sample index).
The crop is drawn first; a JPEG is then decoded crop-aware (``operations.cpu.jpeg``: only the
rows and columns the crop needs, at the smallest DCT scale keeping it at least the output
size), others as is; the resize is an area average (OpenCV's INTER_AREA: FFCV's, or
``area_resize`` where the crop shrinks).
"""
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder, SimpleRGBImageDecoder
from numba import njit

from ..base import PureOperation
from ..params import AreaRange, AspectRange, Probability, Size
from ..registry import register_op
from ..rng import sample_key, uniform
from ..types import ImageType
from ..pointers import ENTRY_FLAGS, bytes_at
from . import jpeg
from .decode_loop import keyed_decode_loop, locate_samples, plain_decode_loop, sample_rows
from .jpeg import decode_crop_resized
from .instance_decoders import target_decoder
from .native import decode_jpeg, memcpy, resize_crop

#: torchvision's number of tries before the centre-crop fallback
ATTEMPTS = 10


@njit
def random_resized_crop_box(key, height, width, scale, ratio):
    """torchvision's RandomResizedCrop.get_params with keyed draws: ``(y, x, h, w)``.

    Up to 10 attempts, attempt k using draws 4k..4k+3: area uniform in ``scale`` x image area,
    aspect ratio (w/h) log-uniform in ``ratio``, w = round(sqrt(area*r)), h = round(sqrt(area/r))
    (half to even, like Python's round); accepted if it fits, then the offset is uniform over
    the valid positions. Fallback: the largest centred crop with its ratio clamped to ``ratio``
    (deviation: at least 1x1, where torchvision returns an empty crop for images of a pixel
    or two with extreme ratios).
    """
    area = height * width
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    for attempt in range(ATTEMPTS):
        draw = 4 * attempt
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform(key, draw))
        aspect = np.exp(log_lo + (log_hi - log_lo) * uniform(key, draw + 1))
        w = np.int64(np.rint(np.sqrt(target * aspect)))
        h = np.int64(np.rint(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y = np.int64(uniform(key, draw + 2) * (height - h + 1))
            x = np.int64(uniform(key, draw + 3) * (width - w + 1))
            return y, x, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = np.int64(width)
        h = np.int64(np.rint(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = np.int64(height)
        w = np.int64(np.rint(h * max(ratio)))
    else:
        h, w = np.int64(height), np.int64(width)
    h, w = max(h, 1), max(w, 1)
    return (height - h) // 2, (width - w) // 2, h, w


@njit
def center_crop_box(height, width, ratio):
    """FFCV's centre crop: a square of side int(ratio * shorter side), centred: ``(y, x, h, w)``."""
    side = np.int64(ratio * min(height, width))
    return (height - side) // 2, (width - side) // 2, side, side


def _hw(size) -> tuple:
    return (size, size) if isinstance(size, int) else tuple(size)


class _CropDecoder(ResizedCropRGBImageDecoder, PureOperation):
    """Decode, crop the box ``crop(key, height, width)`` chooses, resize to ``output_size``.

    FFCV's own ``declare_state_and_memory`` (which reads the data set's image sizes) is kept;
    only ``generate_code`` changes, to key the crop by sample index."""

    stage = "decoder"
    keyed = True  # False: the crop needs no randomness, so no epoch read per batch
    #: decode JPEGs crop-aware (``operations.cpu.jpeg``: only the crop's rows and columns, at
    #: the smallest DCT scale M/8 keeping the crop >= the output size); False: full decode
    crop_aware = True

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        h, w = self.output_size
        return ImageType(height=h, width=w)

    def for_target(self, target):
        """The target decoded from the same crop box, resized (masks nearest-neighbour)."""
        return target_decoder(target, self.get_crop_generator, self.keyed, True, self)

    def set_output_size(self, size) -> None:
        """Resize to ``size`` (int or [height, width]) from the next generated code on
        (progressive resizing; FFCV's Loader must regenerate its code)."""
        self.params["size"] = size
        self.output_size = _hw(size)

    @property
    def get_crop_generator(self) -> Callable:
        """FFCV's abstract hook, here keyed: an njit ``(key, height, width) -> (y, x, h, w)``."""
        raise NotImplementedError

    def generate_code(self) -> Callable:
        """FFCV's decode loop, split in two: this closure reads each sample's address, size
        and field (cheap, serial), then the per-image work (crop, decode, resize) runs in
        parallel through a cached C entry (``pointers.by_pointer``)."""
        step = _crop_decode_step(self.get_crop_generator, self.crop_aware and jpeg.AVAILABLE)
        return keyed_decode_loop(self, image_sample_reader(self.memory_read), step, self.keyed)


def image_sample_reader(mem_read) -> Callable:
    """``read(batch_indices, metadata, storage_state)``: one int64 row per sample, (address,
    size, height, width, mode) of its stored image (``mem_read``: FFCV's reader of this
    field's storage), with numpy. The per-image work then runs behind an entry."""

    def read(batch_indices, metadata, storage_state):
        fields = metadata[batch_indices]
        addresses, sizes = locate_samples(mem_read, fields['data_ptr'], storage_state)
        return sample_rows(addresses, sizes, fields['height'], fields['width'], fields['mode'])

    return read


def _crop_decode_step(crop, crop_aware: bool):
    """njit ``step(i, samples, indices, stream, temp_storage, destination)``: sample i's
    crop box (``crop(key, height, width)``), then its crop-aware decode, or the full decode
    and FFCV's resize (``crop_aware`` False, a raw image, or a JPEG libjpeg refused)."""
    jpg = IMAGE_MODES['jpg']

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, stream, temp_storage, destination):
        image_data = bytes_at(samples[i, 0], samples[i, 1])
        height, width = samples[i, 2], samples[i, 3]
        y, x, h, w = crop(sample_key(stream, indices[i]), height, width)
        if samples[i, 4] != jpg:
            resize_crop(image_data.reshape(height, width, 3), y, y + h, x, x + w, destination[i])
            return
        buffer = temp_storage[i].reshape(-1)
        # only the crop's rows and columns, DCT-scaled; else (no library, or libjpeg refused
        # the data) the full decode
        if not (crop_aware and decode_crop_resized(image_data, buffer, height, width, y, x, h,
                                                   w, destination[i])):
            decode_jpeg(image_data, buffer, np.uint32(height), np.uint32(width))
            image = buffer[:3 * height * width].reshape(height, width, 3)
            resize_crop(image, y, y + h, x, x + w, destination[i])

    return step


@register_op("random_resized_crop")
class RandomResizedCrop(_CropDecoder):
    """Decode, crop a random area and aspect ratio, resize to ``size`` (torchvision's
    RandomResizedCrop, drawn per image from the keyed RNG; see ``random_resized_crop_box``).

    - ``size``: output size, int (square) or [height, width].
    - ``scale``: [min, max] fraction of the image area, default [0.08, 1.0].
    - ``ratio``: [min, max] aspect ratio (w/h), default [3/4, 4/3].

    Deviation: the resize is OpenCV's INTER_AREA (FFCV's), not bilinear with antialias.
    JPEGs are decoded crop-aware: only the rows and columns the crop needs, at the smallest
    DCT scale M/8 (1/8, 1/4, 1/2) that keeps the crop at least ``size``, then an area resize
    of the crop's exact box (``operations.cpu.jpeg``). At 1/2 this moves the output by about
    1.5 levels on average (max ~60) from a full decode and the same resize, about what the
    INTER_AREA resize itself differs from an exact area average (docs/performance.md); at
    8/8 it is within one level of it except next to the decoded columns' edges.
    """

    def __init__(self, size: Size, scale: AreaRange = (0.08, 1.0),
                 ratio: AspectRange = (3 / 4, 4 / 3)):
        super().__init__(_hw(size))

    @property
    def get_crop_generator(self):
        scale = tuple(float(s) for s in self.params["scale"])
        ratio = tuple(float(r) for r in self.params["ratio"])

        @njit
        def crop(key, height, width):
            return random_resized_crop_box(key, height, width, scale, ratio)

        return crop


@register_op("center_crop")
class CenterCrop(_CropDecoder):
    """Decode, crop the centre square of side int(``ratio`` x the shorter side), resize to
    ``size`` (FFCV's CenterCropRGBImageDecoder; no randomness).

    - ``size``: output size, int or [height, width].
    - ``ratio``: crop side / shorter image side, in [0, 1], default 224/256 = 0.875.

    JPEGs are decoded crop-aware, as by ``random_resized_crop`` (its deviations too).
    """

    keyed = False

    def __init__(self, size: Size, ratio: Probability = 224 / 256):
        super().__init__(_hw(size))

    @property
    def get_crop_generator(self):
        ratio = float(self.params["ratio"])

        @njit
        def crop(key, height, width):
            return center_crop_box(height, width, ratio)

        return crop


@njit
def whole_image_box(key, height, width):
    """The crop of a decoder that does not crop: ``(0, 0, height, width)``."""
    return np.int64(0), np.int64(0), np.int64(height), np.int64(width)


@register_op("resize")
class Resize(_CropDecoder):
    """Decode and resize the whole image to ``size`` (no crop, no randomness; the aspect ratio
    changes unless ``size`` has the image's): the fixed-size input of segmentation models.

    - ``size``: output size, int (square) or [height, width].

    JPEGs are decoded at the smallest DCT scale that keeps them at least ``size`` (as
    ``random_resized_crop``; its deviations too); the resize is an area average.
    """

    keyed = False

    def __init__(self, size: Size):
        super().__init__(_hw(size))

    @property
    def get_crop_generator(self):
        return whole_image_box


@register_op("decode")
class Decode(SimpleRGBImageDecoder, PureOperation):
    """Decode as is (FFCV's SimpleRGBImageDecoder): for data sets whose images all have one
    size, which FFCV checks when the Loader is built. No parameters, no randomness."""

    stage = "decoder"

    def __init__(self):
        super().__init__()

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        """The data set's size when the caller knows it; otherwise unknown until the Loader
        reads the file."""
        return ImageType(height=None, width=None) if image is None else image.but(dtype="uint8")

    def for_target(self, target):
        """The target as stored (all of one size, as the images)."""
        return target_decoder(target, whole_image_box, False, False, self)

    def generate_code(self) -> Callable:
        """FFCV's decode loop: this closure reads each sample's address, size and field, then
        the decodes run in parallel through a cached C entry (as the crop decoders')."""
        return plain_decode_loop(self, image_sample_reader(self.memory_read), _decode_step())


@lru_cache(maxsize=None)
def _decode_step():
    """njit ``step(i, samples, destination)``: sample i decoded (JPEG) or copied (raw) as is
    into ``destination[i]``."""
    jpg = IMAGE_MODES['jpg']

    @njit(**ENTRY_FLAGS)
    def step(i, samples, destination):
        image_data = bytes_at(samples[i, 0], samples[i, 1])
        if samples[i, 4] == jpg:
            decode_jpeg(image_data, destination[i], np.uint32(samples[i, 2]),
                        np.uint32(samples[i, 3]))
        else:
            memcpy(image_data, destination[i])

    return step
