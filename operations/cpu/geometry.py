"""Geometric per-sample ops: flips, translations, rotations, shears, affine warps.

Everything but the flips goes through one nearest-neighbour warp, ``affine_warp``, driven by an
inverse 2x3 matrix from the builders below (the planner and the policies compose and reuse
them). Coordinates are continuous pixel coordinates as in PIL: pixel (x, y) covers
[x, x+1) x [y, y+1), its centre is (x + 0.5, y + 0.5) and the image centre is (w/2, h/2).
Angles and shears are in degrees and follow torchvision's ``F.affine`` / ``F.rotate``.
"""
from typing import Annotated, Tuple, Union

import numpy as np
from numba import njit

from ..params import MAX_SIDE, FloatRange, Range
from ..registry import register_op
from ..rng import randint, uniform_range
from .pixels import copy_pixels, flat
from .values import Fill, fill_value, shear_ranges, symmetric_range

#: a rotation or shear range in degrees: a number d means [-d, d]
Degrees = Annotated[Union[float, Tuple[float, float]], Range(-180.0, 180.0)]
#: torchvision's shear: a number s (x in [-s, s]), [x_min, x_max] or [x_min, x_max, y_min, y_max]
Shear = Annotated[Union[float, Tuple[float, float], Tuple[float, float, float, float]],
                  Range(-89.0, 89.0)]
Fraction = Annotated[float, Range(0.0, 1.0)]


@njit
def affine_warp(src, dst, matrix, fill):
    """``dst[y, x] = src[floor(matrix @ (x + 0.5, y + 0.5, 1))]``, ``fill`` where that lands
    outside ``src``: nearest-neighbour sampling exactly as PIL's ``Image.transform(AFFINE,
    NEAREST)`` (``matrix`` maps output coordinates to input coordinates, like PIL's data).

    Per output row: first each pixel's source offset (one past the image, where a fill pixel
    is appended, when outside), then one gather pass (see ``pixels``)."""
    height, width, channels = src.shape
    out_width = dst.shape[1]
    a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    d, e, f = matrix[1, 0], matrix[1, 1], matrix[1, 2]
    outside = src.size
    source = np.empty(outside + channels, src.dtype)
    copy_pixels(src, source[:outside])
    for ch in range(channels):
        source[outside + ch] = fill_value(fill, ch)
    out = flat(dst)
    where = np.empty(out_width, np.int64)
    for y in range(dst.shape[0]):
        for x in range(out_width):
            u = a * (x + 0.5) + b * (y + 0.5) + c
            v = d * (x + 0.5) + e * (y + 0.5) + f
            inside = (u >= 0.0) & (u < width) & (v >= 0.0) & (v < height)
            where[x] = (np.int64(v) * width + np.int64(u)) * channels if inside else outside
        row = out[y * out_width * channels:(y + 1) * out_width * channels]
        if channels == 3:  # unrolled: 1.4x faster than the general loop
            for x in range(out_width):
                i = where[x]
                row[3 * x], row[3 * x + 1], row[3 * x + 2] = source[i], source[i + 1], source[i + 2]
        else:
            for x in range(out_width):
                for ch in range(channels):
                    row[x * channels + ch] = source[where[x] + ch]


@njit
def affine_matrix(angle, tx, ty, scale, shear_x, shear_y, cx, cy):
    """The inverse (output -> input) 2x3 matrix of torchvision's ``F.affine``: rotate by
    ``angle`` degrees clockwise, scale, shear by (``shear_x``, ``shear_y``) degrees, all about
    (``cx``, ``cy``), then translate by (``tx``, ``ty``) pixels.
    The forward map is T * C * R(angle) * S(scale) * SHy(shear_y) * SHx(shear_x) * C^-1."""
    rot = np.radians(angle)
    sx, sy = np.radians(shear_x), np.radians(shear_y)
    a = np.cos(rot - sy) / np.cos(sy)
    b = -np.cos(rot - sy) * np.tan(sx) / np.cos(sy) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = -np.sin(rot - sy) * np.tan(sx) / np.cos(sy) + np.cos(rot)
    m = np.empty((2, 3))
    m[0, 0], m[0, 1] = d / scale, -b / scale
    m[1, 0], m[1, 1] = -c / scale, a / scale
    m[0, 2] = cx + m[0, 0] * (-cx - tx) + m[0, 1] * (-cy - ty)
    m[1, 2] = cy + m[1, 0] * (-cx - tx) + m[1, 1] * (-cy - ty)
    return m


@njit
def translate_matrix(tx, ty):
    """Move the content by (``tx``, ``ty``) pixels (right and down for positive values)."""
    return affine_matrix(0.0, tx, ty, 1.0, 0.0, 0.0, 0.0, 0.0)


@njit
def rotation_matrix(degrees, cx, cy):
    """Rotate by ``degrees`` counter-clockwise about (``cx``, ``cy``), like torchvision's
    ``F.rotate`` and PIL's ``Image.rotate``."""
    return affine_matrix(-degrees, 0.0, 0.0, 1.0, 0.0, 0.0, cx, cy)


@njit
def shear_matrix(shear_x, shear_y, cx, cy):
    """Shear by (``shear_x``, ``shear_y``) degrees about (``cx``, ``cy``) (torchvision's
    ``F.affine(shear=...)``; its AutoAugment ops pass the top-left corner (0, 0))."""
    return affine_matrix(0.0, 0.0, 0.0, 1.0, shear_x, shear_y, cx, cy)


# ---------------------------------------------------------------- per-image matrices
# Each affine op's inverse matrix for one image of a given size, with the op's draws. The
# kernels below warp with them; the compiler's affine pass composes a run of them into one
# warp (``operations/cpu/fused.py``), so each is declared on its op at the end of this module.

@njit
def horizontal_flip_inverse(height, width, rng):
    """Mirror left-right: x -> width - x (exact on pixel centres)."""
    m = np.zeros((2, 3))
    m[0, 0], m[0, 2], m[1, 1] = -1.0, width, 1.0
    return m


@njit
def vertical_flip_inverse(height, width, rng):
    """Mirror top-bottom: y -> height - y (exact on pixel centres)."""
    m = np.zeros((2, 3))
    m[0, 0], m[1, 1], m[1, 2] = 1.0, -1.0, height
    return m


@njit
def pad_crop_inverse(height, width, rng, padding):
    return translate_matrix(randint(rng, 0, -padding, padding + 1),
                            randint(rng, 1, -padding, padding + 1))


@njit
def translate_inverse(height, width, rng, max_fraction):
    max_dx, max_dy = max_fraction * width, max_fraction * height
    return translate_matrix(np.rint(uniform_range(rng, 0, -max_dx, max_dx)),
                            np.rint(uniform_range(rng, 1, -max_dy, max_dy)))


@njit
def rotate_inverse(height, width, rng, degrees):
    low, high = symmetric_range(degrees)
    return rotation_matrix(uniform_range(rng, 0, low, high), width / 2, height / 2)


@njit
def shear_inverse(height, width, rng, degrees):
    x_low, x_high, y_low, y_high = shear_ranges(degrees)
    return shear_matrix(uniform_range(rng, 0, x_low, x_high), uniform_range(rng, 1, y_low, y_high),
                        width / 2, height / 2)


@njit
def random_affine_inverse(height, width, rng, degrees, translate, scale, shear):
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


# ---------------------------------------------------------------- registered kernels

@register_op("horizontal_flip")
def horizontal_flip(image_in, image_out, rng):
    """Mirror the image left-right (with probability ``p``, default 1.0; use the device
    ``flip`` for the usual p=0.5 flip fused with normalization)."""
    height, width, channels = image_in.shape
    src, dst = flat(image_in), flat(image_out)
    for y in range(height):
        row = y * width * channels
        for x in range(width):
            o, i = row + x * channels, row + (width - 1 - x) * channels
            if channels == 3:  # unrolled: 1.6x faster than the general loop
                dst[o], dst[o + 1], dst[o + 2] = src[i], src[i + 1], src[i + 2]
            else:
                for c in range(channels):
                    dst[o + c] = src[i + c]


@register_op("vertical_flip")
def vertical_flip(image_in, image_out, rng):
    """Mirror the image top-bottom (with probability ``p``, default 1.0)."""
    height = image_in.shape[0]
    row = image_in.size // height
    src, dst = flat(image_in), flat(image_out)
    for y in range(height):
        o, i = y * row, (height - 1 - y) * row
        for k in range(row):
            dst[o + k] = src[i + k]


@register_op("pad_crop")
def pad_crop(image_in, image_out, rng, padding: Annotated[int, Range(0, MAX_SIDE)] = 4, fill: Fill = 0):
    """CIFAR's pad-and-crop (torchvision ``RandomCrop(size, padding)`` at the image's own size):
    pad by ``padding`` pixels of ``fill`` on every side, crop back to the original size at a
    uniform random offset; i.e. an integer translation by (dx, dy), each uniform in
    [-padding, padding] (draws 0 and 1).

    - ``padding``: pixels, >= 0, default 4.
    - ``fill``: grey level or [r, g, b] in 0..255, default 0 (torchvision's constant padding).
    - ``p``: probability, default 1.0.
    """
    matrix = pad_crop_inverse(image_in.shape[0], image_in.shape[1], rng, padding)
    affine_warp(image_in, image_out, matrix, fill)


@register_op("translate")
def translate(image_in, image_out, rng, max_fraction: Fraction, fill: Fill = 0):
    """Shift the image by whole pixels (torchvision ``RandomAffine(0, translate=(f, f))``):
    dx = round(u * f * width), u uniform in [-1, 1] (draw 0), dy likewise with height (draw 1);
    uncovered pixels get ``fill``.

    - ``max_fraction``: f, the largest shift as a fraction of the side, in [0, 1] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    matrix = translate_inverse(image_in.shape[0], image_in.shape[1], rng, max_fraction)
    affine_warp(image_in, image_out, matrix, fill)


@register_op("rotate")
def rotate(image_in, image_out, rng, degrees: Degrees, fill: Fill = 0):
    """Rotate about the image centre by an angle uniform in ``degrees`` (draw 0),
    counter-clockwise for positive angles (torchvision ``RandomRotation``); nearest neighbour,
    corners get ``fill``.

    - ``degrees``: d for [-d, d], or [min, max], within [-180, 180] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    matrix = rotate_inverse(image_in.shape[0], image_in.shape[1], rng, degrees)
    affine_warp(image_in, image_out, matrix, fill)


@register_op("shear")
def shear(image_in, image_out, rng, degrees: Shear, fill: Fill = 0):
    """Shear about the image centre (torchvision ``RandomAffine(0, shear=degrees)``): x shear
    uniform in its range (draw 0), y shear in its range (draw 1, zero unless given).

    - ``degrees``: s for x in [-s, s]; [x_min, x_max]; or [x_min, x_max, y_min, y_max];
      within [-89, 89] (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    matrix = shear_inverse(image_in.shape[0], image_in.shape[1], rng, degrees)
    affine_warp(image_in, image_out, matrix, fill)


@register_op("random_affine")
def random_affine(image_in, image_out, rng, degrees: Degrees,
                  translate: Annotated[Tuple[float, float], Range(0.0, 1.0)] = (0.0, 0.0),
                  scale: Annotated[FloatRange, Range(0.0, None, low_open=True)] = (1.0, 1.0),
                  shear: Shear = 0.0, fill: Fill = 0):
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
    matrix = random_affine_inverse(image_in.shape[0], image_in.shape[1], rng, degrees, translate,
                                  scale, shear)
    affine_warp(image_in, image_out, matrix, fill)


#: ``inverse_matrix(height, width, rng, *params)``: the fusion protocol of affine ops
horizontal_flip.inverse_matrix = staticmethod(horizontal_flip_inverse)
vertical_flip.inverse_matrix = staticmethod(vertical_flip_inverse)
pad_crop.inverse_matrix = staticmethod(pad_crop_inverse)
translate.inverse_matrix = staticmethod(translate_inverse)
rotate.inverse_matrix = staticmethod(rotate_inverse)
shear.inverse_matrix = staticmethod(shear_inverse)
random_affine.inverse_matrix = staticmethod(random_affine_inverse)
