"""Occlusion ops: cutout and random erasing (rectangles filled with a constant, the image's
mean colour or noise)."""
from typing import Annotated, Literal, Union

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..normalization import MEAN, STD
from ..authoring import cpu_op
from ..base import Gate
from ..params import MAX_SIDE, AreaRange, AspectRange, Count, Range
from ..registry import register_op
from ..rng import derive, normal, randint, uniform
from .pixels import copy_pixels, flat
from .values import Fill, fill_value

#: torchvision's number of tries to place one erasure
ATTEMPTS = 10
#: draw numbers reserved per erasure (ATTEMPTS x 4 used)
DRAWS_PER_ERASURE = 64
#: 'random' erasing noise: N(0, 1) in ImageNet-normalized units, in 0-255 pixel units
NOISE_MEAN = np.array(MEAN["imagenet"])
NOISE_STD = np.array(STD["imagenet"])

CONSTANT, MEAN_COLOUR, NOISE = 0, 1, 2
EraseValue = Union[Literal["zero", "mean", "random"], Annotated[int, Range(0, 255)]]


@njit
def fill_rect(image, y, x, h, w, fill):
    """Set ``image[y:y+h, x:x+w]`` to ``fill`` (a grey level or a per-channel tuple)."""
    width, channels = image.shape[1], image.shape[2]
    pixels = flat(image)
    for row in range(y, y + h):
        start = (row * width + x) * channels
        for i in range(w * channels):
            pixels[start + i] = fill_value(fill, i % channels)


@njit
def channel_means(image):
    """The image's per-channel mean, rounded half to even."""
    channels, pixels = image.shape[2], image.shape[0] * image.shape[1]
    values = flat(image)
    sums = np.zeros(channels)
    for c in range(channels):
        for p in range(pixels):
            sums[c] += values[p * channels + c]
    return np.rint(sums / (image.shape[0] * image.shape[1]))


@njit
def fill_noise(image, y, x, h, w, key):
    """Fill the rectangle with N(0, 1) noise in ImageNet-normalized units mapped to pixels:
    round(mean_c + std_c * z), clipped to 0..255, z drawn per pixel and channel from ``key``."""
    channels = image.shape[2]
    for yy in range(h):
        for xx in range(w):
            for c in range(channels):
                z = normal(key, (yy * w + xx) * channels + c)
                level = np.rint(NOISE_MEAN[c % 3] + NOISE_STD[c % 3] * z)
                image[y + yy, x + xx, c] = min(max(level, 0.0), 255.0)


@njit
def erasing_box(key, first_draw, height, width, scale, ratio):
    """torchvision v2 ``RandomErasing.get_params`` with keyed draws: ``(y, x, h, w)``, or
    h = w = 0 when no attempt fits (the image stays as is).

    Up to 10 attempts using draws first_draw + 4k..+3: area uniform in ``scale`` x image area,
    ratio log-uniform in ``ratio``, h = round(sqrt(area * r)), w = round(sqrt(area / r)),
    accepted if h < height and w < width; the offset is uniform over the valid positions."""
    area = height * width
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    for attempt in range(ATTEMPTS):
        draw = first_draw + 4 * attempt
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform(key, draw))
        aspect = np.exp(log_lo + (log_hi - log_lo) * uniform(key, draw + 1))
        h = np.int64(np.rint(np.sqrt(target * aspect)))
        w = np.int64(np.rint(np.sqrt(target / aspect)))
        if h < height and w < width:
            return randint(key, draw + 2, 0, height - h + 1), randint(key, draw + 3, 0, width - w + 1), h, w
    return 0, 0, 0, 0


def erase_mode(value):
    """``(mode, level)`` for a ``value`` spec: CONSTANT with a grey level, MEAN_COLOUR or NOISE."""


@overload(erase_mode, inline='always')
def _erase_mode(value):
    if isinstance(value, types.Number):
        return lambda value: (CONSTANT, float(value))
    if isinstance(value, types.UnicodeType):
        def from_name(value):
            if value == "mean":
                return MEAN_COLOUR, 0.0
            if value == "random":
                return NOISE, 0.0
            return CONSTANT, 0.0
        return from_name


@register_op("cutout")
def cutout(image_in, image_out, rng, size: Annotated[int, Range(1, MAX_SIDE)], fill: Fill = 0):
    """Cutout (DeVries & Taylor; FFCV's ``Cutout``): fill a ``size`` x ``size`` square with
    ``fill``; its centre is uniform over the image (draws 0, 1) and the square is clipped at
    the borders, so less may be covered near an edge. The square spans
    [c - size // 2, c - size // 2 + size) on each axis.

    - ``size``: side in pixels, >= 1 (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    height, width = image_in.shape[0], image_in.shape[1]
    copy_pixels(image_in, image_out)
    y0 = randint(rng, 0, 0, height) - size // 2
    x0 = randint(rng, 1, 0, width) - size // 2
    y, x = max(y0, 0), max(x0, 0)
    fill_rect(image_out, y, x, min(y0 + size, height) - y, min(x0 + size, width) - x, fill)


#: torchvision's RandomErasing draws its p first: draw 0 of the op's own key
ERASING_GATE = Gate(on_kernel_key=True, draw=0)


@register_op("random_erasing")
@cpu_op(p=0.5, gate=ERASING_GATE)
def random_erasing(image_in, image_out, rng, scale: AreaRange = (0.02, 0.33),
                   ratio: AspectRange = (0.3, 3.3), value: EraseValue = "zero", count: Count = 1):
    """torchvision v2 ``RandomErasing`` on uint8 images: with probability ``p`` (draw 0),
    erase ``count`` rectangles, each placed independently by ``erasing_box`` (erasure k uses
    draws 1 + 64k ...); a rectangle that finds no place in 10 attempts is skipped. Rectangles
    may overlap.

    - ``p``: probability, default 0.5.
    - ``scale``: [min, max] erased fraction of the image area, default [0.02, 0.33].
    - ``ratio``: [min, max] aspect ratio h/w, log-uniform, default [0.3, 3.3].
    - ``value``: "zero" (default, torchvision's 0), a grey level 0..255, "mean" (the image's
      per-channel mean colour, rounded) or "random": per-pixel noise. torchvision draws N(0, 1)
      in normalized space; here it is N(0, 1) in ImageNet-normalized units mapped back to
      pixels (mean + std * z, rounded, clipped to 0..255), since this op runs before normalize.
    - ``count``: rectangles per image, >= 1, default 1 (torchvision: 1).
    """
    copy_pixels(image_in, image_out)
    height, width = image_in.shape[0], image_in.shape[1]
    mode, level = erase_mode(value)
    for k in range(count):
        y, x, h, w = erasing_box(rng, 1 + DRAWS_PER_ERASURE * k, height, width, scale, ratio)
        if mode == NOISE:
            fill_noise(image_out, y, x, h, w, derive(rng, k))
        elif mode == MEAN_COLOUR:
            fill_rect(image_out, y, x, h, w, channel_means(image_in))
        else:
            fill_rect(image_out, y, x, h, w, level)