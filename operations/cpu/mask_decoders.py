"""The decoder of a mask target: inflate the stored mask (``mask_field.MaskField``), crop the
box the image's decoder draws for the same sample, resize it nearest-neighbour to the image's
output size.

The crop box comes from the image decoder's own crop function, keyed by the image decoder's
position: mask and image are cut from the same box without sharing anything at run time.
Nearest neighbour follows torch's ``interpolate(mode="nearest")``, which torchvision v2 uses
for ``tv_tensors.Mask``: output index i reads input index ``min(floor(i * (in / out)),
in - 1)`` with the scale and product in float32 (exact doubling: ``i >> 1``).
"""
from dataclasses import replace
from typing import Callable, Tuple

import numpy as np
from numba import njit

from ..base import PureOperation, StepOf
from ..ffcv_api import AllocationQuery, State
from ..pointers import ENTRY_FLAGS, bytes_at
from ..rng import sample_key
from .decode_loop import keyed_decode_loop
from .mask_field import MaskDecoder, check_inflated, inflate_mask, mask_sample_reader
from .pixels import SHARED_HELPER

#: the stored dtype codes (``mask_field``'s metadata) and their numpy dtypes
UINT16 = 1


@njit(**SHARED_HELPER)  # exact float32 maths whoever calls it (FFCV's loops are fastmath)
def nearest_index(i, in_size, out_size):
    """The input index torch's nearest resize reads for output index ``i``."""
    if in_size == out_size:
        return i
    if out_size == 2 * in_size:
        return i >> 1
    scale = np.float32(in_size) / np.float32(out_size)
    return min(np.int64(np.floor(np.float32(i) * scale)), in_size - 1)


@njit(**SHARED_HELPER)
def nearest_resize_crop(src, y, x, h, w, dst):
    """``dst[i, j] = src[y + nearest_index(i, h, H), x + nearest_index(j, w, W)]`` for a
    (H, W, 1) ``dst``: the box (y, x, h, w) of the 2-D ``src`` resized nearest-neighbour."""
    out_h, out_w = dst.shape[0], dst.shape[1]
    columns = np.empty(out_w, np.int64)
    for j in range(out_w):
        columns[j] = x + nearest_index(j, w, out_w)
    for i in range(out_h):
        row = src[y + nearest_index(i, h, out_h)]
        for j in range(out_w):
            dst[i, j, 0] = row[columns[j]]


def _mask_crop_step(crop: Callable):
    """njit ``step(i, samples, indices, stream, temp, destination)``: sample i's crop box
    (``crop(key, height, width)``, the image decoder's), its mask inflated into ``temp[i]``,
    the box resized into ``destination[i]``."""

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, stream, temp, destination):
        data = bytes_at(samples[i, 0], samples[i, 1])
        height, width, code = samples[i, 2], samples[i, 3], samples[i, 4]
        y, x, h, w = crop(sample_key(stream, indices[i]), height, width)
        size = height * width * (2 if code == UINT16 else 1)
        raw = temp[i][:size]
        check_inflated(inflate_mask(data, raw))
        if code == UINT16:
            nearest_resize_crop(raw.view(np.uint16).reshape(height, width), y, x, h, w,
                                destination[i])
        else:
            nearest_resize_crop(raw.reshape(height, width), y, x, h, w, destination[i])

    return step


class MaskCropDecoder(StepOf, MaskDecoder):
    """A mask target's decoder, built by an image decoder's ``for_target``: the box its
    ``crop(key, height, width) -> (y, x, h, w)`` draws (keyed by the image decoder's position
    when ``keyed``), resized nearest-neighbour to the image decoder's current
    ``output_size`` when ``resized`` (progressive resizing changes it between epochs), else
    the masks' one stored size (a decoder that neither crops nor resizes). uint8 masks come
    out as uint8, a field holding any uint16 mask as uint16; (H, W, 1) per sample. A
    subclass of the field's own decoder, which FFCV requires of a pipeline's first op."""

    def __init__(self, crop: Callable, keyed: bool, resized: bool, of: PureOperation):
        super().__init__(of)
        self.crop, self.keyed, self.resized, self.image_decoder = crop, keyed, resized, of

    def output_size(self) -> Tuple[int, int]:
        """(height, width): the image decoder's, or the masks' one stored size."""
        if self.resized:
            return tuple(self.image_decoder.output_size)
        heights, widths = self.metadata["height"], self.metadata["width"]
        if len(set(heights.tolist())) > 1 or len(set(widths.tolist())) > 1:
            raise ValueError("the masks have several sizes: decode them with a crop "
                             "(random_resized_crop, center_crop or resize)")
        return int(heights[0]), int(widths[0])

    def declare_state_and_memory(self, previous_state: State):
        heights, widths = self.metadata["height"], self.metadata["width"]
        dtype = np.dtype(np.uint16 if (self.metadata["dtype"] == UINT16).any() else np.uint8)
        largest = int((heights.astype(np.int64) * widths.astype(np.int64)).max()) * 2
        shape = self.output_size() + (1,)
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=dtype),
                (AllocationQuery(shape, dtype), AllocationQuery((largest,), np.dtype(np.uint8))))

    def generate_code(self) -> Callable:
        return keyed_decode_loop(self, mask_sample_reader(self.memory_read),
                                 _mask_crop_step(self.crop), self.keyed)

    def __repr__(self):
        return f"MaskCropDecoder(of={type(self.image_decoder).__name__})"
