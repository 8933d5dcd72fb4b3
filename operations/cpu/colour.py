"""Per-pixel colour ops on uint8 RGB images: saturation, hue, greyscale and ColorJitter, with
PIL's meaning and rounding (see ``tone``: PIL's luma and blend). Each op is one kernel
declaration (``authoring.cpu_op``); the ``adjust_*`` functions hold the maths the policies
reuse."""
from typing import Annotated

import numpy as np
from numba import njit

from ..authoring import cpu_op
from ..base import OWN_KEY_GATE
from ..params import NonNegativeFloat, Range
from ..registry import register_op
from ..rng import randint, uniform_range
from ..targets import IMAGE_ONLY
from ..types import requires_uint8
from .pixels import apply_lut, copy_pixels, flat, rounded
from .tone import blend, brightness_lut, contrast_lut, jitter_factor, luma

Strength = NonNegativeFloat
HueStrength = Annotated[float, Range(0.0, 0.5)]


@njit
def adjust_saturation(src, dst, factor):
    """PIL ImageEnhance.Color(factor): blend each pixel with its own grey (0 greyscale).
    ``src`` may be ``dst``. Two passes — each value's grey, then one flat blend loop that
    vectorizes — 1.5x faster than blending pixel by pixel (``benchmarks/policy_ops_bench.py``)."""
    f = np.float32(factor)
    s, d = flat(src), flat(dst)
    grey = np.empty(s.size, np.uint8)
    for p in range(src.shape[0] * src.shape[1]):
        i = 3 * p
        level = np.uint8(luma(s[i], s[i + 1], s[i + 2]))
        grey[i], grey[i + 1], grey[i + 2] = level, level, level
    for i in range(s.size):
        d[i] = blend(grey[i], s[i], f)


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
            dst[y, x, 0], dst[y, x, 1], dst[y, x, 2] = rounded(r), rounded(g), rounded(b)


@njit
def jitter_order(rng):
    """ColorJitter's random order of its four parts (0 brightness, 1 contrast, 2 saturation,
    3 hue): a uniform permutation by Fisher-Yates from draws 0-2 of ``rng``."""
    order = np.arange(4)
    for i in range(3, 0, -1):
        j = randint(rng, 3 - i, 0, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


@register_op("saturation")
@cpu_op(output_type=requires_uint8("saturation", rgb=True), targets=IMAGE_ONLY)
def saturation(image_in, image_out, rng, strength: Strength):
    """Scale saturation by a factor uniform in [max(0, 1 - strength), 1 + strength] per image
    (ColorJitter's saturation), applied as PIL's Color. ``strength`` >= 0 (required);
    ``p`` (default 1.0). Draw 0: factor."""
    adjust_saturation(image_in, image_out, jitter_factor(rng, 0, strength))


@register_op("hue")
@cpu_op(output_type=requires_uint8("hue", rgb=True), targets=IMAGE_ONLY)
def hue(image_in, image_out, rng, strength: HueStrength):
    """Rotate the hue by a shift uniform in [-strength, strength] turns per image
    (ColorJitter's hue; see ``adjust_hue`` for the rounding). ``strength`` in [0, 0.5]
    (required); ``p`` (default 1.0). Draw 0: shift."""
    adjust_hue(image_in, image_out, uniform_range(rng, 0, -strength, strength))


@register_op("color_jitter")
@cpu_op(output_type=requires_uint8("color_jitter", rgb=True), targets=IMAGE_ONLY)
def color_jitter(image_in, image_out, rng, brightness: Strength = 0.0, contrast: Strength = 0.0,
                 saturation: Strength = 0.0, hue: HueStrength = 0.0):
    """torchvision ColorJitter: brightness, contrast, saturation and hue changes (each as the op
    of that name; a strength of 0, the default, skips it) in a random order per image.
    ``p`` (default 1.0): probability per image. Draws 0-2: the order (Fisher-Yates);
    draws 3-6: the brightness, contrast, saturation factors and hue shift. Only
    ColorJitter's single-number strengths are supported, not [min, max] ranges."""
    copy_pixels(image_in, image_out)
    for part in jitter_order(rng):
        if part == 0 and brightness > 0:
            apply_lut(image_out, image_out, brightness_lut(jitter_factor(rng, 3, brightness)))
        elif part == 1 and contrast > 0:
            apply_lut(image_out, image_out, contrast_lut(image_out, jitter_factor(rng, 4, contrast)))
        elif part == 2 and saturation > 0:
            adjust_saturation(image_out, image_out, jitter_factor(rng, 5, saturation))
        elif part == 3 and hue > 0:
            adjust_hue(image_out, image_out, uniform_range(rng, 6, -hue, hue))


@register_op("grayscale")
@cpu_op(output_type=requires_uint8("grayscale", rgb=True), p=0.1, gate=OWN_KEY_GATE,
        targets=IMAGE_ONLY)
def grayscale(image_in, image_out, rng):
    """torchvision RandomGrayscale: with probability ``p`` (default 0.1, torchvision's) replace
    the image by its PIL grey level in all three channels (PIL's rounded luma; torchvision's
    truncated 0.2989/0.587/0.114 luma can be one level darker)."""
    to_grayscale(image_in, image_out)
