"""Neighbourhood filters on uint8 images: PIL's sharpness and torchvision's Gaussian blur.
Each op is one kernel declaration; ``adjust_sharpness`` is what the policies reuse."""
from typing import Annotated, Tuple

import numpy as np
from numba import njit

from ..authoring import cpu_op
from ..base import OWN_KEY_GATE
from ..params import MAX_COUNT, Ascending, NonNegativeFloat, Range
from ..registry import register_op
from ..rng import uniform_range
from ..targets import IMAGE_ONLY
from ..types import OpTypeError, requires_uint8
from .pixels import copy_pixels, flat, rounded
from .tone import blend


@njit(inline='always')
def reflect(i, n):
    """Index ``i`` mirrored into [0, n) without repeating the edge (torch's 'reflect' pad)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return i if i < n else period - i


@njit
def adjust_sharpness(src, dst, factor):
    """PIL ImageEnhance.Sharpness(factor): blend with the 3x3 smooth filter
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (rounded), border pixels unchanged (0 blurred,
    1 unchanged, 2 sharper). ``src`` and ``dst`` must be different arrays.

    The sums are float32 (whole numbers below 2**24: exact) and round(total / 13) is
    floor((2 total + 13) / 26) by a correctly rounded float32 division, exact for these
    sums: the loop vectorizes, where an integer division by 26 in Numba's 64-bit integers
    does not."""
    f = np.float32(factor)
    h, w, c = src.shape
    copy_pixels(src, dst)  # the border
    s, d = flat(src), flat(dst)
    row, inner = w * c, (w - 2) * c
    columns = np.empty(row, np.float32)  # vertical 3-sums of one row
    for y in range(1, h - 1):
        above, centre, below = s[(y - 1) * row:y * row], s[y * row:(y + 1) * row], s[(y + 1) * row:(y + 2) * row]
        for j in range(row):
            columns[j] = np.float32(above[j]) + np.float32(centre[j]) + np.float32(below[j])
        left, middle, right, value = columns[:inner], columns[c:c + inner], columns[2 * c:], centre[c:c + inner]
        out = d[y * row + c:(y + 1) * row - c]
        for j in range(inner):
            total = left[j] + middle[j] + right[j] + np.float32(4.0) * np.float32(value[j])
            smooth = np.floor((np.float32(2.0) * total + np.float32(13.0)) / np.float32(26.0))
            out[j] = blend(np.int32(smooth), value[j], f)


@njit
def gaussian_weights(kernel_size, sigma):
    """torchvision's 1-D Gaussian kernel: exp(-x^2 / (2 sigma^2)) at integer offsets
    -(k-1)/2..(k-1)/2, normalised to sum 1."""
    weights = np.empty(kernel_size)
    half = (kernel_size - 1) / 2.0
    for i in range(kernel_size):
        weights[i] = np.exp(-0.5 * ((i - half) / sigma) ** 2)
    return weights / weights.sum()


@njit
def gaussian_blur_pixels(src, dst, kernel_size, sigma):
    """torchvision's gaussian_blur: a separable ``kernel_size`` (odd) Gaussian of std
    ``sigma`` with mirror ('reflect') borders, float64, rounded to nearest (half up; torch
    rounds half to even). PIL's GaussianBlur approximates a Gaussian with box filters and is not
    the reference. ``src`` and ``dst`` may be the same array."""
    weights = gaussian_weights(kernel_size, sigma)
    half = kernel_size // 2
    h, w, c = src.shape
    xs = np.array([reflect(j - half, w) for j in range(w + 2 * half)])  # padded -> source
    ys = np.array([reflect(j - half, h) for j in range(h + 2 * half)])
    rows = np.zeros((h, w, c))
    for y in range(h):
        for x in range(w):
            for i in range(kernel_size):
                weight, sx = weights[i], xs[x + i]
                for k in range(c):
                    rows[y, x, k] += weight * src[y, sx, k]
    line = np.empty((w, c))
    for y in range(h):
        line[:] = 0.0
        for i in range(kernel_size):
            weight, sy = weights[i], ys[y + i]
            for x in range(w):
                for k in range(c):
                    line[x, k] += weight * rows[sy, x, k]
        for x in range(w):
            for k in range(c):
                dst[y, x, k] = rounded(line[x, k])


@register_op("sharpness")
@cpu_op(output_type=requires_uint8("sharpness"), p=0.5, gate=OWN_KEY_GATE, targets=IMAGE_ONLY)
def sharpness(image_in, image_out, rng, factor: NonNegativeFloat):
    """torchvision RandomAdjustSharpness / PIL Sharpness: blend with a 3x3 smoothed copy by
    ``factor`` (>= 0, required; 0 blurs, 1 keeps, 2 sharpens), with probability ``p``
    (default 0.5) per image."""
    adjust_sharpness(image_in, image_out, factor)


def _blur_type(image, kernel_size, sigma):
    requires_uint8("gaussian_blur")(image)
    if kernel_size % 2 == 0:
        raise OpTypeError(f"'gaussian_blur' needs an odd kernel_size, got {kernel_size}")
    return image


@register_op("gaussian_blur")
@cpu_op(output_type=_blur_type, targets=IMAGE_ONLY)
def gaussian_blur(image_in, image_out, rng, kernel_size: Annotated[int, Range(1, MAX_COUNT)],
                  sigma: Annotated[Tuple[float, float], Ascending(),
                                   Range(0.0, None, low_open=True)] = (0.1, 2.0)):
    """torchvision GaussianBlur: blur with a square ``kernel_size`` (odd, required) Gaussian
    whose std is drawn uniformly per image from ``sigma`` = [min, max] (> 0, default
    [0.1, 2.0]); mirror borders (see ``gaussian_blur_pixels``). ``p`` (default 1.0):
    probability per image. Draw 0: sigma. Only square kernels (one int kernel_size)."""
    gaussian_blur_pixels(image_in, image_out, kernel_size, uniform_range(rng, 0, sigma[0], sigma[1]))
