"""The fused normalize+flip on CPU tensors: one parallel Numba loop over the batch, each image
by ``operations.cpu.normalize.lookup_pixels`` (the loop the JIT-stage normalize runs too).

It serves device stages on the CPU that the compiler could not move into the JIT stage (the
normalize is not the first device op) and ops applied directly. Like the cupy kernel it copies
table *bits*, so one compiled loop per bit width serves every float dtype.
"""
import numpy as np
import torch
from numba import njit, prange

from ..cpu.normalize import lookup_pixels

_BITS = {2: torch.int16, 4: torch.int32}


@njit(parallel=True, nogil=True)
def _normalize_flip_images(src, dst, table, flips):
    for b in prange(src.shape[0]):
        lookup_pixels(src[b], dst[b], table, flips[b])


def normalize_flip(images: torch.Tensor, out: torch.Tensor, table: torch.Tensor, flips) -> None:
    """images uint8 and out (B, C, H, W) channels_last on the CPU, table (256, C) of out's
    dtype, flips a (B,) bool tensor or None."""
    bits = _BITS[out.element_size()]
    flags = (np.zeros(images.shape[0], np.bool_) if flips is None
             else flips.to("cpu", torch.bool).numpy())
    _normalize_flip_images(np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy()),
                           out.permute(0, 2, 3, 1).view(bits).numpy(),
                           table.T.contiguous().view(bits).numpy(), flags)
