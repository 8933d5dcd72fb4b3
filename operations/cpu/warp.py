"""The nearest-neighbour affine warp every geometric op (and their fused runs) samples with,
and the matrices of torchvision's affine maps.

Coordinates are continuous pixel coordinates as in PIL: pixel (x, y) covers [x, x+1) x
[y, y+1), its centre is (x + 0.5, y + 0.5) and the image centre is (w/2, h/2). Angles and
shears are in degrees and follow torchvision's ``F.affine`` / ``F.rotate``.
"""
import numpy as np
from numba import njit

from .pixels import SHARED_HELPER, copy_pixels, copy_run, flat
from .values import fill_value


@njit(**SHARED_HELPER)  # PIL's exact sampling, whoever calls it
def affine_warp(src, dst, matrix, fill):
    """``dst[y, x] = src[floor(matrix @ (x + 0.5, y + 0.5, 1))]``, ``fill`` where that lands
    outside ``src``: nearest-neighbour sampling exactly as PIL's ``Image.transform(AFFINE,
    NEAREST)`` (``matrix`` maps output coordinates to input coordinates, like PIL's data).

    A matrix whose source line does not depend on x (``d == 0``: translations, flips,
    scalings, horizontal shears) takes ``line_warp``; any other, per output row, first each
    pixel's source offset (one past the image, where a fill pixel is appended, when outside),
    then one gather pass (see ``pixels``). The offsets are int32 from coordinates clamped into
    the image (the same bits where they are used): Numba then vectorizes the offset loop,
    which float64 -> int64 conversions prevent on AVX2 — 1.8x faster per warp
    (``benchmarks/policy_ops_bench.py``). ``a * (x + 0.5)`` is taken once per column and
    ``b * (y + 0.5)`` once per row, summed in the same order as before."""
    height, width, channels = src.shape
    out_width = dst.shape[1]
    a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    d, e, f = matrix[1, 0], matrix[1, 1], matrix[1, 2]
    au = np.empty(out_width)
    for x in range(out_width):
        au[x] = a * (x + 0.5)
    if d == 0.0:
        line_warp(src, dst, au, b, c, e, f, fill)
        return
    du = np.empty(out_width)
    for x in range(out_width):
        du[x] = d * (x + 0.5)
    outside = src.size
    source = np.empty(outside + channels, src.dtype)
    copy_pixels(src, source[:outside])
    for ch in range(channels):
        source[outside + ch] = fill_value(fill, ch)
    out = flat(dst)
    where = np.empty(out_width, np.int32)
    right, bottom = np.float64(width), np.float64(height)
    one, two = np.uint64(1), np.uint64(2)
    for y in range(dst.shape[0]):
        by, ey = b * (y + 0.5), e * (y + 0.5)
        for x in range(out_width):
            u = au[x] + by + c
            v = du[x] + ey + f
            inside = (u >= 0.0) & (u < right) & (v >= 0.0) & (v < bottom)
            column = np.int32(min(max(u, 0.0), right - 1.0))
            line = np.int32(min(max(v, 0.0), bottom - 1.0))
            offset = (line * np.int32(width) + column) * np.int32(channels)
            where[x] = offset if inside else np.int32(outside)
        row = out[y * out_width * channels:(y + 1) * out_width * channels]
        if channels == 3:  # unrolled: 1.4x faster than the general loop
            for x in range(out_width):
                i = np.uint64(where[x])  # unsigned: no negative-index test per read, 1.5x faster
                row[3 * x], row[3 * x + 1], row[3 * x + 2] = source[i], source[i + one], source[i + two]
        else:
            for x in range(out_width):
                for ch in range(channels):
                    row[x * channels + ch] = source[where[x] + ch]


@njit(**SHARED_HELPER)
def line_warp(src, dst, au, b, c, e, f, fill):
    """``affine_warp`` for a matrix with ``d == 0``: every output row reads one source line
    (``v = e * (y + 0.5) + f``) at columns ``u = au[x] + b * (y + 0.5) + c``, the general
    loop's sums (its ``d * (x + 0.5)`` is a zero), so the same bytes. Where a row's columns
    are consecutive (translations, horizontal shears: TrivialAugmentWide's TranslateX/Y and
    ShearX, ``translate``, ``pad_crop``) it is one run copy between two runs of fill, else a
    gather; no copy of ``src``, and with ``b == 0`` the columns are found once. A translation
    at 224 px: 10 against 90 us (``benchmarks/policy_ops_bench.py``)."""
    height, width, channels = src.shape
    out_width = dst.shape[1]
    right, bottom = np.float64(width), np.float64(height)
    columns = np.empty(out_width, np.int32)  # each column's first byte in a line; -1 outside
    filled = np.empty(out_width * channels, src.dtype)  # a row of fill
    for x in range(out_width):
        for ch in range(channels):
            filled[x * channels + ch] = fill_value(fill, ch)
    s, out = flat(src), flat(dst)
    row_size, line_size = out_width * channels, width * channels
    first, last, consecutive = source_columns(columns, au, b * 0.5, c, right, channels)
    for y in range(dst.shape[0]):
        by, ey = b * (y + 0.5), e * (y + 0.5)
        if y > 0 and b != 0.0:  # a shear: each row's own columns
            first, last, consecutive = source_columns(columns, au, by, c, right, channels)
        at = y * row_size  # the output row's first byte
        v = ey + f
        if not ((v >= 0.0) & (v < bottom)) or last < first:
            copy_run(filled, 0, out, at, row_size)
            continue
        line = np.int64(v) * line_size
        if consecutive:
            begin, end = first * channels, (last + 1) * channels
            copy_run(filled, 0, out, at, begin)
            copy_run(s, line + columns[first], out, at + begin, end - begin)
            copy_run(filled, end, out, at + end, row_size - end)
        else:
            for x in range(out_width):
                for ch in range(channels):
                    k = x * channels + ch
                    out[at + k] = s[line + columns[x] + ch] if columns[x] >= 0 else filled[k]


@njit(**SHARED_HELPER)
def source_columns(columns, au, by, c, right, channels):
    """Each output column's source column (``u = au[x] + by + c``) as its first byte in a
    line, -1 outside [0, right); returns (first, last, consecutive): the first and last
    inside (an interval: u is monotonic in x, so they follow from how many fall below and
    above) and whether the columns between them are consecutive source pixels (a run copy).
    Branch-free loops over int32: Numba vectorizes them."""
    width = columns.shape[0]
    if width == 0:
        return 0, -1, True
    below = above = 0
    for x in range(width):
        u = au[x] + by + c
        inside = (u >= 0.0) & (u < right)
        below += u < 0.0
        above += u >= right
        column = np.int32(min(max(u, 0.0), right - 1.0)) * np.int32(channels)
        columns[x] = column if inside else np.int32(-1)
    first = below if au[width - 1] >= au[0] else above
    last = first + (width - below - above) - 1
    steps = 0
    for x in range(first, last):
        steps += columns[x + 1] - columns[x] != channels
    return first, last, steps == 0


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


@njit(**SHARED_HELPER)
def mask_warp(src, dst, matrix, fill):
    """The warp of ``affine_warp``'s ``matrix`` as torchvision v2 warps a ``tv_tensors.Mask``
    (``F.affine`` / ``F.rotate`` on tensors: ``affine_grid`` + ``grid_sample(nearest,
    align_corners=False)``), so that a mask comes out pixel for pixel as torchvision's: the
    matrix in image-centre coordinates as float32, each output pixel's source coordinate
    summed in float32 as torch's batched product sums it, rounded half to even; ``fill``
    outside. It samples the pixel ``affine_warp`` samples except where a source coordinate
    falls on the border between two pixels (torchvision rounds such ties to even, PIL down).
    ``src`` and ``dst`` are (H, W, 1) of one size.

    As ``affine_warp``: per row first every pixel's source offset (branch-free, clamped,
    one past the mask for ``fill``), then one gather, 2x faster than a pixel loop that
    branches (0.9 against 2.1 ms for 512 x 512 on this machine)."""
    height, width = src.shape[0], src.shape[1]
    half_w, half_h = np.float32(width / 2), np.float32(height / 2)
    # centre-relative theta (torchvision's inverse matrix), then divided as affine_grid does
    tx = matrix[0, 2] + matrix[0, 0] * (width / 2) + matrix[0, 1] * (height / 2) - width / 2
    ty = matrix[1, 2] + matrix[1, 0] * (width / 2) + matrix[1, 1] * (height / 2) - height / 2
    r00, r01 = np.float32(matrix[0, 0]) / half_w, np.float32(matrix[0, 1]) / half_w
    r02 = np.float32(tx) / half_w
    r10, r11 = np.float32(matrix[1, 0]) / half_h, np.float32(matrix[1, 1]) / half_h
    r12 = np.float32(ty) / half_h
    one, half = np.float32(1.0), np.float32(0.5)
    x0, y0 = np.float32((width - 1) * 0.5), np.float32((height - 1) * 0.5)
    out_width = dst.shape[1]
    ax, dx = np.empty(out_width, np.float32), np.empty(out_width, np.float32)
    for x in range(out_width):
        xc = np.float32(x) - x0
        ax[x], dx[x] = xc * r00, xc * r10
    outside = src.size
    source = np.empty(outside + 1, src.dtype)
    copy_pixels(src, source[:outside])
    source[outside] = fill
    out = flat(dst)
    where = np.empty(out_width, np.int32)
    right, bottom = np.float32(width), np.float32(height)
    for y in range(dst.shape[0]):
        yc = np.float32(y) - y0
        by, ey = yc * r01, yc * r11
        for x in range(out_width):
            u = np.rint(((ax[x] + by) + r02 + one) * half_w - half)
            v = np.rint(((dx[x] + ey) + r12 + one) * half_h - half)
            inside = (u > -one) & (u < right) & (v > -one) & (v < bottom)
            column = np.int32(min(max(u, np.float32(0.0)), right - one))
            line = np.int32(min(max(v, np.float32(0.0)), bottom - one))
            where[x] = line * np.int32(width) + column if inside else np.int32(outside)
        row = out[y * out_width:(y + 1) * out_width]
        for x in range(out_width):
            row[x] = source[where[x]]
