"""Colour and tone ops on uint8 RGB HWC images, with PIL's ImageEnhance/ImageOps meaning.

Two layers. Deterministic njit "apply" functions (``adjust_brightness(src, dst, factor)``,
``solarize_pixels(src, dst, threshold)``, ...) hold the maths; policies reuse them. The
registered kernels below them only draw their parameters from the sample's key and call them.

Per-channel point ops are 256-entry lookup tables: ``*_lut`` builders return a uint8[256]
table (the same for every channel) and ``*_luts`` builders a uint8[channels, 256] one
(computed from the image: autocontrast, equalize). ``apply_lut``/``apply_channel_luts`` run a
table in one pixel pass, and composing two tables is ``second[first]`` — what a compiler pass
fusing consecutive point ops needs (the point-map ops declare their per-image tables for
it at the end of this module; see ``operations/cpu/fused.py``).

Rounding is PIL's, which torchvision's tensor ops imitate within one grey level:
- blends (brightness, contrast, saturation, sharpness) are ``degenerate + factor * (image -
  degenerate)`` in float32, clipped to [0, 255] and truncated, as PIL's ``ImagingBlend``;
  torchvision computes ``factor * image + (1 - factor) * degenerate`` and also truncates;
- grey is PIL's ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16`` (rounded); torchvision uses
  ``0.2989 R + 0.587 G + 0.114 B`` truncated (up to one grey level darker);
- contrast blends with the grey image's mean rounded to an integer (PIL); torchvision uses the
  unrounded mean of the truncated grey image.
``src`` and ``dst`` may be the same array except where a docstring says otherwise.
"""
from typing import Annotated, Tuple

import numpy as np
from numba import njit

from ..authoring import cpu_op
from ..params import Ascending, NonNegativeFloat, Probability, Range
from ..registry import register_op
from ..rng import GATE_DRAW, bernoulli, randint, uniform_range
from ..types import OpTypeError
from .pixels import copy_pixels, flat

# ---------------------------------------------------------------- per-pixel helpers

@njit(inline='always')
def luma(r, g, b):
    """PIL's grey level of an RGB pixel (ITU-R 601-2 luma, fixed point, rounded)."""
    return (np.int64(r) * 19595 + np.int64(g) * 38470 + np.int64(b) * 7471 + 32768) >> 16


@njit(inline='always')
def blend(degenerate, value, factor):
    """PIL's blend of one channel value: degenerate + factor * (value - degenerate), float32,
    clipped to [0, 255] and truncated. ``factor`` must already be a float32."""
    out = np.float32(degenerate) + factor * np.float32(np.int64(value) - np.int64(degenerate))
    if out <= 0.0:
        return np.uint8(0)
    if out >= 255.0:
        return np.uint8(255)
    return np.uint8(out)


@njit(inline='always')
def reflect(i, n):
    """Index ``i`` mirrored into [0, n) without repeating the edge (torch's 'reflect' pad)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return i if i < n else period - i


# ---------------------------------------------------------------- lookup tables

@njit
def apply_lut(src, dst, lut):
    """dst[y, x, c] = lut[src[y, x, c]]: one uint8[256] table for every channel."""
    s, d = flat(src), flat(dst)
    for i in range(s.size):
        d[i] = lut[s[i]]


@njit
def apply_channel_luts(src, dst, luts):
    """dst[y, x, c] = luts[c, src[y, x, c]]: one uint8[256] table per channel."""
    channels, pixels = src.shape[2], src.shape[0] * src.shape[1]
    s, d = flat(src), flat(dst)
    for k in range(channels):  # channel by channel: 2.7x faster than pixel by pixel
        lut = luts[k]
        for p in range(pixels):
            d[p * channels + k] = lut[s[p * channels + k]]


@njit
def identity_lut():
    """The table that changes nothing (the start of a fused chain)."""
    return np.arange(256).astype(np.uint8)


@njit
def blend_lut(degenerate, factor):
    """Blend every value with the constant grey ``degenerate`` (PIL's blend, see module doc)."""
    f = np.float32(factor)
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = blend(degenerate, v, f)
    return lut


@njit
def brightness_lut(factor):
    """PIL ImageEnhance.Brightness: blend with black (0 black, 1 unchanged, >1 brighter)."""
    return blend_lut(0, factor)


@njit
def contrast_lut(mean, factor):
    """PIL ImageEnhance.Contrast for an image whose rounded grey mean is ``mean``."""
    return blend_lut(mean, factor)


@njit
def solarize_lut(threshold):
    """PIL ImageOps.solarize: values >= threshold are inverted (threshold 0 inverts all,
    255 only 255; a float threshold is allowed, as in torchvision)."""
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = 255 - v if v >= threshold else v
    return lut


@njit
def posterize_lut(bits):
    """PIL ImageOps.posterize: keep the ``bits`` high bits (0..8; 0 gives black, as
    torchvision; PIL refuses 0)."""
    mask = (0xFF << (8 - bits)) & 0xFF
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = v & mask
    return lut


@njit
def invert_lut():
    """PIL ImageOps.invert: 255 - v."""
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = 255 - v
    return lut


@njit
def channel_histograms(image):
    """int64[channels, 256]: how often each value occurs in each channel."""
    channels, pixels = image.shape[2], image.shape[0] * image.shape[1]
    values = flat(image)
    hist = np.zeros((channels, 256), np.int64)
    for k in range(channels):  # channel by channel: 2x faster than pixel by pixel
        counts = hist[k]
        for p in range(pixels):
            counts[values[p * channels + k]] += 1
    return hist


@njit
def identity_luts(channels):
    """``identity_lut`` for each of ``channels`` channels."""
    luts = np.empty((channels, 256), np.uint8)
    for k in range(channels):
        luts[k] = identity_lut()
    return luts


@njit
def autocontrast_luts(image):
    """PIL ImageOps.autocontrast (cutoff 0) of ``image``: ``autocontrast_histogram_luts``."""
    return autocontrast_histogram_luts(channel_histograms(image))


@njit
def autocontrast_histogram_luts(hist):
    """PIL ImageOps.autocontrast (cutoff 0) from the channel histograms ``hist``: per channel,
    stretch [lo, hi] (the darkest and lightest values present) to [0, 255], truncating; a
    constant channel is unchanged."""
    luts = np.empty((hist.shape[0], 256), np.uint8)
    for k in range(hist.shape[0]):
        lo = 0
        while lo < 255 and hist[k, lo] == 0:
            lo += 1
        hi = 255
        while hi > 0 and hist[k, hi] == 0:
            hi -= 1
        if hi <= lo:
            luts[k] = identity_lut()
            continue
        scale = 255.0 / (hi - lo)
        offset = -lo * scale
        for v in range(256):
            luts[k, v] = min(max(int(v * scale + offset), 0), 255)
    return luts


@njit
def equalize_luts(image):
    """PIL ImageOps.equalize of ``image``: ``equalize_histogram_luts``."""
    return equalize_histogram_luts(channel_histograms(image))


@njit
def equalize_histogram_luts(hist):
    """PIL ImageOps.equalize from the channel histograms ``hist``: per channel, map values
    through the cumulative histogram with PIL's integer steps (``step = (pixels - count of the
    top value) // 255``); a channel with one value, or too few pixels for one step, is
    unchanged."""
    luts = np.empty((hist.shape[0], 256), np.uint8)
    for k in range(hist.shape[0]):
        distinct = 0
        last = 0
        for v in range(256):
            if hist[k, v]:
                distinct += 1
                last = hist[k, v]
        step = (hist[k].sum() - last) // 255
        if distinct <= 1 or step == 0:
            luts[k] = identity_lut()
            continue
        n = step // 2
        for v in range(256):
            luts[k, v] = min(n // step, 255)
            n += hist[k, v]
    return luts


# ---------------------------------------------------------------- apply functions

@njit
def adjust_brightness(src, dst, factor):
    """PIL ImageEnhance.Brightness(factor): blend with black."""
    apply_lut(src, dst, brightness_lut(factor))


@njit
def grey_mean(image):
    """The mean of PIL's grey image, rounded to an integer (ImageEnhance.Contrast)."""
    values = flat(image)
    total = 0
    for p in range(image.shape[0] * image.shape[1]):
        total += luma(values[3 * p], values[3 * p + 1], values[3 * p + 2])
    return int(total / (image.shape[0] * image.shape[1]) + 0.5)


@njit
def adjust_contrast(src, dst, factor):
    """PIL ImageEnhance.Contrast(factor): blend with the image's mean grey (0 flat grey)."""
    apply_lut(src, dst, contrast_lut(grey_mean(src), factor))


@njit
def adjust_saturation(src, dst, factor):
    """PIL ImageEnhance.Color(factor): blend each pixel with its own grey (0 greyscale)."""
    f = np.float32(factor)
    s, d = flat(src), flat(dst)
    for p in range(src.shape[0] * src.shape[1]):
        i = 3 * p
        r, g, b = s[i], s[i + 1], s[i + 2]
        grey = luma(r, g, b)
        d[i] = blend(grey, r, f)
        d[i + 1] = blend(grey, g, f)
        d[i + 2] = blend(grey, b, f)


@njit
def to_grayscale(src, dst):
    """PIL ``convert('L')`` written to all three channels (torchvision's RandomGrayscale keeps
    three channels too)."""
    s, d = flat(src), flat(dst)
    for p in range(src.shape[0] * src.shape[1]):
        i = 3 * p
        grey = luma(s[i], s[i + 1], s[i + 2])
        d[i] = grey
        d[i + 1] = grey
        d[i + 2] = grey


@njit(inline='always')
def _rounded(v):
    return np.uint8(min(max(np.floor(v + 0.5), 0.0), 255.0))


@njit
def adjust_hue(src, dst, shift):
    """Rotate every pixel's HSV hue by ``shift`` turns (-0.5..0.5), keeping saturation and
    value; float64 maths, rounded to nearest. torchvision (PIL has no hue op) converts with
    x * 255.999 truncated instead, so results differ by at most one level."""
    h, w, _ = src.shape
    for y in range(h):
        for x in range(w):
            r = np.float64(src[y, x, 0])
            g = np.float64(src[y, x, 1])
            b = np.float64(src[y, x, 2])
            hi = max(r, g, b)
            lo = min(r, g, b)
            d = hi - lo
            if d == 0.0:
                dst[y, x, 0], dst[y, x, 1], dst[y, x, 2] = src[y, x, 0], src[y, x, 1], src[y, x, 2]
                continue
            if hi == r:
                hue = (g - b) / d
            elif hi == g:
                hue = (b - r) / d + 2.0
            else:
                hue = (r - g) / d + 4.0
            hue += 6.0 * shift  # sector units, 6 per turn; now in (-4, 8)
            if hue < 0.0:
                hue += 6.0
            elif hue >= 6.0:
                hue -= 6.0
            sector = min(max(int(hue), 0), 5)
            frac = hue - np.floor(hue)
            falling = hi - d * frac  # PIL/colorsys q
            rising = lo + d * frac  # PIL/colorsys t
            if sector == 0:
                r, g, b = hi, rising, lo
            elif sector == 1:
                r, g, b = falling, hi, lo
            elif sector == 2:
                r, g, b = lo, hi, rising
            elif sector == 3:
                r, g, b = lo, falling, hi
            elif sector == 4:
                r, g, b = rising, lo, hi
            else:
                r, g, b = hi, lo, falling
            dst[y, x, 0], dst[y, x, 1], dst[y, x, 2] = _rounded(r), _rounded(g), _rounded(b)


@njit
def solarize_pixels(src, dst, threshold):
    """PIL ImageOps.solarize: invert values >= ``threshold``."""
    apply_lut(src, dst, solarize_lut(threshold))


@njit
def posterize_pixels(src, dst, bits):
    """PIL ImageOps.posterize: keep the ``bits`` (0..8) high bits of each value."""
    apply_lut(src, dst, posterize_lut(bits))


@njit
def invert_pixels(src, dst):
    """PIL ImageOps.invert."""
    apply_lut(src, dst, invert_lut())


@njit
def autocontrast_pixels(src, dst):
    """PIL ImageOps.autocontrast with no cutoff (see ``autocontrast_luts``)."""
    apply_channel_luts(src, dst, autocontrast_luts(src))


@njit
def equalize_pixels(src, dst):
    """PIL ImageOps.equalize (see ``equalize_luts``)."""
    apply_channel_luts(src, dst, equalize_luts(src))


@njit
def adjust_sharpness(src, dst, factor):
    """PIL ImageEnhance.Sharpness(factor): blend with the 3x3 smooth filter
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (rounded), border pixels unchanged (0 blurred,
    1 unchanged, 2 sharper). ``src`` and ``dst`` must be different arrays."""
    f = np.float32(factor)
    h, w, c = src.shape
    copy_pixels(src, dst)  # the border
    s, d = flat(src), flat(dst)
    row, inner = w * c, (w - 2) * c
    columns = np.empty(row, np.uint32)  # vertical 3-sums of one row
    smooth = np.empty(max(inner, 0), np.uint32)
    for y in range(1, h - 1):
        above, centre, below = s[(y - 1) * row:y * row], s[y * row:(y + 1) * row], s[(y + 1) * row:(y + 2) * row]
        for j in range(row):
            columns[j] = np.uint32(above[j]) + np.uint32(centre[j]) + np.uint32(below[j])
        left, middle, right, value = columns[:inner], columns[c:c + inner], columns[2 * c:], centre[c:c + inner]
        for j in range(inner):  # unsigned: the division by 26 vectorizes
            total = left[j] + middle[j] + right[j] + np.uint32(4) * np.uint32(value[j])
            smooth[j] = (np.uint32(2) * total + np.uint32(13)) // np.uint32(26)  # round(total / 13)
        out = d[y * row + c:(y + 1) * row - c]
        for j in range(inner):
            out[j] = blend(smooth[j], value[j], f)


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
                dst[y, x, k] = _rounded(line[x, k])


# ---------------------------------------------------------------- registered kernels

def requires_uint8(name: str, rgb: bool = False):
    """An ``output_type`` for op ``name`` refusing what colour ops cannot take: non-uint8
    images, and (``rgb``) images without three channels."""
    def output_type(image, **params):
        image.require_dtype(name, "uint8")
        if rgb and image.channels != 3:
            raise OpTypeError(f"'{name}' expects RGB images (3 channels) but gets {image.channels}")
        return image
    return output_type


def _colour_op(name: str, rgb: bool = False):
    """Register a kernel as ``name`` with a uint8 (and, if ``rgb``, 3-channel) input check."""
    return lambda kernel: register_op(name)(cpu_op(kernel, output_type=requires_uint8(name, rgb)))


@njit(inline='always')
def skipped(rng, p, image_in, image_out):
    """The gate of kernels whose ``p`` defaults to torchvision's instead of 1.0: True (after
    copying the image) when the op does not fire for this sample."""
    if bernoulli(rng, GATE_DRAW, p):
        return False
    copy_pixels(image_in, image_out)
    return True


@njit(inline='always')
def jitter_factor(rng, draw, strength):
    """torchvision ColorJitter's factor: uniform in [max(0, 1 - strength), 1 + strength]."""
    return uniform_range(rng, draw, max(0.0, 1.0 - strength), 1.0 + strength)


@njit
def jitter_order(rng):
    """ColorJitter's random order of its four parts (0 brightness, 1 contrast, 2 saturation,
    3 hue): a uniform permutation by Fisher-Yates from draws 0-2 of ``rng``."""
    order = np.arange(4)
    for i in range(3, 0, -1):
        j = randint(rng, 3 - i, 0, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


@_colour_op("brightness")
def brightness(image_in, image_out, rng, strength: NonNegativeFloat):
    """Scale brightness by a factor drawn uniformly per image from [max(0, 1 - strength),
    1 + strength] (torchvision ColorJitter's brightness), applied as PIL's Brightness.
    ``strength`` >= 0 (required); ``p`` (default 1.0): probability per image. Draw 0: factor."""
    adjust_brightness(image_in, image_out, jitter_factor(rng, 0, strength))


@_colour_op("contrast", rgb=True)
def contrast(image_in, image_out, rng, strength: NonNegativeFloat):
    """Scale contrast around the mean grey by a factor uniform in [max(0, 1 - strength),
    1 + strength] per image (ColorJitter's contrast), applied as PIL's Contrast.
    ``strength`` >= 0 (required); ``p`` (default 1.0). Draw 0: factor."""
    adjust_contrast(image_in, image_out, jitter_factor(rng, 0, strength))


@_colour_op("saturation", rgb=True)
def saturation(image_in, image_out, rng, strength: NonNegativeFloat):
    """Scale saturation by a factor uniform in [max(0, 1 - strength), 1 + strength] per image
    (ColorJitter's saturation), applied as PIL's Color. ``strength`` >= 0 (required);
    ``p`` (default 1.0). Draw 0: factor."""
    adjust_saturation(image_in, image_out, jitter_factor(rng, 0, strength))


@_colour_op("hue", rgb=True)
def hue(image_in, image_out, rng, strength: Annotated[float, Range(0.0, 0.5)]):
    """Rotate the hue by a shift uniform in [-strength, strength] turns per image
    (ColorJitter's hue; see ``adjust_hue`` for the rounding). ``strength`` in [0, 0.5]
    (required); ``p`` (default 1.0). Draw 0: shift."""
    adjust_hue(image_in, image_out, uniform_range(rng, 0, -strength, strength))


@_colour_op("color_jitter", rgb=True)
def color_jitter(image_in, image_out, rng, brightness: NonNegativeFloat = 0.0,
                 contrast: NonNegativeFloat = 0.0, saturation: NonNegativeFloat = 0.0,
                 hue: Annotated[float, Range(0.0, 0.5)] = 0.0):
    """torchvision ColorJitter: brightness, contrast, saturation and hue changes (each as the op
    of that name; a strength of 0, the default, skips it) in a random order per image.
    ``p`` (default 1.0): probability per image. Draws 0-2: the order (Fisher-Yates);
    draws 3-6: the brightness, contrast, saturation factors and hue shift. Only
    ColorJitter's single-number strengths are supported, not [min, max] ranges."""
    copy_pixels(image_in, image_out)
    for part in jitter_order(rng):
        if part == 0 and brightness > 0:
            adjust_brightness(image_out, image_out, jitter_factor(rng, 3, brightness))
        elif part == 1 and contrast > 0:
            adjust_contrast(image_out, image_out, jitter_factor(rng, 4, contrast))
        elif part == 2 and saturation > 0:
            adjust_saturation(image_out, image_out, jitter_factor(rng, 5, saturation))
        elif part == 3 and hue > 0:
            adjust_hue(image_out, image_out, uniform_range(rng, 6, -hue, hue))


@_colour_op("grayscale", rgb=True)
def grayscale(image_in, image_out, rng, p: Probability = 0.1):
    """torchvision RandomGrayscale: with probability ``p`` (default 0.1, torchvision's) replace
    the image by its PIL grey level in all three channels (PIL's rounded luma; torchvision's
    truncated 0.2989/0.587/0.114 luma can be one level darker)."""
    if not skipped(rng, p, image_in, image_out):
        to_grayscale(image_in, image_out)


@_colour_op("solarize")
def solarize(image_in, image_out, rng, threshold: Annotated[float, Range(0.0, 255.0)],
             p: Probability = 0.5):
    """torchvision RandomSolarize / PIL solarize: invert every value >= ``threshold``
    (0..255, required) with probability ``p`` (default 0.5, torchvision's) per image."""
    if not skipped(rng, p, image_in, image_out):
        solarize_pixels(image_in, image_out, threshold)


@_colour_op("posterize")
def posterize(image_in, image_out, rng, bits: Annotated[int, Range(0, 8)], p: Probability = 0.5):
    """torchvision RandomPosterize / PIL posterize: keep the ``bits`` (0..8, required) high bits
    of each value, with probability ``p`` (default 0.5) per image."""
    if not skipped(rng, p, image_in, image_out):
        posterize_pixels(image_in, image_out, bits)


@_colour_op("autocontrast")
def autocontrast(image_in, image_out, rng, p: Probability = 0.5):
    """torchvision RandomAutocontrast / PIL autocontrast: stretch each channel's range to
    [0, 255], with probability ``p`` (default 0.5) per image."""
    if not skipped(rng, p, image_in, image_out):
        autocontrast_pixels(image_in, image_out)


@_colour_op("equalize")
def equalize(image_in, image_out, rng, p: Probability = 0.5):
    """torchvision RandomEqualize / PIL equalize: flatten each channel's histogram, with
    probability ``p`` (default 0.5) per image."""
    if not skipped(rng, p, image_in, image_out):
        equalize_pixels(image_in, image_out)


@_colour_op("invert")
def invert(image_in, image_out, rng, p: Probability = 0.5):
    """torchvision RandomInvert / PIL invert: 255 - value, with probability ``p`` (default 0.5)
    per image."""
    if not skipped(rng, p, image_in, image_out):
        invert_pixels(image_in, image_out)


@_colour_op("sharpness")
def sharpness(image_in, image_out, rng, factor: NonNegativeFloat, p: Probability = 0.5):
    """torchvision RandomAdjustSharpness / PIL Sharpness: blend with a 3x3 smoothed copy by
    ``factor`` (>= 0, required; 0 blurs, 1 keeps, 2 sharpens), with probability ``p``
    (default 0.5) per image."""
    if not skipped(rng, p, image_in, image_out):
        adjust_sharpness(image_in, image_out, factor)


def _blur_type(image, kernel_size, sigma):
    requires_uint8("gaussian_blur")(image)
    if kernel_size % 2 == 0:
        raise OpTypeError(f"'gaussian_blur' needs an odd kernel_size, got {kernel_size}")
    return image


@register_op("gaussian_blur")
@cpu_op(output_type=_blur_type)
def gaussian_blur(image_in, image_out, rng, kernel_size: Annotated[int, Range(1)],
                  sigma: Annotated[Tuple[float, float], Ascending(),
                                   Range(0.0, None, low_open=True)] = (0.1, 2.0)):
    """torchvision GaussianBlur: blur with a square ``kernel_size`` (odd, required) Gaussian
    whose std is drawn uniformly per image from ``sigma`` = [min, max] (> 0, default
    [0.1, 2.0]); mirror borders (see ``gaussian_blur_pixels``). ``p`` (default 1.0):
    probability per image. Draw 0: sigma. Only square kernels (one int kernel_size)."""
    gaussian_blur_pixels(image_in, image_out, kernel_size, uniform_range(rng, 0, sigma[0], sigma[1]))


# ---------------------------------------------------------------- per-image tables (fusion)
# Each point-map op declares the table its kernel applies to one image, drawn from the same key
# with the same draws and gate, so that the compiler can fuse a run of them into one table
# (operations/cpu/fused.py): ``point_lut(rng, *params)`` -> uint8[256] for every channel, or
# ``histogram_luts(hist, rng, *params)`` -> uint8[channels, 256] from the input's histograms.

@njit(inline='always')
def fires(rng, p):
    """Whether a kernel with its own ``p`` fires for this sample (``skipped``'s draw)."""
    return bernoulli(rng, GATE_DRAW, p)


@njit
def brightness_table(rng, strength):
    return brightness_lut(jitter_factor(rng, 0, strength))


@njit
def solarize_table(rng, threshold, p):
    return solarize_lut(threshold) if fires(rng, p) else identity_lut()


@njit
def posterize_table(rng, bits, p):
    return posterize_lut(bits) if fires(rng, p) else identity_lut()


@njit
def invert_table(rng, p):
    return invert_lut() if fires(rng, p) else identity_lut()


@njit
def autocontrast_tables(hist, rng, p):
    return autocontrast_histogram_luts(hist) if fires(rng, p) else identity_luts(hist.shape[0])


@njit
def equalize_tables(hist, rng, p):
    return equalize_histogram_luts(hist) if fires(rng, p) else identity_luts(hist.shape[0])


brightness.point_lut = staticmethod(brightness_table)
solarize.point_lut = staticmethod(solarize_table)
posterize.point_lut = staticmethod(posterize_table)
invert.point_lut = staticmethod(invert_table)
autocontrast.histogram_luts = staticmethod(autocontrast_tables)
equalize.histogram_luts = staticmethod(equalize_tables)
