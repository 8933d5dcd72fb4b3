"""torchvision v2 reference outputs for boxes (``tv_tensors.BoundingBoxes``, XYXY, absolute
pixels) and keypoints (``tv_tensors.KeyPoints``).

Writes ``tests/operations/cpu/data/tv_instances_reference.npz``: a few fixed sets of boxes and
keypoints per canvas (hand-placed ones at the edges, tiny ones, and a seeded random rest, all
stored in the file) and, for each case, torchvision's output of one v2 functional op on them,
so that pureffcv's box and keypoint moves can be checked to 1e-3 px without torchvision.

Runs ONLY in a separate venv that has torch and torchvision; the project's venv must never
contain torchvision. For example (torch 2.14.1 and torchvision 0.29.1 from the local wheels)::

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /tmp/tvenv/bin/python scripts/torchvision_instances_reference.py

The file's keys:

- ``meta``: a JSON string (torch, torchvision and numpy versions, seed, and the
  ``clamping_mode`` a ``BoundingBoxes`` gets by default, which every case uses);
- ``canvas_names``; per canvas ``<name>/canvas`` (height, width), ``<name>/boxes`` (n, 4)
  float32 x1, y1, x2, y2, ``<name>/points`` (n, K, 2) float32 x, y and ``<name>/visibility``
  (n, K) COCO v (0, 1, 2; torchvision has no visibility, pureffcv carries it);
- ``case_names``, ``case_params``: one entry per case, the parameters as a JSON string (the
  op, the input canvas's name and the op's arguments exactly as passed to torchvision);
- ``case/<i>/boxes`` (n, 4), ``case/<i>/points`` (n, K, 2): case ``i``'s outputs, float32,
  and ``case/<i>/canvas``: the output canvas (height, width).

torchvision's conventions that the cases pin down (torchvision 0.29,
``transforms/v2/functional/_geometry.py``): boxes and keypoints of ``rotate`` and ``affine``
go through the forward matrix of ``_get_inverse_affine_matrix(..., inverted=False)`` about
(W/2, H/2) (continuous coordinates) or the given centre, a box becoming the box that encloses
its four moved corners; boxes are clamped to the canvas after ``rotate``, ``affine`` and
``crop`` (``clamp_bounding_boxes``; "soft" and "hard" are the same for axis-aligned boxes) and
a box with nothing left stays as a degenerate box; ``horizontal_flip`` maps a box's x to
W - x but a keypoint's x to W - 1 - x (``horizontal_flip_keypoints``; ``vertical_flip``
likewise with H); ``center_crop``'s anchor is ``int(round((H - h) / 2))`` (half to even), a
crop larger than the canvas giving a negative anchor; ``resized_crop`` crops (clamping boxes)
then scales by size / crop size without clamping again.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "operations" / "cpu" / "data" / "tv_instances_reference.npz"
SEED = 20250123
CANVASES = {"canvas_100x200": (100, 200), "canvas_97x131": (97, 131)}
POINTS_PER_INSTANCE = 5


def instances(rng, height, width):
    """Boxes: hand-placed ones (the whole canvas, at each edge and corner, tiny ones of a pixel
    or less, fractional corners) and seeded random ones. Keypoints: one instance of the canvas'
    corners and centre, one of integer points at the edges, and seeded random instances."""
    hand = [[0, 0, width, height],
            [0, 0, 12, 9],
            [width - 20.25, height - 15.5, width, height],
            [0.5, height / 2 - 4, 30.75, height / 2 + 6],
            [width - 3, 2, width, height - 2],
            [width / 2 - 0.25, height / 2 - 0.2, width / 2 + 0.25, height / 2 + 0.2],
            [3.3, height - 1.7, 4.1, height - 0.9],
            [width / 3, 1.0, width / 3 + 1.0, 2.0]]
    random = []
    for _ in range(8):
        x1, y1 = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
        random.append([x1, y1, rng.uniform(x1 + 0.5, width), rng.uniform(y1 + 0.5, height)])
    boxes = np.array(hand + random, np.float32)
    k = POINTS_PER_INSTANCE
    corners = [[0, 0], [width, 0], [0, height], [width, height], [width / 2, height / 2]]
    edges = [[1, 0], [width - 1, 1], [0, height - 1], [width // 2, height], [width, height // 3]]
    points = [corners, edges] + [np.column_stack([rng.uniform(0, width, k),
                                                  rng.uniform(0, height, k)]) for _ in range(4)]
    points = np.array(points, np.float32)
    visibility = rng.choice(np.array([0, 1, 2], np.float32), size=points.shape[:2],
                            p=[0.1, 0.3, 0.6])
    return boxes, points, visibility


def cases(height, width):
    """(op name, kwargs as passed to torchvision) for a canvas of this size."""
    out = [("horizontal_flip", {}), ("vertical_flip", {})]
    for angle in (0.0, 90.0, 180.0, 37.5, -20.0, -90.0, 135.0):
        out.append(("rotate", dict(angle=angle, expand=False)))
    for angle, translate, scale, shear, center in (
            (0.0, [0, 0], 1.0, [0.0, 0.0], None),
            (15.0, [3, -2], 1.0, [10.0, 0.0], None),
            (-30.0, [-4, 5], 0.8, [0.0, -12.0], None),
            (0.0, [0, 0], 1.3, [20.0, 8.0], None),
            (45.0, [0.5, -1.5], 1.1, [0.0, 0.0], None),
            (-60.0, [25, -10], 1.5, [5.0, 5.0], None),
            (30.0, [10, 7], 0.7, [-15.0, 5.0], [20.0, 30.0]),
            (0.0, [0, 0], 1.0, [-17.0, 6.0], [0.0, 0.0])):  # shear about the top-left corner
        out.append(("affine", dict(angle=angle, translate=translate, scale=scale, shear=shear,
                                   center=center)))
    for top, left, h, w, size in (
            (10, 20, 50, 80, [100, 120]),          # upscale, different ratios
            (0, 0, height, width, [50, 60]),       # the whole canvas, downscaled
            (30, 50, 40, 40, [40, 40]),            # the crop alone
            (5, 7, 20, 15, [40, 45]),              # small crop: most boxes cut or gone
            (height - 30, width - 45, 30, 45, [33, 17])):  # the bottom-right corner
        out.append(("resized_crop", dict(top=top, left=left, height=h, width=w, size=size)))
    for size in ([50, 80], [41, 57], [height + 13, width + 19], [height + 4, width + 2],
                 [height, width]):
        out.append(("center_crop", dict(output_size=size)))
    return out


def case_name(op, kwargs):
    if op == "rotate":
        return f"rotate_{kwargs['angle']:g}"
    if op == "affine":
        return ("affine_a{angle:g}_t{translate[0]:g},{translate[1]:g}_s{scale:g}"
                "_sh{shear[0]:g},{shear[1]:g}").format(**kwargs) + \
            ("" if kwargs["center"] is None else "_c{0:g},{1:g}".format(*kwargs["center"]))
    if op == "resized_crop":
        return "resized_crop_{top}_{left}_{height}x{width}_to_{size[0]}x{size[1]}".format(**kwargs)
    if op == "center_crop":
        return "center_crop_{0}x{1}".format(*kwargs["output_size"])
    return op


def run(op, boxes, points, canvas_size, kwargs):
    """torchvision's outputs for (n, 4) XYXY boxes and (n, K, 2) keypoints on ``canvas_size``
    (boxes with the default clamping mode), and the output canvas."""
    b = tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=canvas_size)
    k = tv_tensors.KeyPoints(torch.from_numpy(points), canvas_size=canvas_size)
    out_b, out_k = getattr(F, op)(b, **kwargs), getattr(F, op)(k, **kwargs)
    assert isinstance(out_b, tv_tensors.BoundingBoxes) and isinstance(out_k, tv_tensors.KeyPoints)
    assert out_b.canvas_size == out_k.canvas_size
    return (out_b.as_subclass(torch.Tensor).numpy().copy(),
            out_k.as_subclass(torch.Tensor).numpy().copy(), np.array(out_b.canvas_size))


def main():
    rng = np.random.default_rng(SEED)
    arrays, names, params = {}, [], []
    default_clamping = tv_tensors.BoundingBoxes(
        torch.zeros(1, 4), format="XYXY", canvas_size=(1, 1)).clamping_mode
    for canvas, (height, width) in CANVASES.items():
        boxes, points, visibility = instances(rng, height, width)
        arrays.update({f"{canvas}/canvas": np.array([height, width]), f"{canvas}/boxes": boxes,
                       f"{canvas}/points": points, f"{canvas}/visibility": visibility})
        for op, kwargs in cases(height, width):
            out_b, out_k, out_canvas = run(op, boxes, points, (height, width), kwargs)
            i = len(names)
            arrays.update({f"case/{i}/boxes": out_b, f"case/{i}/points": out_k,
                           f"case/{i}/canvas": out_canvas})
            names.append(f"{case_name(op, kwargs)}@{canvas}")
            params.append(json.dumps(dict(op=op, input=canvas, **kwargs), sort_keys=True))
    meta = dict(torch=torch.__version__, torchvision=torchvision.__version__,
                numpy=np.__version__, python=sys.version.split()[0], seed=SEED,
                clamping_mode=default_clamping, box_format="XYXY",
                script="scripts/torchvision_instances_reference.py")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, meta=np.array(json.dumps(meta, sort_keys=True)),
                        canvas_names=np.array(list(CANVASES)), case_names=np.array(names),
                        case_params=np.array(params), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(names)} cases on {len(CANVASES)} canvases, "
          f"{OUT.stat().st_size} bytes; torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, clamping_mode {default_clamping!r}")


if __name__ == "__main__":
    main()
