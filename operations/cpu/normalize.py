"""CPU normalize: uint8 HWC -> float HWC, (x - mean) / std per channel, before the boundary
(for runs without a GPU; on a GPU the fused device ``normalize`` is faster)."""
import math
from typing import Literal

import numpy as np
from numba import njit

from ..authoring import cpu_op
from ..normalization import MeanParam, StdParam
from ..registry import register_op
from ..types import ImageType
from .pixels import flat


def _normalized_type(image: ImageType, mean, std, dtype) -> ImageType:
    image.require_dtype("cpu_normalize", "uint8")
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


@register_op("cpu_normalize")
@cpu_op(output_type=_normalized_type, probability=False)
def cpu_normalize(image_in, image_out, rng, mean: MeanParam = "imagenet",
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
    src, dst = flat(image_in), flat(image_out)
    for c in range(channels):
        levels = table[c]
        for p in range(image_in.shape[0] * image_in.shape[1]):
            dst[p * channels + c] = levels[src[p * channels + c]]
