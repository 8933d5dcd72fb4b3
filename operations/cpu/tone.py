"""Tone ops: per-channel point maps on uint8 images, with PIL's ImageEnhance/ImageOps meaning.

Each op is declared by its table (``authoring.point_map``: ``lut(rng, **params) ->
uint8[256]`` for every channel, or ``authoring.channel_map``: per-channel tables from the
image's histograms), so a run of them fuses into one table per image. The table builders
(``*_lut``) are what the policies and ``color_jitter`` apply too.

Rounding is PIL's, which torchvision's tensor ops imitate within one grey level: blends are
``degenerate + factor * (image - degenerate)`` in float32, clipped to [0, 255] and truncated
(PIL's ``ImagingBlend``; torchvision computes ``factor * image + (1 - factor) * degenerate``
and also truncates); grey is PIL's ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``
(rounded; torchvision's truncated ``0.2989 R + 0.587 G + 0.114 B`` can be a level darker);
contrast blends with the grey image's mean rounded to an integer (PIL; torchvision uses the
unrounded mean of the truncated grey image).
"""
from typing import Annotated

import numpy as np
from numba import njit

from ..authoring import channel_map, cpu_op, point_map
from ..base import OWN_KEY_GATE
from ..params import NonNegativeFloat, Range
from ..registry import register_op
from ..rng import uniform_range
from ..targets import IMAGE_ONLY
from ..types import requires_uint8
from .pixels import apply_lut, flat, identity_lut

# ---------------------------------------------------------------- per-pixel helpers

@njit(inline='always')
def luma(r, g, b):
    """PIL's grey level of an RGB pixel (ITU-R 601-2 luma, fixed point, rounded); int32
    (the sum stays below 2**24), which vectorizes where int64 does not."""
    return (np.int32(r) * np.int32(19595) + np.int32(g) * np.int32(38470) +
            np.int32(b) * np.int32(7471) + np.int32(32768)) >> np.int32(16)


@njit(inline='always')
def blend(degenerate, value, factor):
    """PIL's blend of one channel value: degenerate + factor * (value - degenerate), float32,
    clipped to [0, 255] and truncated. ``factor`` must already be a float32. Branch-free and
    in float32 (the difference of two levels is exact there), so the pixel loops that call
    it vectorize: AVX2 converts int32, not Numba's int64, to and from float32 in vectors."""
    low = np.float32(degenerate)
    out = low + factor * (np.float32(value) - low)
    return np.uint8(np.int32(min(max(out, np.float32(0.0)), np.float32(255.0))))


@njit(inline='always')
def jitter_factor(rng, draw, strength):
    """torchvision ColorJitter's factor: uniform in [max(0, 1 - strength), 1 + strength]."""
    return uniform_range(rng, draw, max(0.0, 1.0 - strength), 1.0 + strength)


# ---------------------------------------------------------------- tables

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
def grey_mean(image):
    """The mean of PIL's grey image, rounded to an integer (ImageEnhance.Contrast)."""
    values = flat(image)
    total = 0
    for p in range(image.shape[0] * image.shape[1]):
        total += luma(values[3 * p], values[3 * p + 1], values[3 * p + 2])
    return int(total / (image.shape[0] * image.shape[1]) + 0.5)


@njit
def contrast_lut(image, factor):
    """PIL ImageEnhance.Contrast of ``image``: blend with its rounded grey mean."""
    return blend_lut(grey_mean(image), factor)


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
def autocontrast_luts(hist):
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
def equalize_luts(hist):
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


# ---------------------------------------------------------------- the ops

@register_op("brightness")
@point_map(output_type=requires_uint8("brightness"))
def brightness(rng, strength: NonNegativeFloat):
    """Scale brightness by a factor drawn uniformly per image from [max(0, 1 - strength),
    1 + strength] (torchvision ColorJitter's brightness), applied as PIL's Brightness.
    ``strength`` >= 0 (required); ``p`` (default 1.0): probability per image. Draw 0: factor."""
    return brightness_lut(jitter_factor(rng, 0, strength))


@register_op("contrast")
@cpu_op(output_type=requires_uint8("contrast", rgb=True), targets=IMAGE_ONLY)
def contrast(image_in, image_out, rng, strength: NonNegativeFloat):
    """Scale contrast around the mean grey by a factor uniform in [max(0, 1 - strength),
    1 + strength] per image (ColorJitter's contrast), applied as PIL's Contrast.
    ``strength`` >= 0 (required); ``p`` (default 1.0). Draw 0: factor. (Its table depends on
    the image's grey mean, across channels, so it does not fuse with other point maps.)"""
    apply_lut(image_in, image_out, contrast_lut(image_in, jitter_factor(rng, 0, strength)))


@register_op("solarize")
@point_map(output_type=requires_uint8("solarize"), p=0.5, gate=OWN_KEY_GATE)
def solarize(rng, threshold: Annotated[float, Range(0.0, 255.0)]):
    """torchvision RandomSolarize / PIL solarize: invert every value >= ``threshold``
    (0..255, required) with probability ``p`` (default 0.5, torchvision's) per image."""
    return solarize_lut(threshold)


@register_op("posterize")
@point_map(output_type=requires_uint8("posterize"), p=0.5, gate=OWN_KEY_GATE)
def posterize(rng, bits: Annotated[int, Range(0, 8)]):
    """torchvision RandomPosterize / PIL posterize: keep the ``bits`` (0..8, required) high bits
    of each value, with probability ``p`` (default 0.5) per image."""
    return posterize_lut(bits)


@register_op("invert")
@point_map(output_type=requires_uint8("invert"), p=0.5, gate=OWN_KEY_GATE)
def invert(rng):
    """torchvision RandomInvert / PIL invert: 255 - value, with probability ``p`` (default 0.5)
    per image."""
    return invert_lut()


@register_op("autocontrast")
@channel_map(output_type=requires_uint8("autocontrast"), p=0.5, gate=OWN_KEY_GATE)
def autocontrast(hist, rng):
    """torchvision RandomAutocontrast / PIL autocontrast: stretch each channel's range to
    [0, 255], with probability ``p`` (default 0.5) per image."""
    return autocontrast_luts(hist)


@register_op("equalize")
@channel_map(output_type=requires_uint8("equalize"), p=0.5, gate=OWN_KEY_GATE)
def equalize(hist, rng):
    """torchvision RandomEqualize / PIL equalize: flatten each channel's histogram, with
    probability ``p`` (default 0.5) per image."""
    return equalize_luts(hist)
