"""Boxes and keypoints inside a pipeline: the array a sample's instances travel in, and how a
crop or a warp matrix moves them.

Coordinates are continuous pixel coordinates, as in ``warp``: pixel (x, y) covers [x, x+1) x
[y, y+1), so a box of a whole W x H image is (0, 0, W, H). A sample's instances are one
float64 array of 1 + M rows (M: the most instances a sample of the .beton holds, at least 1):

- row 0, the header: the canvas (the image's height and width at this step), then, for
  keypoints, the mirror permutation: after a mirror, point k is the point that was perm[k]
  (left and right swapped as the spec's ``flip_pairs`` name them);
- boxes, ``BOX_ROW_LENGTH`` values a row: x1, y1, x2, y2, label, share. ``share`` is the part of the
  box's area every clip so far kept (1.0 as stored, the product of kept / before over the
  clips; 0: no box, a padding row or a box with nothing left);
- keypoints, 1 + 3K per row: present (1.0 for an instance, 0.0 padding), then x, y, v per
  point (v as stored: COCO's 0 not labelled, 1 occluded, 2 visible). A point a crop or warp
  moves off the canvas gets v = 0 and keeps its coordinates: never clipped onto the border.

Rows keep their instance's index: row i of a .beton's boxes and row i of its keypoints are
the same instance after any number of steps; a dropped box is a row with share 0.

Warps take the image's matrix (output -> input, ``warp.affine_warp``'s) and map corners and
points forward with its inverse: a box becomes the box enclosing its four moved corners,
clipped to the canvas. A matrix with a negative determinant mirrors, and swaps the named
keypoint pairs.
"""
from typing import Optional, Tuple

import numpy as np
from numba import njit

from .pixels import SHARED_HELPER

#: per box row: x1, y1, x2, y2, label, share
BOX_ROW_LENGTH = 6
SHARE = 5


@njit(**SHARED_HELPER)
def canvas(instances) -> Tuple[int, int]:
    """(height, width) of the canvas an instance array is on (its header)."""
    return int(instances[0, 0]), int(instances[0, 1])


@njit(**SHARED_HELPER)
def forward_map(matrix):
    """The input -> output 2x3 map of an output -> input affine ``matrix``."""
    a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    d, e, f = matrix[1, 0], matrix[1, 1], matrix[1, 2]
    det = a * e - b * d
    m = np.empty((2, 3))
    m[0, 0], m[0, 1] = e / det, -b / det
    m[1, 0], m[1, 1] = -d / det, a / det
    m[0, 2] = -(m[0, 0] * c + m[0, 1] * f)
    m[1, 2] = -(m[1, 0] * c + m[1, 1] * f)
    return m


@njit(**SHARED_HELPER)
def clip_box(row, height, width):
    """Clip the box of a box row to the canvas in place, its share times the area kept over
    the area before; nothing left (no area on the canvas): share 0."""
    x1, y1, x2, y2 = row[0], row[1], row[2], row[3]
    before = (x2 - x1) * (y2 - y1)
    row[0], row[2] = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    row[1], row[3] = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    after = (row[2] - row[0]) * (row[3] - row[1])
    if after <= 0.0:
        row[SHARE] = 0.0
    elif after < before:
        row[SHARE] *= after / before


@njit(**SHARED_HELPER)
def box_warp(src, dst, matrix, fill):
    """``src``'s boxes moved by the image's warp ``matrix`` into ``dst`` (same shape): each
    box's four corners mapped forward, the enclosing box clipped to the canvas (which a warp
    keeps). ``fill`` is unused (a warp uncovers pixels, not boxes)."""
    dst[:] = src
    height, width = canvas(src)
    m = forward_map(matrix)
    for r in range(1, src.shape[0]):
        row = dst[r]
        if row[SHARE] == 0.0:
            continue
        xs = (row[0], row[2], row[0], row[2])
        ys = (row[1], row[1], row[3], row[3])
        lo_x, lo_y, hi_x, hi_y = np.inf, np.inf, -np.inf, -np.inf
        for k in range(4):
            u = m[0, 0] * xs[k] + m[0, 1] * ys[k] + m[0, 2]
            v = m[1, 0] * xs[k] + m[1, 1] * ys[k] + m[1, 2]
            lo_x, hi_x = min(lo_x, u), max(hi_x, u)
            lo_y, hi_y = min(lo_y, v), max(hi_y, v)
        row[0], row[1], row[2], row[3] = lo_x, lo_y, hi_x, hi_y
        clip_box(row, height, width)


@njit(**SHARED_HELPER)
def point_warp(src, dst, matrix, fill):
    """``src``'s keypoints moved by the image's warp ``matrix`` into ``dst`` (same shape):
    each point mapped forward, v = 0 off the canvas; a mirroring matrix (negative
    determinant) also reorders each instance's points by the header's permutation."""
    dst[:] = src
    height, width = canvas(src)
    m = forward_map(matrix)
    mirrors = matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0] < 0.0
    points = (src.shape[1] - 1) // 3
    for r in range(1, src.shape[0]):
        if src[r, 0] == 0.0:
            continue
        for k in range(points):
            j = int(src[0, 2 + k]) if mirrors else k
            x, y, v = src[r, 1 + 3 * j], src[r, 2 + 3 * j], src[r, 3 + 3 * j]
            u = m[0, 0] * x + m[0, 1] * y + m[0, 2]
            w = m[1, 0] * x + m[1, 1] * y + m[1, 2]
            dst[r, 1 + 3 * k], dst[r, 2 + 3 * k] = u, w
            dst[r, 3 + 3 * k] = v if on_canvas(u, w, height, width) else 0.0


@njit(**SHARED_HELPER)
def on_canvas(x, y, height, width) -> bool:
    """Whether the point (x, y) lies on the canvas (its edges included)."""
    return 0.0 <= x <= width and 0.0 <= y <= height


@njit(**SHARED_HELPER)
def crop_boxes(boxes, labels, top, left, height, width, out_height, out_width, dst):
    """``dst``: the header and the stored ``boxes`` ((n, 4) x1, y1, x2, y2) and ``labels``
    (n) of an image, cut to the box (top, left, height, width) and resized to (out_height,
    out_width), as the image decoder cuts and resizes the image; rows past n are padding."""
    dst[:] = 0.0
    dst[0, 0], dst[0, 1] = out_height, out_width
    sx, sy = out_width / width, out_height / height
    for i in range(boxes.shape[0]):
        row = dst[1 + i]
        row[0], row[2] = (boxes[i, 0] - left) * sx, (boxes[i, 2] - left) * sx
        row[1], row[3] = (boxes[i, 1] - top) * sy, (boxes[i, 3] - top) * sy
        row[4], row[SHARE] = labels[i], 1.0
        clip_box(row, out_height, out_width)


@njit(**SHARED_HELPER)
def crop_points(points, perm, top, left, height, width, out_height, out_width, dst):
    """``dst``: the header (with the mirror permutation ``perm``) and the stored ``points``
    ((n, K, 3) x, y, v) of an image, cut and resized as ``crop_boxes``; v = 0 for points
    off the new canvas."""
    dst[:] = 0.0
    dst[0, 0], dst[0, 1] = out_height, out_width
    for k in range(perm.size):
        dst[0, 2 + k] = perm[k]
    sx, sy = out_width / width, out_height / height
    for i in range(points.shape[0]):
        dst[1 + i, 0] = 1.0
        for k in range(points.shape[1]):
            x, y = (points[i, k, 0] - left) * sx, (points[i, k, 1] - top) * sy
            dst[1 + i, 1 + 3 * k], dst[1 + i, 2 + 3 * k] = x, y
            dst[1 + i, 3 + 3 * k] = points[i, k, 2] if on_canvas(x, y, out_height, out_width) \
                else 0.0


def mirror_permutation(num_points: int, flip_pairs=()) -> np.ndarray:
    """The permutation a mirror applies to ``num_points`` keypoints: each (a, b) of
    ``flip_pairs`` swapped, the others in place."""
    perm = np.arange(num_points, dtype=np.int64)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def boxes_array(boxes, labels, height: int, width: int, rows: Optional[int] = None) -> np.ndarray:
    """The instance array of (n, 4) ``boxes`` (x1, y1, x2, y2) and their ``labels`` on a
    height x width canvas, with ``rows`` instance rows (default n, at least 1)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = np.empty((1 + (rows or max(len(boxes), 1)), BOX_ROW_LENGTH))
    crop_boxes(boxes, np.asarray(labels, np.int64).reshape(-1), 0, 0, height, width,
               height, width, out)
    return out


def keypoints_array(points, height: int, width: int, flip_pairs=(),
                    rows: Optional[int] = None) -> np.ndarray:
    """The instance array of (n, K, 3) ``points`` (x, y, v) on a height x width canvas."""
    points = np.asarray(points, np.float32)
    perm = mirror_permutation(points.shape[1], flip_pairs)
    out = np.empty((1 + (rows or max(len(points), 1)), 1 + 3 * points.shape[1]))
    crop_points(points, perm, 0, 0, height, width, height, width, out)
    return out


def boxes_in(instances: np.ndarray):
    """(boxes (M, 4), labels (M,), share (M,)) of a boxes instance array."""
    rows = instances[1:]
    return rows[:, :4], rows[:, 4].astype(np.int64), rows[:, SHARE]


def points_in(instances: np.ndarray):
    """(points (M, K, 2), v (M, K), present (M,)) of a keypoints instance array."""
    rows = instances[1:]
    triples = rows[:, 1:].reshape(len(rows), -1, 3)
    return triples[:, :, :2], triples[:, :, 2], rows[:, 0] > 0
