"""``normalize``'s CPU backend: uint8 HWC -> float HWC, (x - mean) / std per channel, before
the boundary (its device backend is ``device/normalize.py``; the spec section picks one).

Two ways in: ``normalize`` written in ``image.cpu`` (once spelled ``cpu_normalize``, still
accepted with a deprecation warning), and ``JitNormalizeFlip``, the device
``normalize``/``normalize_flip`` that the compiler moves into the JIT stage when the device
is the CPU (``compiler.passes.lower_device_ops``). Both run ``lookup_pixels``.
"""
import math
from typing import Literal, Optional

import numpy as np
import torch
from numba import njit

from ..authoring import cpu_op
from ..batch_loop import KeyedLoop, keyed_batch_loop
from ..base import PureOperation
from ..declared import TargetStep
from ..normalization import MeanParam, StdParam, lookup_table
from ..registry import register_alias, register_op
from ..targets import IMAGE_ONLY
from ..types import TORCH_DTYPES, ImageType, storage_dtype
from .geometry import horizontal_flip
from .pixels import SHARED_HELPER, flat


def _normalized_type(image: ImageType, mean, std, dtype) -> ImageType:
    image.require_dtype("normalize", "uint8")
    return image.but(dtype=dtype)


@njit(inline="always")
def float16_bits(value):
    """The IEEE float16 bit pattern nearest to ``value``, as numpy's ``astype(float16)`` gives
    it: round half to even, overflow to inf, NaN to a quiet NaN of the same sign. (Numba has
    no float16 type.)"""
    sign = np.uint16(0x8000) if math.copysign(1.0, value) < 0 else np.uint16(0)  # -0, -nan too
    a = abs(value)
    if a != a:
        return sign | np.uint16(0x7E00)
    if a >= 65520.0:  # rounds past the largest float16, 65504
        return sign | np.uint16(0x7C00)
    if a < 6.103515625e-05:  # subnormal: a multiple of 2**-24
        return sign | np.uint16(np.rint(a * 16777216.0))
    mantissa, exponent = math.frexp(a)  # a = mantissa * 2**exponent, mantissa in [0.5, 1)
    bits = np.uint16((exponent + 14) << 10) + np.uint16(np.rint((mantissa * 2.0 - 1.0) * 1024.0))
    return sign | bits  # a mantissa rounding up to 1024 carries into the exponent, correctly


@register_op("normalize")
@cpu_op(output_type=_normalized_type, probability=False, targets=IMAGE_ONLY)
def normalize(image_in, image_out, rng, mean: MeanParam = "imagenet",
                  std: StdParam = "imagenet", dtype: Literal["float32", "float16"] = "float32"):
    """``(x - mean[c]) / std[c]`` for every pixel, computed in float64 and stored as ``dtype``;
    uint8 in, float out (any other input is refused). No randomness, no ``p``.

    - ``mean``: a name from ``operations.normalization.MEAN`` (imagenet, cifar10, cifar100,
      none) or three numbers in 0-255 pixel units (like FFCV's NormalizeImage), default imagenet.
    - ``std``: a name from ``STD`` or three positive numbers in 0-255 units, default imagenet.
    - ``dtype``: float32 (default) or float16. Numba has no float16, so float16 results are
      rounded to nearest-even from float64 and carried as their bit patterns until the
      compiler's boundary step views them as float16 (no copy, same values as numpy).
    """
    half = dtype == "float16"
    channels = image_in.shape[2]
    table = np.empty((channels, 256), image_out.dtype)  # one value per channel and level
    for c in range(channels):
        for level in range(256):
            value = (level - mean[c]) / std[c]
            if half:
                table[c, level] = float16_bits(value)
            else:
                table[c, level] = value
    lookup_pixels(image_in, image_out, table, False)


register_alias("cpu_normalize", "normalize", stage="cpu")


@njit(**SHARED_HELPER)
def lookup_pixels(src, dst, table, mirror):
    """``dst[y, x, c] = table[c, src[y, x', c]]`` with x' = width-1-x when ``mirror``, else x:
    normalization (and a flip) as one read and one write of each value. ``table`` is
    (channels, 256) of dst's dtype (uint16 float16 bits in the JIT stage)."""
    height, width, channels = src.shape
    if channels != 3:
        for y in range(height):
            for x in range(width):
                sx = width - 1 - x if mirror else x
                for c in range(channels):
                    dst[y, x, c] = table[c, src[y, sx, c]]
        return
    s, d = flat(src), flat(dst)
    red, green, blue = table[0], table[1], table[2]
    # RGB unrolled, one loop per case: 1.4x faster than a loop over channels or a test per pixel
    if mirror:
        one, two = np.uint64(1), np.uint64(2)
        for y in range(height):
            # unsigned indices: no negative-index wraparound test per read (1.4x faster)
            row, last = np.uint64(y * width * 3), np.uint64((y * width + width - 1) * 3)
            for x in range(np.uint64(width)):
                o, i = row + np.uint64(3) * x, last - np.uint64(3) * x
                d[o], d[o + one], d[o + two] = red[s[i]], green[s[i + one]], blue[s[i + two]]
    else:
        for p in range(height * width):
            i = 3 * p
            d[i], d[i + 1], d[i + 2] = red[s[i]], green[s[i + 1]], blue[s[i + 2]]


@njit
def mirrored_lookup(src, dst, rng, table):
    """The flip's gate fired: normalize and mirror."""
    lookup_pixels(src, dst, table, True)


@njit
def plain_lookup(src, dst, table):
    """The flip's gate did not fire (or there is no flip): normalize only."""
    lookup_pixels(src, dst, table, False)


class JitNormalizeFlip(PureOperation):
    """The device ``normalize`` (or fused ``normalize_flip``) as a JIT step, for pipelines
    whose device is the CPU (``Normalize.jit_equivalent``): each image is normalized (and
    mirrored) right after its CPU ops, inside FFCV's parallel per-sample loop, instead of in
    one more pass over the whole batch after it. Same lookup table, same flip draws (the
    flip's stream and gate), hence bit-identical output; the compiler creates it (not a spec
    op). ``p`` is the flip probability (0: no flip)."""

    stage = "cpu"

    def __init__(self, mean: tuple, std: tuple, dtype: str, p: float = 0.0):
        super().__init__()
        table = lookup_table(mean, std, TORCH_DTYPES[dtype]).T.contiguous()  # (channels, 256)
        if dtype == "float16":  # Numba has no float16: its bits
            table = table.view(torch.int16)
        self.table = table.numpy().view(storage_dtype(dtype))

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        image.require_dtype("normalize", "uint8")
        return image.but(dtype=self.params["dtype"])

    def for_target(self, target):
        """Normalization changes the image only; the flip mirrors the target for the same
        samples (the flip's kernel, stream and gate)."""
        if self.params["p"] == 0:
            return None
        return TargetStep(horizontal_flip.declared_targets[target.kind], (target.fill,),
                          self.params["p"], horizontal_flip.gate, self)

    def keyed_loop(self) -> KeyedLoop:
        """What this op runs per sample (a chain of ops shares it: ``ChainedPairs``)."""
        return KeyedLoop(mirrored_lookup, (self.table,), self.params["p"], horizontal_flip.gate,
                         otherwise=plain_lookup)

    def generate_code(self):
        return keyed_batch_loop(self.keyed_loop(), self.clock, self.position, op=self)
