"""A lab's own augmentations, kept outside the pureffcv package (docs/custom-ops.md).

A spec uses them by importing this module (``imports: [my_lab_augment]``) or by naming a
function directly (``my_lab_augment:swap_red_blue``). Each is a per-sample kernel: the maths
for one uint8 HWC image; pureffcv turns it into a parallel, keyed-random FFCV Operation with a
validated signature (and a probability ``p``, default 1.0).
"""
from typing import Annotated

import numpy as np

from operations import Range, affine, point_map, register_op
from operations.cpu.pixels import copy_pixels
from operations.rng import uniform_range


@register_op("channel_gain")
def channel_gain(image_in, image_out, rng,
                 strength: Annotated[float, Range(0.0, 1.0)] = 0.2,
                 channel: Annotated[int, Range(0, 2)] = 0):
    """Multiply one colour channel by a gain drawn per image, uniform in
    [1 - strength, 1 + strength]; round to nearest and clip to 255.

    - ``strength``: in [0, 1], default 0.2.
    - ``channel``: 0 (red), 1 (green) or 2 (blue), default 0.

    Randomness: one draw per image (draw 0 of the sample's key).
    """
    gain = uniform_range(rng, 0, 1.0 - strength, 1.0 + strength)
    copy_pixels(image_in, image_out)  # 25x faster than image_out[:] = image_in
    for y in range(image_in.shape[0]):
        for x in range(image_in.shape[1]):
            scaled = np.floor(image_in[y, x, channel] * gain + 0.5)
            image_out[y, x, channel] = min(scaled, 255.0)


def swap_red_blue(image_in, image_out, rng):
    """Swap the red and blue channels (RGB <-> BGR). Not registered: a spec names it by its
    dotted path, ``my_lab_augment:swap_red_blue``."""
    for y in range(image_in.shape[0]):
        for x in range(image_in.shape[1]):
            image_out[y, x, 0] = image_in[y, x, 2]
            image_out[y, x, 1] = image_in[y, x, 1]
            image_out[y, x, 2] = image_in[y, x, 0]


# The short forms: declare the maths the compiler can see, and the op fuses with its
# neighbours (docs/custom-ops.md, "Point maps and warps").

@register_op("gamma")
@point_map
def gamma(rng, low: Annotated[float, Range(0.1, 10.0)] = 0.7,
          high: Annotated[float, Range(0.1, 10.0)] = 1.4):
    """Gamma per image: v -> round(255 (v / 255) ** g), g uniform in [low, high] (draw 0)."""
    g = uniform_range(rng, 0, low, high)
    lut = np.empty(256, np.uint8)
    for v in range(256):
        lut[v] = np.uint8(np.floor(255.0 * (v / 255.0) ** g + 0.5))
    return lut


@register_op("zoom")
@affine
def zoom(height, width, rng, low: Annotated[float, Range(0.25, 4.0)] = 0.8,
         high: Annotated[float, Range(0.25, 4.0)] = 1.25):
    """Zoom about the centre by a factor z uniform in [low, high] (draw 0): the output pixel
    at (x, y) shows the input at ((x - w/2) / z + w/2, (y - h/2) / z + h/2); ``fill``
    where that is outside."""
    z = uniform_range(rng, 0, low, high)
    m = np.zeros((2, 3))
    m[0, 0], m[0, 2] = 1.0 / z, width / 2 * (1.0 - 1.0 / z)
    m[1, 1], m[1, 2] = 1.0 / z, height / 2 * (1.0 - 1.0 / z)
    return m
