"""Boxes and keypoints against torchvision v2's ``tv_tensors.BoundingBoxes`` (XYXY, absolute,
the default ``clamping_mode`` "soft") and ``tv_tensors.KeyPoints``: the outputs stored in
``data/tv_instances_reference.npz`` were computed by torchvision 0.29.1 in a separate venv
(``scripts/torchvision_instances_reference.py``); here the same fixed parameters go through
pureffcv's own ops and instance kernels and must give the same coordinates to 1e-3 px.

Where the two differ on purpose:

- a box with nothing left on the canvas is a row with share 0 in pureffcv and a degenerate
  (zero width or height) box in torchvision: only boxes with share > 0 are compared, and the
  others must be degenerate in torchvision;
- torchvision never marks a keypoint invisible; pureffcv sets v = 0 for a point off the canvas
  and keeps its coordinates: all coordinates are compared, and v is checked against the
  canvas and torchvision's coordinates;
- keypoint flips: torchvision's pixel-index convention, pureffcv's continuous one (see
  ``test_keypoint_flips_are_torchvisions_plus_one_pixel``)."""
import json
from pathlib import Path

import numpy as np
import pytest

from operations import Target, get_op
from operations.cpu.instances import (box_warp, boxes_array, boxes_in, crop_boxes,
                                      crop_points, keypoints_array, mirror_permutation,
                                      point_warp, points_in)
from operations.cpu.warp import affine_matrix

REFERENCE = np.load(Path(__file__).parent / "data" / "tv_instances_reference.npz")
META = json.loads(str(REFERENCE["meta"]))
CASES = [(i, json.loads(p)) for i, p in enumerate(REFERENCE["case_params"])]
BOXES, KEYPOINTS = Target("b", "boxes", "b"), Target("k", "keypoints", "k")
TOLERANCE = 1e-3  # px
FLIPS = ("horizontal_flip", "vertical_flip")
ALL_OPS = FLIPS + ("rotate", "affine", "resized_crop", "center_crop")


def stored(canvas):
    """(height, width), boxes (n, 4), points with v (n, K, 3) of a reference canvas."""
    height, width = (int(s) for s in REFERENCE[f"{canvas}/canvas"])
    points = np.concatenate([REFERENCE[f"{canvas}/points"],
                             REFERENCE[f"{canvas}/visibility"][..., None]], axis=-1)
    return (height, width), REFERENCE[f"{canvas}/boxes"], points


def cases(*ops):
    return [pytest.param(i, p, id=str(REFERENCE["case_names"][i])) for i, p in CASES
            if p["op"] in ops]


def centre_box(height, width, output_size):
    """torchvision's ``center_crop`` box (``_center_crop_compute_crop_anchor``): the anchor
    rounds half to even; a crop larger than the canvas has a negative anchor (torchvision
    pads, which for boxes and points is the same shift)."""
    crop_h, crop_w = output_size
    return int(round((height - crop_h) / 2)), int(round((width - crop_w) / 2)), crop_h, crop_w


def through_pureffcv(params, kind):
    """The case's input boxes or keypoints (``kind``) moved by pureffcv's own code with the
    case's parameters: the registered op's target step (flips, rotate), the warp kernels with
    ``affine_matrix`` (affine), the decoders' crop of instances (resized_crop, center_crop)."""
    (height, width), boxes, points = stored(params["input"])
    labels = np.arange(len(boxes))
    start = boxes_array(boxes, labels, height, width) if kind == "boxes" else \
        keypoints_array(points, height, width)
    op = params["op"]
    target = BOXES if kind == "boxes" else KEYPOINTS
    if op in FLIPS:
        return get_op(op, "cpu")(p=1.0).for_target(target).apply(start[None])[0]
    if op == "rotate":
        angle = params["angle"]
        return get_op("rotate", "cpu")(degrees=[angle, angle]).for_target(target) \
            .apply(start[None])[0]
    if op == "affine":
        cx, cy = (width / 2, height / 2) if params["center"] is None else params["center"]
        (tx, ty), (sx, sy) = params["translate"], params["shear"]
        matrix = affine_matrix(params["angle"], tx, ty, params["scale"], sx, sy, cx, cy)
        out = np.empty_like(start)
        (box_warp if kind == "boxes" else point_warp)(start, out, matrix, 0)
        return out
    if op == "resized_crop":
        box = params["top"], params["left"], params["height"], params["width"]
        size = params["size"]
    else:
        box = centre_box(height, width, params["output_size"])
        size = box[2:]
    out = np.empty_like(start)
    if kind == "boxes":
        crop_boxes(boxes, labels, *box, *size, out)
    else:
        crop_points(points, mirror_permutation(points.shape[1]), *box, *size, out)
    return out


def test_the_reference_uses_torchvisions_default_clamping():
    """Every case ran with a ``BoundingBoxes``' default clamping mode, "soft" in torchvision
    0.29 (clamped to the canvas after each op; "soft" and "hard" agree on XYXY boxes)."""
    assert META["clamping_mode"] == "soft" and META["box_format"] == "XYXY"
    assert META["torchvision"].startswith("0.29")


def test_the_reference_covers_cut_dropped_and_off_canvas_instances():
    """The cases exercise every branch: boxes cut by the canvas, boxes with nothing left,
    keypoints moved off the canvas."""
    dropped = off = 0
    for i, params in CASES:
        tv = REFERENCE[f"case/{i}/boxes"]
        dropped += int(((tv[:, 2] - tv[:, 0] <= TOLERANCE) | (tv[:, 3] - tv[:, 1] <= TOLERANCE))
                       .sum())
        height, width = REFERENCE[f"case/{i}/canvas"]
        pts = REFERENCE[f"case/{i}/points"]
        off += int(((pts[..., 0] < -1) | (pts[..., 0] > width + 1) | (pts[..., 1] < -1)
                    | (pts[..., 1] > height + 1)).sum())
    assert dropped > 20 and off > 20


@pytest.mark.parametrize("index, params", cases(*ALL_OPS))
def test_boxes_move_as_torchvision(index, params):
    out = through_pureffcv(params, "boxes")
    assert tuple(out[0, :2]) == tuple(REFERENCE[f"case/{index}/canvas"])
    boxes, labels, share = boxes_in(out)
    expected = REFERENCE[f"case/{index}/boxes"]
    assert labels.tolist() == list(range(len(expected)))  # rows keep their instance
    kept = share > 0
    assert kept.any() and (share[kept] <= 1.0).all()
    np.testing.assert_allclose(boxes[kept], expected[kept], rtol=0, atol=TOLERANCE)
    gone = expected[~kept]
    assert ((gone[:, 2] - gone[:, 0] <= TOLERANCE) | (gone[:, 3] - gone[:, 1] <= TOLERANCE)).all()


def check_visibility(out, xy, index, params):
    """v = the stored v for points on the canvas (edges included), 0 off it; points within
    1e-3 px of an edge are not judged (either answer is within the tolerance)."""
    height, width = REFERENCE[f"case/{index}/canvas"]
    _, _, stored_points = stored(params["input"])
    x, y = xy[..., 0], xy[..., 1]
    on = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    near = np.minimum.reduce([np.abs(x), np.abs(x - width), np.abs(y), np.abs(y - height)])
    clear = near > TOLERANCE
    _, v, present = points_in(out)
    assert present.all()
    expected = np.where(on, stored_points[..., 2], 0.0)
    assert np.array_equal(v[clear], expected[clear])


@pytest.mark.parametrize("index, params", cases("rotate", "affine", "resized_crop",
                                                "center_crop"))
def test_keypoints_move_as_torchvision(index, params):
    out = through_pureffcv(params, "keypoints")
    assert tuple(out[0, :2]) == tuple(REFERENCE[f"case/{index}/canvas"])
    expected = REFERENCE[f"case/{index}/points"].astype(np.float64)
    points, _, _ = points_in(out)
    np.testing.assert_allclose(points, expected, rtol=0, atol=TOLERANCE)
    check_visibility(out, expected, index, params)


@pytest.mark.parametrize("index, params", cases(*FLIPS))
def test_keypoint_flips_are_torchvisions_plus_one_pixel(index, params):
    """KNOWN DELIBERATE DEVIATION. torchvision 0.29's ``horizontal_flip_keypoints``
    (``transforms/v2/functional/_geometry.py``) maps x -> W - 1 - x, and
    ``vertical_flip_keypoints`` y -> H - 1 - y: the pixel-index convention (the point at the
    centre of pixel i goes to pixel W - 1 - i's index). Its own ``rotate``/``affine`` of
    keypoints use the continuous convention (about (W/2, H/2)), as do all its box ops
    (``horizontal_flip_bounding_boxes``: x -> W - x), so that a flip and a 180-degree rotation
    disagree by a pixel there. pureffcv uses the continuous convention everywhere, the exact
    mirror of the image (pixel i <-> W - 1 - i, its centre i + 0.5 <-> W - (i + 0.5)): x -> W - x
    (y -> H - y), torchvision's value plus one pixel on the flipped axis."""
    out = through_pureffcv(params, "keypoints")
    expected = REFERENCE[f"case/{index}/points"].astype(np.float64)
    expected[..., 0 if params["op"] == "horizontal_flip" else 1] += 1.0
    points, _, _ = points_in(out)
    np.testing.assert_allclose(points, expected, rtol=0, atol=TOLERANCE)
    check_visibility(out, expected, index, params)


def test_flip_and_half_turn_agree_on_keypoints():
    """The reason for the convention: in pureffcv a horizontal then a vertical flip is the
    180-degree rotation, as for the image; torchvision's keypoints differ by (1, 1) there."""
    (height, width), _, points = stored("canvas_97x131")
    start = keypoints_array(points, height, width)[None]
    flipped = start
    for op in FLIPS:
        flipped = get_op(op, "cpu")(p=1.0).for_target(KEYPOINTS).apply(flipped)
    turned = get_op("rotate", "cpu")(degrees=[180.0, 180.0]).for_target(KEYPOINTS).apply(start)
    np.testing.assert_allclose(points_in(flipped[0])[0], points_in(turned[0])[0], atol=1e-9)


# Hand-computed visibility (no torchvision): a point moved off the canvas gets v = 0 and keeps
# its coordinates; a point on it (edges included) keeps its v, whatever it is.

def test_rotation_sends_a_point_off_the_canvas_and_keeps_its_coordinates():
    """100 x 200 canvas, 90 degrees counter-clockwise about (100, 50): (dx, dy) -> (dy, -dx).
    (10, 50) is 90 px left of the centre -> 90 px below it: (100, 140), off (y > 100).
    (100, 20) is 30 px above -> 30 px left: (70, 50), on. (130, 50) -> (100, 20), on; its
    v = 1 (occluded) stays 1."""
    start = keypoints_array([[[10, 50, 2], [100, 20, 2], [130, 50, 1]]], 100, 200)
    out = get_op("rotate", "cpu")(degrees=[90, 90]).for_target(KEYPOINTS).apply(start[None])[0]
    points, v, present = points_in(out)
    np.testing.assert_allclose(points[0], [[100, 140], [70, 50], [100, 20]], atol=1e-9)
    assert v[0].tolist() == [0, 2, 1] and present.tolist() == [True]


def test_translation_off_and_back_does_not_restore_visibility():
    """A shift by +30 px in x on a 100 x 200 canvas: (180, 10) -> (210, 10), off: v = 0;
    (150, 10) -> (180, 10) stays visible; (170, 90) -> (200, 90) lies on the right edge,
    which counts as on. Shifting back by -30 restores the coordinates, not the lost v."""
    start = keypoints_array([[[180, 10, 2], [150, 10, 2], [170, 90, 2]]], 100, 200)
    there, back = np.empty_like(start), np.empty_like(start)
    point_warp(start, there, affine_matrix(0.0, 30, 0, 1.0, 0.0, 0.0, 100, 50), 0)
    points, v, _ = points_in(there)
    np.testing.assert_allclose(points[0], [[210, 10], [180, 10], [200, 90]], atol=1e-9)
    assert v[0].tolist() == [0, 2, 2]
    point_warp(there, back, affine_matrix(0.0, -30, 0, 1.0, 0.0, 0.0, 100, 50), 0)
    points, v, _ = points_in(back)
    np.testing.assert_allclose(points[0], [[180, 10], [150, 10], [170, 90]], atol=1e-9)
    assert v[0].tolist() == [0, 2, 2]


def test_crop_marks_points_outside_the_crop_box_invisible():
    """Crop box top 10, left 20, 50 x 80, resized to 100 x 160 (2x): (15, 5) -> (-10, -10),
    off; (25, 30) -> (10, 40), v = 1 kept; (100, 60) -> (160, 100), the bottom-right corner,
    on; (60, 40) -> (80, 60) with v = 0 (not labelled) stays 0 although on the canvas."""
    points = np.array([[[15, 5, 2], [25, 30, 1], [100, 60, 2], [60, 40, 0]]], np.float32)
    out = np.empty((2, 1 + 3 * 4))
    crop_points(points, mirror_permutation(4), 10, 20, 50, 80, 100, 160, out)
    xy, v, present = points_in(out)
    np.testing.assert_allclose(xy[0], [[-10, -10], [10, 40], [160, 100], [80, 60]], atol=1e-9)
    assert v[0].tolist() == [0, 1, 2, 0] and present.tolist() == [True]
    assert tuple(out[0, :2]) == (100, 160)


def test_flip_keeps_points_on_the_edges_visible():
    """A horizontal flip of a 100 x 200 canvas: (0, 0) -> (200, 0) and (200, 100) -> (0, 100),
    both on the canvas' edges: visible."""
    start = keypoints_array([[[0, 0, 2], [200, 100, 2]]], 100, 200)
    out = get_op("horizontal_flip", "cpu")(p=1.0).for_target(KEYPOINTS).apply(start[None])[0]
    points, v, _ = points_in(out)
    np.testing.assert_allclose(points[0], [[200, 0], [0, 100]], atol=1e-9)
    assert v[0].tolist() == [2, 2]
