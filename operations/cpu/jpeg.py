"""Crop-aware JPEG decoding: decode only the part of a JPEG a crop needs, at the smallest DCT
scale that keeps the crop at least the output size, then resize as before.

The C side (``roi_jpeg.c``, built by ``pip install -e .`` as ``operations/cpu/_roi_jpeg*.so``)
uses libjpeg-turbo's libjpeg API: DCT scaling (scale M/8), ``jpeg_skip_scanlines`` for the
rows above the crop, ``jpeg_crop_scanline`` for the columns (iMCU granularity), and stops
after the crop's last row. FFCV's own crop path (tjTransform re-encodes the crop) measured
slower than a full decode, which is why this one skips instead.

``decode_crop_resized`` is an njit function the decoders call per sample; it returns False
when the library is missing (not built) or libjpeg refuses the data, and the decoder then
takes its full-decode path. ``AVAILABLE`` says whether the library loaded.

Deviation from a full decode + the same crop and resize (``docs/performance.md`` has the
numbers): a DCT-scaled decode approximates the area average of the full decode over each
8/M x 8/M cell (a low-pass, not exactly that average), and the resize from it is a second
area average, over the crop's exact (fractional) box in the scaled image (``area_resize`` in
roi_jpeg.c: OpenCV's INTER_AREA, off the pixel grid). At scale 8/8 a crop that shrinks is
resized by ``area_resize`` too (within one level of OpenCV's INTER_AREA, 5x faster), one that
enlarges by FFCV's resize; both give today's bytes within that level, except next to the left
and right edges of the decoded columns, where chroma upsampling sees the edge of the cropped
region.
"""
import numpy as np
from numba import njit

from .native import (AVAILABLE, area_resize, area_resize_normalized,  # noqa: F401 (re-exported)
                     resize_crop, roi_decode)
from .normalize import lookup_pixels

#: DCT scales tried, smallest first (numerators of M/8): the ones libjpeg-turbo has SIMD
#: IDCTs for. 3/8, 5/8, 6/8 and 7/8 run a plain C IDCT: a 328 px crop decodes in 1.2-1.4x
#: the time at 8/8, more than ``area_resize`` then saves on the smaller image (6/8 + resize
#: 224 px centre crops 1.3x slower than 8/8 + resize, docs/performance.md)
SCALES = (1, 2, 4)


@njit(inline="always")
def dct_scale(h, w, out_h, out_w):
    """The smallest M in ``SCALES`` with the crop (h x w source pixels) still at least the
    output size at scale M/8 (h * M / 8 >= out_h and w * M / 8 >= out_w); 8 if none."""
    for m in SCALES:
        if h * m >= 8 * out_h and w * m >= 8 * out_w:
            return m
    return 8


@njit
def decode_region(source, buffer, height, width, m, y, x, h, w):
    """Decode the rows and columns the box ``(y, x, h, w)`` of the ``height x width`` JPEG
    ``source`` needs, at DCT scale ``m``/8, into ``buffer`` (flat uint8, at least 3 x height x
    width): ``(decoded, first row, first column, rows, columns)`` of the block written there, in
    scaled pixels (its columns start at an iMCU boundary). ``decoded`` False (nothing written)
    when the crop-aware decode is unavailable or fails."""
    scaled_h, scaled_w = (height * m + 7) // 8, (width * m + 7) // 8
    y0, x0 = (y * m) // 8, (x * m) // 8
    y1 = min((((y + h) * m) + 7) // 8, scaled_h)
    x1 = min((((x + w) * m) + 7) // 8, scaled_w)
    region = np.empty(4, np.int64)
    if roi_decode(source, buffer, m, y0, y1, x0, x1, region) != 0:
        return False, y0, x0, 0, 0
    return True, region[0], region[2], region[1], region[3]


@njit
def resize_from_block(block, m, row, column, y, x, h, w, destination):
    """Resize the box ``(y, x, h, w)`` (source pixels) out of ``block``, a part of the image
    decoded at DCT scale ``m``/8 whose first pixel is (``row``, ``column``) in scaled pixels,
    into ``destination``: FFCV's resize where the box enlarges at 8/8 (today's bytes), else an
    area average over the box's exact (fractional) place in the block. False if it failed."""
    out_h, out_w = destination.shape[0], destination.shape[1]
    if m == 8 and (h < out_h or w < out_w):
        resize_crop(block, y - row, y + h - row, x - column, x + w - column, destination)
        return True
    return area_resize(block, y * m / 8 - row, (y + h) * m / 8 - row, x * m / 8 - column,
                       (x + w) * m / 8 - column, destination) == 0


@njit
def resize_normalized_from_block(block, m, row, column, y, x, h, w, scratch, destination, table,
                                 mirror):
    """``resize_from_block`` into ``destination`` through the normalization ``table``
    (mirrored when ``mirror``): ``lookup_pixels`` of that resize, fused into the area resize's
    rows; an enlarging box goes through ``scratch`` (uint8, the destination's shape)."""
    out_h, out_w = destination.shape[0], destination.shape[1]
    if m == 8 and (h < out_h or w < out_w):
        resize_crop(block, y - row, y + h - row, x - column, x + w - column, scratch)
        lookup_pixels(scratch, destination, table, mirror)
        return True
    return area_resize_normalized(block, y * m / 8 - row, (y + h) * m / 8 - row,
                                  x * m / 8 - column, (x + w) * m / 8 - column, destination,
                                  table, mirror) == 0


@njit
def decode_crop_resized(source, buffer, height, width, y, x, h, w, destination):
    """Decode what the crop ``(y, x, h, w)`` of the ``height x width`` JPEG ``source`` needs
    into ``buffer`` (flat uint8, at least 3 x height x width) and resize it into
    ``destination``. False (nothing written) when the crop-aware decode is unavailable or
    fails."""
    m = dct_scale(h, w, destination.shape[0], destination.shape[1])
    decoded, row, column, rows, columns = decode_region(source, buffer, height, width, m, y, x,
                                                        h, w)
    if not decoded:
        return False
    block = buffer[:rows * columns * 3].reshape(rows, columns, 3)
    return resize_from_block(block, m, row, column, y, x, h, w, destination)
