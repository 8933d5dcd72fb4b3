"""Boxes and keypoints through compiled pipelines, checked against the images they travel
with: every object is a rectangle in its own colour, its box the rectangle and its keypoints
three points inside it (top, left, right). After random geometric specs every valid box holds
its object's pixels, every object still showing has a valid box, every visible keypoint lies
on the image on its object, and mirrors keep left and right (``flip_pairs``). Then through a
Loader: crops, reproducibility, the batch's form, and the device flips."""
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from compiler import compile_spec, load_spec
from compiler.errors import SpecError
from operations import Target
from operations.cpu.instances import boxes_array, boxes_in, keypoints_array, points_in
from operations.device.instance_batch import (box_batch, detection_targets, mirrored_boxes,
                                              mirrored_points)
from tests.compiler.test_target_pipelines import run_jit_steps
from tests.conftest import write_detection_beton

PALETTE = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.uint8)
GEOMETRIC = ["horizontal_flip", "vertical_flip: {p: 0.5}", "rotate: {degrees: 40}",
             "shear: {degrees: [-15, 15, -10, 10]}", "translate: {max_fraction: 0.2}",
             "pad_crop: {padding: 6}", "trivial_augment_wide", "rand_augment: {num_ops: 3}",
             "random_affine: {degrees: 25, translate: [0.1, 0.1], scale: [0.8, 1.2]}"]
#: keypoints per object: 0 top, 1 left, 2 right (a mirror swaps 1 and 2)
FLIP_PAIRS = "[[1, 2]]"


def scene(height: int, width: int, seed: int):
    """An image of three rectangles (colours PALETTE[0..2]) with their boxes, labels and
    keypoints (top, left, right; 4 px inside the rectangle)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    boxes, points = [], []
    third = width // 3
    for k in range(3):
        w, h = rng.integers(12, third - 2), rng.integers(14, height // 2)
        x0, y0 = k * third + rng.integers(0, third - w), rng.integers(0, height - h)
        image[y0:y0 + h, x0:x0 + w] = PALETTE[k]
        boxes.append([x0, y0, x0 + w, y0 + h])
        cx, cy = x0 + w / 2, y0 + h / 2
        points.append([[cx, y0 + 4, 2], [x0 + 4, cy, 2], [x0 + w - 4, cy, 2]])
    return image, np.array(boxes, np.float32), np.arange(3), np.array(points, np.float32)


def spec_text(cpu, decode="decode", seed=0, device="{dtype: uint8, ops: []}",
              box_options="", batch_size=4, workers=1, mask=False) -> str:
    mask_target = "mask: {kind: mask, num_classes: 4}" if mask else ""
    return textwrap.dedent(f"""\
        version: 1
        seed: {seed}
        splits:
          train:
            image:
              decode: {decode}
              cpu: [{", ".join(cpu)}]
              device: {device}
            targets:
              {mask_target}
              boxes: {{kind: boxes{box_options}}}
              keypoints: {{kind: keypoints, flip_pairs: {FLIP_PAIRS}}}
            loader: {{batch_size: {batch_size}, order: sequential, drop_last: false, num_workers: {workers}}}
        """)


def orientation(points: np.ndarray) -> np.ndarray:
    """The sign of the triangle (left, right, top) per instance: a mirror flips it."""
    top, left, right = points[:, 0], points[:, 1], points[:, 2]
    a, b = right - left, top - left
    return np.sign(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def objects_of(images: np.ndarray) -> np.ndarray:
    """Each pixel's object (k + 1 where it shows PALETTE[k] exactly, else 0)."""
    return ((images[..., None, :] == PALETTE).all(-1) * np.arange(1, 4)).sum(-1)


def check_sample(objects, boxes, valid, points, visibility, original_points):
    """The invariants of one transformed sample (see the module doc); ``objects``: the
    (H, W) map of which object each pixel shows (k + 1; 0 none)."""
    height, width = objects.shape
    for k in range(3):
        ys, xs = np.nonzero(objects == k + 1)
        if valid[k] and len(xs):
            x1, y1, x2, y2 = boxes[k]
            assert x1 - 1.5 <= xs.min() and xs.max() + 1 <= x2 + 1.5, (k, boxes[k], xs.min(), xs.max())
            assert y1 - 1.5 <= ys.min() and ys.max() + 1 <= y2 + 1.5, (k, boxes[k], ys.min(), ys.max())
        if len(xs) > 30:
            assert valid[k], f"object {k} shows {len(xs)} pixels but its box was dropped"
        for j in np.nonzero(visibility[k])[0]:
            x, y = points[k, j]
            assert 0 <= x <= width and 0 <= y <= height
            near = objects[max(int(y) - 2, 0):int(y) + 3, max(int(x) - 2, 0):int(x) + 3]
            assert (near == k + 1).any(), (k, j, x, y)
    assert np.array_equal(orientation(points), orientation(original_points[:, :, :2]))


@settings(max_examples=12, deadline=None)
@given(ops=st.lists(st.sampled_from(GEOMETRIC), min_size=1, max_size=4),
       seed=st.integers(0, 2 ** 32), shape=st.sampled_from([(64, 96), (80, 72), (61, 93)]))
def test_random_geometric_specs_keep_boxes_and_keypoints_on_their_objects(ops, seed, shape):
    """The objects are read from a mask target (pixel for pixel torchvision's masks,
    ``test_mask_fidelity``), which colour changes (the policies') leave alone."""
    compiled = compile_spec(load_spec(spec_text(ops, seed=seed, mask=True)), device="cpu")
    scenes = [scene(*shape, seed % 1000 + i) for i in range(4)]
    masks = objects_of(np.stack([s[0] for s in scenes])).astype(np.uint8)[..., None]
    boxes = np.stack([boxes_array(s[1], s[2], *shape) for s in scenes])
    points = np.stack([keypoints_array(s[3], *shape, flip_pairs=[(1, 2)]) for s in scenes])
    indices = np.arange(20, 24, dtype=np.int64)
    masks = run_jit_steps(compiled.plan.targets["mask"], masks, indices)[..., 0]
    boxes = run_jit_steps(compiled.plan.targets["boxes"], boxes, indices)
    points = run_jit_steps(compiled.plan.targets["keypoints"], points, indices)
    for i in range(4):
        b, _, share = boxes_in(boxes[i])
        p, v, _ = points_in(points[i])
        check_sample(masks[i] % 255, b, share > 0, p, v > 0, scenes[i][3])


@pytest.fixture(scope="module")
def detection_beton(tmp_path_factory):
    scenes = [scene(64 + 4 * (i % 3), 96 - 3 * (i % 4), i) for i in range(10)]
    return write_detection_beton(tmp_path_factory.mktemp("det") / "det.beton",
                                 [s[0] for s in scenes], [s[1] for s in scenes],
                                 [s[2] for s in scenes], [s[3] for s in scenes]), scenes


def epoch(compiled, beton, **overrides):
    out = []
    for image, boxes, points in compiled.loader(beton, **overrides):
        out.append((image.permute(0, 2, 3, 1).float().numpy().copy(), boxes, points))
    return out


def test_a_loader_cuts_boxes_and_keypoints_with_the_image(detection_beton):
    beton, scenes = detection_beton
    text = spec_text(["rotate: {degrees: 20}"], device="{dtype: uint8, ops: [horizontal_flip]}",
                     decode="{random_resized_crop: {size: 56, scale: [0.5, 1.0]}}")
    batches = epoch(compile_spec(load_spec(text), device="cpu"), beton)
    seen = 0
    for images, boxes, points in batches:
        assert images.shape[1:] == (56, 56, 3)
        for i in range(len(images)):
            check_sample(objects_of(images[i]), boxes.boxes[i].numpy(), boxes.valid[i].numpy(),
                         points.points[i].numpy(), points.visibility[i].numpy() > 0,
                         scenes[seen][3])
            seen += 1
    assert seen == 10


def flat_epoch(compiled, beton, **overrides):
    boxes, points = [], []
    for _, b, p in compiled.loader(beton, **overrides):
        boxes += [x.numpy() for x in detection_targets(b)[0].values()] + [b.valid.numpy()]
        points += [p.points.numpy(), p.visibility.numpy()]
    return boxes, points


def test_boxes_and_keypoints_are_reproducible_whatever_the_workers_or_batch_size(detection_beton):
    beton, _ = detection_beton
    text = spec_text(["trivial_augment_wide", "rotate: {degrees: 30, p: 0.5}"],
                     decode="{random_resized_crop: {size: 48}}",
                     device="{dtype: uint8, ops: [horizontal_flip]}", batch_size=10)
    first = flat_epoch(compile_spec(load_spec(text), device="cpu"), beton)
    again = flat_epoch(compile_spec(load_spec(text), device="cpu"), beton, num_workers=2)
    assert all(np.array_equal(a, b) for a, b in zip(first[0] + first[1], again[0] + again[1]))
    other = compile_spec(load_spec(text), device="cpu")
    other.set_epoch(1)
    later = flat_epoch(other, beton)
    assert not all(np.array_equal(a, b) for a, b in zip(first[1], later[1]))


def test_the_batch_pads_to_the_most_boxes_of_the_batch(tmp_path):
    images = [np.zeros((40, 50, 3), np.uint8) for _ in range(4)]
    boxes = [np.zeros((0, 4)), [[1, 2, 11, 22]], [[0, 0, 5, 5]] * 5, [[3, 4, 13, 9]] * 2]
    labels = [[], [7], [1, 2, 3, 4, 5], [0, 9]]
    beton = write_detection_beton(tmp_path / "counts.beton", images, boxes, labels)
    text = textwrap.dedent("""\
        version: 1
        splits:
          train:
            image: {decode: decode, device: {dtype: uint8, ops: []}}
            targets: {boxes: {kind: boxes, format: cxcywh, normalized: true}}
            loader: {batch_size: 2, order: sequential, drop_last: false, num_workers: 1}
        """)
    batches = [b for _, b in compile_spec(load_spec(text), device="cpu").loader(beton)]
    assert [tuple(b.boxes.shape) for b in batches] == [(2, 1, 4), (2, 5, 4)]
    first = batches[0]
    assert first.valid.tolist() == [[False], [True]] and first.labels.tolist() == [[-1], [7]]
    assert torch.allclose(first.boxes[1, 0], torch.tensor([6 / 50, 12 / 40, 10 / 50, 20 / 40]))
    assert batches[1].labels.tolist() == [[1, 2, 3, 4, 5], [0, 9, -1, -1, -1]]
    assert [len(t["boxes"]) for t in detection_targets(batches[1])] == [5, 2]


# -- the rules that drop boxes, on hand-computed cases (Albumentations' documented rule:
#    visibility = area after clipping / area before; area and sides after clipping)

def rules(**options):
    return Target("boxes", "boxes", "boxes", **options)


def cropped(box, left=30, top=0, size=(100, 100)):
    """``box`` on a 100 x 100 image cut from x = ``left`` (the image decoder's crop)."""
    out = np.empty((1, 2, 6))
    from operations.cpu.instances import crop_boxes
    crop_boxes(np.array([box], np.float32), np.array([4]), top, left, size[0], size[1] - left,
               size[0], size[1] - left, out[0])
    return torch.from_numpy(out)


@pytest.mark.parametrize("options, kept", [
    ({}, True),
    ({"min_visibility": 0.5}, True),       # 20 x 40 of 40 x 40 left: visibility 0.5
    ({"min_visibility": 0.51}, False),
    ({"min_area": 800}, True),             # 800 px^2 left
    ({"min_area": 801}, False),
    ({"min_size": 20}, True),              # 20 px wide after clipping
    ({"min_size": 20.5}, False),
])
def test_box_rules_on_a_hand_computed_crop(options, kept):
    batch = box_batch(cropped([10, 10, 50, 50]), rules(**options))
    assert batch.valid.tolist() == [[kept]]
    if kept:
        assert batch.boxes[0, 0].tolist() == [0, 10, 20, 50] and batch.labels.tolist() == [[4]]


def test_a_box_cut_off_entirely_is_dropped_and_a_partial_box_counts_its_share():
    assert box_batch(cropped([0, 0, 30, 10]), rules()).boxes.shape == (1, 0, 4)  # no row left
    share = boxes_in(cropped([20, 0, 60, 10])[0].numpy())[2]
    assert share.tolist() == [0.75]


def test_device_mirrors_give_the_cpu_flips_values():
    from operations import get_op
    b = np.stack([boxes_array([[1, 2, 30, 9], [5, 5, 6, 6]], [0, 1], 20, 40, rows=3)] * 2)
    k = np.stack([keypoints_array([[[1, 2, 2], [3, 4, 1], [39, 19, 2]]], 20, 40,
                                  flip_pairs=[(1, 2)])] * 2)
    flips = torch.tensor([True, False])
    cpu = get_op("horizontal_flip", "cpu")(p=1.0)
    boxes_target = Target("b", "boxes", "b")
    points_target = Target("k", "keypoints", "k", flip_pairs=((1, 2),))
    expected_b = cpu.for_target(boxes_target).apply(b[:1])
    expected_k = cpu.for_target(points_target).apply(k[:1])
    assert np.array_equal(mirrored_boxes(torch.from_numpy(b), flips)[0].numpy(), expected_b[0])
    assert np.array_equal(mirrored_points(torch.from_numpy(k), flips)[0].numpy(), expected_k[0])
    assert np.array_equal(mirrored_boxes(torch.from_numpy(b), flips)[1].numpy(), b[1])
    assert points_in(expected_k[0])[0][0].tolist() == [[39, 2], [1, 19], [37, 4]]


def test_normalize_flip_on_the_device_mirrors_boxes_and_keypoints(detection_beton):
    """bfloat16 has no per-image form: the flip runs on the device batch (TargetMirrorOnDevice)."""
    beton, scenes = detection_beton
    crop = "{center_crop: {size: 56}}"
    text = spec_text([], decode=crop, device="{dtype: bfloat16, ops: [normalize, horizontal_flip]}")
    compiled = compile_spec(load_spec(text), device="cpu")
    plain = compile_spec(load_spec(spec_text([], decode=crop)), device="cpu")
    flipped = 0
    for (_, boxes, points), (_, plain_boxes, plain_points) in zip(epoch(compiled, beton),
                                                                  epoch(plain, beton)):
        mirrored = (boxes.boxes[..., 0] != plain_boxes.boxes[..., 0]).any(1)
        flipped += int(mirrored.sum())
        expect = torch.where(plain_boxes.valid, 56 - plain_boxes.boxes[..., 2], 0.0)
        assert torch.allclose(boxes.boxes[mirrored][..., 0], expect[mirrored], atol=1e-4)
        assert torch.equal(boxes.boxes[~mirrored], plain_boxes.boxes[~mirrored])
        left, right = points.points[mirrored][:, :, 1, 0], plain_points.points[mirrored][:, :, 2, 0]
        assert torch.allclose(left, 56 - right, atol=1e-4)  # the right point, mirrored: the new left
    assert 0 < flipped < 10


@pytest.mark.parametrize("batch_op", ["mixup", "cutmix"])
def test_mixing_ops_refuse_boxes_at_their_line(batch_op):
    text = spec_text([], device="{ops: [normalize]}").replace(
        "    loader:", f"    batch: [{batch_op}: {{num_classes: 3}}]\n    loader:")
    with pytest.raises(SpecError) as err:
        compile_spec(load_spec(text), device="cpu")
    assert f"'{batch_op}' mixes pairs of images; boxes targets cannot follow it" in str(err.value)
    assert "<string>:13:13:" in str(err.value)


@pytest.mark.parametrize("options, message", [
    ("{kind: mask, format: xywh}", "format applies to boxes targets, not mask"),
    ("{kind: boxes, ignore_index: 3}", "ignore_index applies to mask targets, not boxes"),
    ("{kind: keypoints, flip_pairs: [[1, 2], [2, 3]]}", "flip_pairs name a point twice"),
    ("{kind: boxes, min_visibility: 1.5}", "min_visibility"),
    ("{kind: boxes, format: xyzw}", "format"),
])
def test_target_options_of_another_kind_are_located_errors(options, message):
    text = textwrap.dedent(f"""\
        version: 1
        splits:
          train:
            image: {{decode: decode}}
            targets: {{t: {options}}}
        """)
    with pytest.raises(SpecError) as err:
        load_spec(text)
    assert message in str(err.value) and ":5:" in str(err.value)


def test_explain_names_the_targets_each_step_moves():
    text = compile_spec(load_spec(spec_text(["rotate: {degrees: 20}", "invert"])),
                        device="cpu").explain()
    rows = {line.split()[2]: line for line in text.splitlines()[3:8] if line.strip()}
    assert "boxes,keypoints" in rows["rotate"] and "boxes,keypoints" not in rows["invert"]
    assert ("boxes (boxes, xyxy pixels, min_area 0, min_visibility 0, min_size 0): decode -> "
            "rotate -> to_tensor -> target_batch") in text
    assert "keypoints (keypoints, mirror swaps 1<->2): decode -> rotate -> to_tensor" in text
