"""torchvision v2 reference outputs for segmentation masks (``tv_tensors.Mask``).

Writes ``tests/operations/cpu/data/tv_mask_reference.npz``: a few uint8 label maps (made with
a fixed numpy seed, stored in the file) and, for each case, torchvision's output of one v2
functional op on the map as a ``tv_tensors.Mask`` (masks always sample NEAREST), so that our
mask transforms can be checked pixel for pixel without torchvision.

Runs ONLY in a separate venv that has torch and torchvision; the project's venv must never
contain torchvision. For example (torch 2.14.1 and torchvision 0.29.1 from the local wheels)::

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /tmp/tvenv/bin/python scripts/torchvision_mask_reference.py

The file's keys:

- ``meta``: a JSON string (torch, torchvision and numpy versions, seed, the ignore index);
- ``label_names``: the label maps' names; ``label/<name>``: each map, (H, W) uint8;
- ``case_names``, ``case_params``: one entry per case, the parameters as a JSON string (the
  op, the input map's name and the op's arguments exactly as passed to torchvision);
- ``case/<i>``: case ``i``'s output, (H', W') uint8.

torchvision's conventions that the cases pin down (torchvision 0.29,
``transforms/v2/functional/_geometry.py``): ``rotate`` and ``affine`` build the inverse matrix
of ``_get_inverse_affine_matrix`` about the image centre, warp with ``grid_sample(mode=
"nearest", align_corners=False)`` in float32 (ties round half to even), and put ``fill``
where the nearest source pixel falls outside; ``rotate`` takes fast exact paths for 0 and 180
degrees (and 90/270 on square inputs only); ``center_crop`` larger than the mask pads with 0,
never with ``fill``; ``resize``/``resized_crop`` use ``interpolate(mode="nearest")``.
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
OUT = ROOT / "tests" / "operations" / "cpu" / "data" / "tv_mask_reference.npz"
SEED = 20240917
IGNORE = 255
CLASSES = 8  # labels 0..7, plus IGNORE


def label_map(rng, height, width):
    """Background 0, a few rectangles and discs of classes 1..7, a band of per-pixel random
    classes (every sampling error shows there) and a rectangle of the ignore index 255."""
    m = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[:height, :width]
    for _ in range(3):
        y0, x0 = rng.integers(0, height - 6), rng.integers(0, width - 6)
        h, w = rng.integers(4, max(5, height // 2)), rng.integers(4, max(5, width // 2))
        m[y0:y0 + h, x0:x0 + w] = rng.integers(1, CLASSES)
    for _ in range(2):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(3, min(height, width) / 3)
        m[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(1, CLASSES)
    top = height // 3
    m[top:top + height // 3, :] = rng.integers(0, CLASSES, (height // 3, width))
    left, band = rng.integers(0, width // 2), max(3, width // 6)
    m[height // 8:height // 8 + height // 4, left:left + band] = IGNORE
    return m


def cases(height, width):
    """(op name, kwargs as passed to torchvision) for a map of this size. Crop boxes fit every
    map (all are at least 37 x 27)."""
    out = [("horizontal_flip", {}), ("vertical_flip", {})]
    for angle in (30.0, -45.0, 90.0, -90.0, 135.0, 180.0, 7.5):
        out.append(("rotate", dict(angle=angle, expand=False, fill=IGNORE)))
    for angle, translate, shear, center in (
            (15.0, [3, -2], [10.0, 0.0], None),
            (-30.0, [-4, 5], [0.0, -12.0], None),
            (0.0, [0, 0], [20.0, 8.0], None),
            (0.0, [5, 3], [0.0, 0.0], None),
            (45.0, [0.5, -1.5], [0.0, 0.0], None),
            (0.0, [0, 0], [-17.0, 6.0], [0.0, 0.0])):  # shear about the top-left corner
        out.append(("affine", dict(angle=angle, translate=translate, scale=1.0, shear=shear,
                                   center=center, fill=IGNORE)))
    for top, left, h, w, size in (
            (5, 7, 20, 15, [40, 45]),      # upscale, 2x and 3x
            (0, 0, 37, 27, [16, 12]),      # downscale
            (3, 2, 25, 17, [50, 34]),      # exactly 2x (torch's shortcut path)
            (10, 4, 21, 23, [13, 29]),     # down in y, up in x, non-integer ratios
            (2, 9, 17, 13, [17, 13]),      # same size: the crop alone
            (1, 3, 11, 7, [33, 10]),       # 3x in y
            (0, 2, 21, 20, [69, 92])):     # float32 scale: floor(i * 21/69) != i * 21 // 69
        out.append(("resized_crop", dict(top=top, left=left, height=h, width=w, size=size)))
    for size in ([20, 16], [21, 15], [45, 24], [70, 66]):
        out.append(("center_crop", dict(output_size=size)))
    # [82, 74], [92, 74]: torch's float32 scale floors some indices one below the exact
    # integer floor(i * in / out) (64 -> 82, 48 -> 74, 40 -> 92)
    for size in ([24, 30], [50, 70], [2 * height, 2 * width], [32], [82, 74], [92, 74]):
        out.append(("resize", dict(size=size)))
    return out


def case_name(op, kwargs):
    if op == "rotate":
        return f"rotate_{kwargs['angle']:g}"
    if op == "affine":
        return "affine_a{angle:g}_t{translate[0]:g},{translate[1]:g}_sh{shear[0]:g},{shear[1]:g}" \
            .format(**kwargs) + ("_c0" if kwargs["center"] is not None else "")
    if op == "resized_crop":
        return "resized_crop_{top}_{left}_{height}x{width}_to_{size[0]}x{size[1]}".format(**kwargs)
    if op == "center_crop":
        return "center_crop_{0}x{1}".format(*kwargs["output_size"])
    if op == "resize":
        return "resize_" + "x".join(str(s) for s in kwargs["size"])
    return op


def run(op, mask, kwargs):
    """torchvision's output for a (H, W) uint8 map as a (1, H, W) Mask."""
    m = tv_tensors.Mask(torch.from_numpy(mask).unsqueeze(0))
    out = getattr(F, op)(m, **kwargs)
    assert isinstance(out, tv_tensors.Mask) and out.dtype == torch.uint8
    return out.squeeze(0).numpy().copy()


def main():
    rng = np.random.default_rng(SEED)
    labels = {f"map_{h}x{w}": label_map(rng, h, w) for h, w in ((37, 53), (64, 48), (40, 27))}
    arrays = {f"label/{k}": v for k, v in labels.items()}
    names, params = [], []
    for label, mask in labels.items():
        for op, kwargs in cases(*mask.shape):
            out = run(op, mask, kwargs)
            arrays[f"case/{len(names)}"] = out
            names.append(f"{case_name(op, kwargs)}@{label}")
            params.append(json.dumps(dict(op=op, input=label, **kwargs), sort_keys=True))
    meta = dict(torch=torch.__version__, torchvision=torchvision.__version__,
                numpy=np.__version__, python=sys.version.split()[0], seed=SEED, ignore=IGNORE,
                script="scripts/torchvision_mask_reference.py")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, meta=np.array(json.dumps(meta, sort_keys=True)),
                        label_names=np.array(list(labels)), case_names=np.array(names),
                        case_params=np.array(params), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {len(names)} cases on {len(labels)} maps, "
          f"{OUT.stat().st_size} bytes; torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main()
