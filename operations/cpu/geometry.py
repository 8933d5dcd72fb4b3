"""Geometric per-sample ops: flips, translations, rotations, shears, affine warps.

Each op is declared by its matrix: ``matrix(height, width, rng, **params)`` returns the
inverse (output -> input) 2x3 matrix of its warp for one image, with the op's draws
(``authoring.affine``). The op's kernel warps with it (``warp.affine_warp``, nearest
neighbour, PIL's sampling), and the compiler's affine pass multiplies the matrices of a run of
these ops into one warp. Coordinates, angles and shears as in ``warp``.

``horizontal_flip`` has a device backend beside its declaration (``HorizontalFlipOnDevice``,
registered under the same name): ``image.device.ops`` selects it.
"""
from typing import Annotated, Tuple, Union

import numpy as np

from ..authoring import affine
from ..device.stage import DeviceOperation, TargetMirrorOnDevice, mirrored, nhwc
from ..params import MAX_SIDE, FloatRange, Probability, Range
from ..registry import register_alias, register_op
from ..rng import randint, uniform_range
from ..types import ImageType
from .pixels import flat
from .values import shear_ranges, symmetric_range
from .warp import affine_matrix, rotation_matrix, shear_matrix, translate_matrix

#: a rotation or shear range in degrees: a number d means [-d, d]
Degrees = Annotated[Union[float, Tuple[float, float]], Range(-180.0, 180.0)]
#: torchvision's shear: a number s (x in [-s, s]), [x_min, x_max] or [x_min, x_max, y_min, y_max]
Shear = Annotated[Union[float, Tuple[float, float], Tuple[float, float, float, float]],
                  Range(-89.0, 89.0)]
Fraction = Annotated[float, Range(0.0, 1.0)]


def mirror_rows(image_in, image_out):
    """Left-right mirror as a direct copy loop (1.6x faster unrolled for RGB than the general
    loop, and faster than the warp it equals)."""
    height, width, channels = image_in.shape
    src, dst = flat(image_in), flat(image_out)
    for y in range(height):
        row = y * width * channels
        for x in range(width):
            o, i = row + x * channels, row + (width - 1 - x) * channels
            if channels == 3:
                dst[o], dst[o + 1], dst[o + 2] = src[i], src[i + 1], src[i + 2]
            else:
                for c in range(channels):
                    dst[o + c] = src[i + c]


def mirror_columns(image_in, image_out):
    """Top-bottom mirror as a row copy loop."""
    height = image_in.shape[0]
    row = image_in.size // height
    src, dst = flat(image_in), flat(image_out)
    for y in range(height):
        o, i = y * row, (height - 1 - y) * row
        for k in range(row):
            dst[o + k] = src[i + k]


@register_op("horizontal_flip")
@affine(kernel=mirror_rows, p=0.5)
def horizontal_flip(height, width, rng):
    """torchvision RandomHorizontalFlip: mirror the image left-right (x -> width - x) with
    probability ``p`` (default 0.5, torchvision's) per image. In ``image.device.ops`` the
    device backend runs (same decisions, any dtype) and fuses with an adjacent ``normalize``."""
    m = np.zeros((2, 3))
    m[0, 0], m[0, 2], m[1, 1] = -1.0, width, 1.0
    return m


@register_op("horizontal_flip")
class HorizontalFlipOnDevice(DeviceOperation):
    """``horizontal_flip`` on the device batch: sample ``i`` is mirrored iff the CPU op's
    gate fires for it (``horizontal_flip.gate``: ``uniform(sample key, GATE_DRAW) < p``, the
    sample key of ``stream_key(seed, epoch, position)``), so the two backends make the same
    decisions. Any dtype; the output is channels_last. Per image, like torchvision's
    RandomHorizontalFlip (not per batch). Next to ``normalize`` it fuses with it; on a CPU
    device, alone on uint8 images, it runs per image in the JIT stage as the CPU backend."""

    def __init__(self, p: Probability = 0.5):
        super().__init__()

    def flips(self, indices):
        """Which samples this op mirrors."""
        return self.fires(indices, self.params["p"], horizontal_flip.gate)

    def forward(self, images, out, indices):
        nhwc(out).copy_(mirrored(nhwc(images), self.flips(indices)))

    def for_target(self, target):
        """The target mirrored for the same samples."""
        return TargetMirrorOnDevice(self, target)

    def jit_equivalent(self, image: ImageType):
        """The CPU backend at this op's position: the same decision per sample, on uint8
        images. None for floats (a flip after normalization that was not fused with it)."""
        if image.dtype != "uint8":
            return None
        twin = horizontal_flip(p=self.params["p"])
        twin.bind(self.clock, self.position)
        return twin


register_alias("flip", "horizontal_flip", stage="device")


@register_op("vertical_flip")
@affine(kernel=mirror_columns)
def vertical_flip(height, width, rng):
    """Mirror the image top-bottom: y -> height - y (with probability ``p``, default 1.0)."""
    m = np.zeros((2, 3))
    m[0, 0], m[1, 1], m[1, 2] = 1.0, -1.0, height
    return m


@register_op("pad_crop")
@affine
def pad_crop(height, width, rng, padding: Annotated[int, Range(0, MAX_SIDE)] = 4):
    """CIFAR's pad-and-crop (torchvision ``RandomCrop(size, padding)`` at the image's own size):
    pad by ``padding`` pixels of ``fill`` on every side, crop back to the original size at a
    uniform random offset; i.e. an integer translation by (dx, dy), each uniform in
    [-padding, padding] (draws 0 and 1).

    - ``padding``: pixels, >= 0, default 4.
    - ``fill``: grey level or [r, g, b] in 0..255, default 0 (torchvision's constant padding).
    - ``p``: probability, default 1.0.
    """
    return translate_matrix(randint(rng, 0, -padding, padding + 1),
                            randint(rng, 1, -padding, padding + 1))


@register_op("translate")
@affine
def translate(height, width, rng, max_fraction: Fraction):
    """Shift the image by whole pixels (torchvision ``RandomAffine(0, translate=(f, f))``):
    dx = round(u * f * width), u uniform in [-1, 1] (draw 0), dy likewise with height (draw 1);
    uncovered pixels get ``fill``.

    - ``max_fraction``: f, the largest shift as a fraction of the side, in [0, 1] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    max_dx, max_dy = max_fraction * width, max_fraction * height
    return translate_matrix(np.rint(uniform_range(rng, 0, -max_dx, max_dx)),
                            np.rint(uniform_range(rng, 1, -max_dy, max_dy)))


@register_op("rotate")
@affine
def rotate(height, width, rng, degrees: Degrees):
    """Rotate about the image centre by an angle uniform in ``degrees`` (draw 0),
    counter-clockwise for positive angles (torchvision ``RandomRotation``); nearest neighbour,
    corners get ``fill``.

    - ``degrees``: d for [-d, d], or [min, max], within [-180, 180] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    low, high = symmetric_range(degrees)
    return rotation_matrix(uniform_range(rng, 0, low, high), width / 2, height / 2)


@register_op("shear")
@affine
def shear(height, width, rng, degrees: Shear):
    """Shear about the image centre (torchvision ``RandomAffine(0, shear=degrees)``): x shear
    uniform in its range (draw 0), y shear in its range (draw 1, zero unless given).

    - ``degrees``: s for x in [-s, s]; [x_min, x_max]; or [x_min, x_max, y_min, y_max];
      within [-89, 89] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    x_low, x_high, y_low, y_high = shear_ranges(degrees)
    return shear_matrix(uniform_range(rng, 0, x_low, x_high), uniform_range(rng, 1, y_low, y_high),
                        width / 2, height / 2)


@register_op("random_affine")
@affine
def random_affine(height, width, rng, degrees: Degrees,
                  translate: Annotated[Tuple[float, float], Range(0.0, 1.0)] = (0.0, 0.0),
                  scale: Annotated[FloatRange, Range(0.0, None, low_open=True)] = (1.0, 1.0),
                  shear: Shear = 0.0):
    """torchvision's ``RandomAffine`` about the image centre, parameters drawn in its order:
    angle uniform in ``degrees`` (draw 0; clockwise for positive angles, as torchvision's
    ``F.affine``), shifts round(u * translate * side) with u uniform in [-1, 1] (draws 1, 2),
    scale uniform in ``scale`` (draw 3), shears uniform in their ranges (draws 4, 5).

    - ``degrees``: d for [-d, d], or [min, max], within [-180, 180] (required).
    - ``translate``: [fx, fy] largest shifts as fractions of width and height, default [0, 0].
    - ``scale``: [min, max] zoom factors, > 0, default [1, 1].
    - ``shear``: as in ``shear`` (a number, an x range, or x and y ranges), default 0.
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    low, high = symmetric_range(degrees)
    angle = uniform_range(rng, 0, low, high)
    max_dx, max_dy = translate[0] * width, translate[1] * height
    dx = np.rint(uniform_range(rng, 1, -max_dx, max_dx))
    dy = np.rint(uniform_range(rng, 2, -max_dy, max_dy))
    zoom = uniform_range(rng, 3, scale[0], scale[1])
    x_low, x_high, y_low, y_high = shear_ranges(shear)
    shear_x = uniform_range(rng, 4, x_low, x_high)
    shear_y = uniform_range(rng, 5, y_low, y_high)
    return affine_matrix(angle, dx, dy, zoom, shear_x, shear_y, width / 2, height / 2)
