"""Masks against torchvision v2's ``tv_tensors.Mask``: the outputs stored in
``data/tv_mask_reference.npz`` were computed by torchvision 0.29.1 in a separate venv
(``scripts/torchvision_mask_reference.py``); here the same fixed parameters go through
pureffcv's own ops and kernels and must give the same pixels, every one."""
import json
from pathlib import Path

import numpy as np
import pytest

from operations import Target, get_op
from operations.cpu.mask_decoders import nearest_resize_crop
from operations.cpu.warp import affine_matrix, mask_warp

REFERENCE = np.load(Path(__file__).parent / "data" / "tv_mask_reference.npz")
LABELS = {name: REFERENCE[f"label/{name}"] for name in REFERENCE["label_names"]}
CASES = [(i, json.loads(p)) for i, p in enumerate(REFERENCE["case_params"])]
MASK = Target("mask", "mask", "mask", fill=255)


def cases(*ops):
    return [pytest.param(i, p, id=f"{REFERENCE['case_names'][i]}") for i, p in CASES
            if p["op"] in ops]


def through_target(op, mask):
    """``mask`` through ``op``'s target step, as a pipeline runs it on a (1, H, W, 1) batch."""
    return op.for_target(MASK).apply(mask[None, :, :, None].copy())[0, :, :, 0]


@pytest.mark.parametrize("index, params", cases("horizontal_flip", "vertical_flip"))
def test_flips_move_masks_as_torchvision(index, params):
    op = get_op(params["op"], "cpu")(p=1.0)
    assert np.array_equal(through_target(op, LABELS[params["input"]]), REFERENCE[f"case/{index}"])


@pytest.mark.parametrize("index, params", cases("rotate"))
def test_rotate_moves_masks_as_torchvision(index, params):
    angle = params["angle"]
    op = get_op("rotate", "cpu")(degrees=[angle, angle], fill=params["fill"])
    assert np.array_equal(through_target(op, LABELS[params["input"]]), REFERENCE[f"case/{index}"])


@pytest.mark.parametrize("index, params", cases("affine"))
def test_affine_warps_masks_as_torchvision(index, params):
    """torchvision's F.affine parameters as our matrix (``warp.affine_matrix``), through the
    mask warp every geometric op's mask target uses."""
    src = LABELS[params["input"]]
    height, width = src.shape
    cx, cy = (width / 2, height / 2) if params["center"] is None else params["center"]
    (tx, ty), (sx, sy) = params["translate"], params["shear"]
    matrix = affine_matrix(params["angle"], tx, ty, params["scale"], sx, sy, cx, cy)
    out = np.empty((height, width, 1), np.uint8)
    mask_warp(src[:, :, None].copy(), out, matrix, params["fill"])
    assert np.array_equal(out[:, :, 0], REFERENCE[f"case/{index}"])


def resized(src, top, left, height, width, size):
    out = np.empty(tuple(size) + (1,), src.dtype)
    nearest_resize_crop(src, top, left, height, width, out)
    return out[:, :, 0]


@pytest.mark.parametrize("index, params", cases("resized_crop"))
def test_resized_crop_of_masks_matches_torchvision(index, params):
    out = resized(LABELS[params["input"]], params["top"], params["left"], params["height"],
                  params["width"], params["size"])
    assert np.array_equal(out, REFERENCE[f"case/{index}"])


@pytest.mark.parametrize("index, params", cases("resize"))
def test_resize_of_masks_matches_torchvision(index, params):
    src = LABELS[params["input"]]
    height, width = src.shape
    size = params["size"]
    if len(size) == 1:  # torchvision: the shorter side becomes size, the other in proportion
        short = size[0]
        size = (short, int(short * width / height)) if height <= width else \
            (int(short * height / width), short)
    assert np.array_equal(resized(src, 0, 0, height, width, size), REFERENCE[f"case/{index}"])


def inside(param) -> bool:
    """A centre box that fits the mask (torchvision pads larger ones with 0; pureffcv's crops
    always lie inside the image)."""
    _, params = param.values
    height, width = LABELS[params["input"]].shape
    return params["output_size"][0] <= height and params["output_size"][1] <= width


@pytest.mark.parametrize("index, params", [c for c in cases("center_crop") if inside(c)])
def test_centre_crop_of_masks_matches_torchvision(index, params):
    """torchvision's centre box (its anchor rounds half to even) cut by the decoders' crop."""
    src = LABELS[params["input"]]
    height, width = src.shape
    crop_h, crop_w = params["output_size"]
    top, left = int(round((height - crop_h) / 2)), int(round((width - crop_w) / 2))
    out = resized(src, top, left, crop_h, crop_w, (crop_h, crop_w))
    assert np.array_equal(out, REFERENCE[f"case/{index}"])
