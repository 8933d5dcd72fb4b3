"""`pureffcv preview`: the grid's layout, the display conversion, and one real run whose
original halves are the stored images and whose augmented halves are their mirror images."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compiler import compile_spec
from pipelines.cli import main
from pipelines.preview import (BACKGROUND, CLASS_COLOURS, POINT_COLOUR, POINT_RIM, Overlay,
                               box_classes, compose_grid, draw_overlay, label_text,
                               normalization_of, overlay_masks, pixel_boxes, to_display)
from tests.conftest import (structured_image, write_beton, write_detection_beton,
                            write_segmentation_beton)
from tests.pipelines import failing_kernel

REPO = Path(__file__).resolve().parents[2]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255

FLIP_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      cpu: [{horizontal_flip: {p: 1.0}}]
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 8, num_workers: 1}
"""


def cell_origin(i, columns, h, w):
    """Top-left pixel of cell i, by the documented layout: 6 px margins, 2 px between the
    halves, a 12 px label strip under each cell."""
    return 6 + (i // columns) * (h + 12 + 6), 6 + (i % columns) * (2 * w + 2 + 6)


def test_grid_size_placement_and_zoom():
    originals = np.stack([structured_image(4, 6, seed=i) for i in range(5)])
    augmented = 255 - originals
    grid = compose_grid(originals, augmented, ["0", "1", "2", "3", "4"], columns=2, zoom=2)
    # 2 columns of (2 * 12 + 2) px + 3 margins of 6; 3 rows of (8 + 12) px + 4 margins of 6
    assert grid.shape == (84, 70, 3) and grid.dtype == np.uint8
    for i in range(5):
        top, left = cell_origin(i, 2, 8, 12)
        big = np.kron(originals[i], np.ones((2, 2, 1), np.uint8))
        assert np.array_equal(grid[top:top + 8, left:left + 12], big)
        assert np.array_equal(grid[top:top + 8, left + 14:left + 26], 255 - big)
        assert (grid[top:top + 8, left + 12:left + 14] == BACKGROUND).all()
        assert (grid[top + 8:top + 20, left:left + 26] != BACKGROUND).any()  # the label
    top, left = cell_origin(5, 2, 8, 12)
    assert (grid[top:, left:] == BACKGROUND).all()  # the empty sixth cell


def test_columns_shrink_to_the_sample_count():
    images = np.zeros((2, 5, 5, 3), np.uint8)
    grid = compose_grid(images, images, ["", ""], columns=4)
    assert grid.shape == (6 + 17 + 6, 6 + 2 * 12 + 6 + 6, 3)


def test_label_text():
    assert label_text(torch.tensor(3)) == "3"
    assert label_text(torch.tensor([0.1, 0.62, 0.0, 0.28])) == "1 62% 3 28%"
    assert label_text(torch.tensor([0.0, 1.0, 0.0])) == "1 100%"  # soft, though one-hot
    assert label_text(torch.tensor([0.05, 0.05, 0.85, 0.05])) == "2 85%"  # smoothing floor
    assert label_text(torch.tensor([0.25, 0.25, 0.25, 0.25])) == "0 25%"  # flat


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_to_display_undoes_the_normalization_exactly(dtype):
    pixels = np.arange(256 * 3, dtype=np.float64).reshape(1, 16, 16, 3) % 256
    normalized = torch.from_numpy((pixels - IMAGENET_MEAN) / IMAGENET_STD).to(dtype)
    images = normalized.permute(0, 3, 1, 2)  # channels_last view, as the device stage gives
    shown = to_display(images, (IMAGENET_MEAN, IMAGENET_STD))
    assert shown.dtype == np.uint8 and np.array_equal(shown, pixels.astype(np.uint8))
    assert np.array_equal(to_display(images * 0 + 300.0, None), np.full((1, 16, 16, 3), 255))


@pytest.mark.parametrize("ops", ["device: {ops: [{flip: {}}, {normalize: {mean: cifar10}}]}",
                                 "cpu: [{cpu_normalize: {mean: cifar10}}]"])
def test_normalization_of_finds_the_fused_and_the_cpu_normalize(ops):
    spec = f"""
version: 1
splits:
  train:
    image:
      decode: {{center_crop: {{size: 8}}}}
      {ops}
"""
    mean, std = normalization_of(compile_spec(spec, device="cpu").plan)
    assert np.allclose(mean, np.array([0.4914, 0.4822, 0.4465]) * 255)
    assert np.allclose(std, IMAGENET_STD)


def test_preview_shows_originals_and_their_mirror_images(tmp_path, capsys):
    images = [structured_image(32, 32, seed=i) for i in range(6)]
    beton = write_beton(tmp_path / "square.beton", images, [i % 3 for i in range(6)])
    spec = tmp_path / "flip.yaml"
    spec.write_text(FLIP_SPEC)
    out = tmp_path / "grids" / "preview.png"
    assert main(["preview", str(spec), str(beton), "--out", str(out), "--n", "5",
                 "--columns", "2", "--zoom", "1", "--first"]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (3 * 44 + 4 * 6, 2 * 66 + 3 * 6, 3)
    for i in range(5):
        top, left = cell_origin(i, 2, 32, 32)
        assert np.array_equal(grid[top:top + 32, left:left + 32], images[i])
        assert np.array_equal(grid[top:top + 32, left + 34:left + 66], images[i][:, ::-1])


def run_failing(args, capsys):
    assert main(["preview", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_user_mistakes_are_one_line_and_exit_1(tmp_path, capsys, small_beton):
    spec = tmp_path / "flip.yaml"
    spec.write_text(FLIP_SPEC)
    missing = tmp_path / "missing.beton"
    assert run_failing([str(spec), str(missing)], capsys) == \
        f"pureffcv preview: {missing}: no such .beton file"
    assert run_failing([str(spec), str(small_beton), "--split", "trian"], capsys).startswith(
        f"{spec}:1:1: no split named 'trian'")
    assert run_failing([str(spec), str(small_beton), "--n", "0"], capsys) == \
        "pureffcv preview: n, columns and zoom must be at least 1"
    assert run_failing([str(spec), str(small_beton), "--device", "tpu"], capsys) == \
        "pureffcv preview: unknown device 'tpu'; use auto, cpu, cuda or cuda:N"
    not_beton = tmp_path / "text.beton"
    not_beton.write_text("hello")
    assert run_failing([str(spec), str(not_beton)], capsys).startswith(
        f"pureffcv preview: {not_beton}: ")  # the reason's wording: pipelines/beton.py
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLIP_SPEC.replace("horizontal_flip", "horizontal_flipp"))
    assert run_failing([str(bad), str(small_beton)], capsys).startswith(
        f"{bad}:7:14: unknown op 'horizontal_flipp'")


def test_an_op_failing_in_the_loader_thread_is_one_line_not_a_hang(tmp_path, small_beton):
    spec = tmp_path / "failing.yaml"
    spec.write_text(failing_kernel.SPEC)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "preview", str(spec),
                           str(small_beton), "--out", str(tmp_path / "p.png")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"pureffcv preview: {failing_kernel.MESSAGE}")
    assert line.endswith("failing_kernel.py, line 9)")  # the kernel's failing line
    assert not (tmp_path / "p.png").exists()


def test_samples_are_drawn_across_classes_in_turn_and_seeded():
    from pipelines.preview import choose_samples

    labels = np.repeat(np.arange(4), 10)  # an ImageFolder: sorted by class
    chosen = choose_samples(labels, 8, seed=3)
    assert labels[chosen].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert len(set(chosen.tolist())) == 8
    assert choose_samples(labels, 8, seed=3).tolist() == chosen.tolist()
    assert choose_samples(labels, 8, seed=4).tolist() != chosen.tolist()
    # paired (mixup pairs i with B-1-i): every pair is of two different classes
    for n in (5, 6, 7, 8):
        paired = labels[choose_samples(labels, n, seed=0, paired=True)]
        assert all(paired[k] != paired[n - 1 - k] for k in range(n // 2))
        assert sorted(paired.tolist()) == sorted(labels[choose_samples(labels, n)].tolist())
    assert set(labels[choose_samples(labels, 6, classes=[1, 3])].tolist()) == {1, 3}
    assert choose_samples(labels, 8, indices=[5, 2]).tolist() == [5, 2]
    assert choose_samples(labels, 3, first=True).tolist() == [0, 1, 2]


MIX_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    label: {num_classes: 3}
    batch: [{mixup: {alpha: 1.0, label_smoothing: 0.0}}]
    loader: {batch_size: 8, num_workers: 1}
"""


def test_mixup_preview_mixes_different_classes_and_names_them(tmp_path, monkeypatch):
    import json

    import pipelines.preview as preview_module

    images = [structured_image(32, 32, seed=i) for i in range(12)]
    labels = [i // 4 for i in range(12)]  # sorted by class, as convert writes an ImageFolder
    beton = write_beton(tmp_path / "sorted.beton", images, labels)
    (tmp_path / "sorted.classes.json").write_text(json.dumps({"cat": 0, "dog": 1, "fox": 2}))
    spec = tmp_path / "mix.yaml"
    spec.write_text(MIX_SPEC)
    shown = {}
    compose = preview_module.compose_grid

    def keep(originals, augmented, texts, columns, zoom=1):
        shown.update(originals=originals, texts=texts)
        return compose(originals, augmented, texts, columns, zoom)

    monkeypatch.setattr(preview_module, "compose_grid", keep)
    preview_module.preview(spec, beton, tmp_path / "p.png", n=6)
    # the originals are the samples chosen: recover their labels from the stored images
    chosen = [next(i for i, im in enumerate(images) if np.array_equal(im, o))
              for o in shown["originals"]]
    pairs = [(labels[chosen[k]], labels[chosen[5 - k]]) for k in range(3)]
    assert all(a != b for a, b in pairs)
    names = ["cat", "dog", "fox"]
    for k, text in enumerate(shown["texts"]):
        words = text.split()
        assert set(words[::2]) <= {names[labels[chosen[k]]], names[labels[chosen[5 - k]]]}
    assert main(["preview", str(spec), str(beton), "--out", str(tmp_path / "q.png"),
                 "--classes", "cat,fox", "--n", "4"]) == 0
    assert main(["preview", str(spec), str(beton), "--out", str(tmp_path / "q.png"),
                 "--classes", "cow"]) == 1


SEGMENTATION_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      cpu: [{horizontal_flip: {p: 1.0}}, {rotate: {degrees: [90, 90], fill: 9}}]
    targets: {mask: {ignore_index: 200}}
    loader: {batch_size: 4, num_workers: 1}
"""


def test_overlay_blends_each_class_colour_and_leaves_ignored_pixels():
    images = np.full((1, 1, 3, 3), 100, np.uint8)
    masks = np.array([[[0, 1, 200]]])
    out = overlay_masks(images, masks, ignore_index=200)[0, 0]
    for k, cls in enumerate((0, 1)):  # 0.55 * 100 + 0.45 * colour, rounded
        assert list(out[k]) == [round(55 + 0.45 * c) for c in CLASS_COLOURS[cls]]
    assert list(out[2]) == [100, 100, 100]


def banded(count: int = 4):
    """(images, masks): grey 32x32 images whose masks have a left band of class 1 or 2."""
    masks = [np.zeros((32, 32), np.uint8) for _ in range(count)]
    for i, mask in enumerate(masks):
        mask[:, :8 + 4 * i] = 1 + i % 2
    return [np.full((32, 32, 3), 90, np.uint8) for _ in masks], masks


def test_a_segmentation_preview_overlays_the_masks_that_moved_with_the_images(tmp_path):
    images, masks = banded()
    beton = write_segmentation_beton(tmp_path / "seg.beton", images, masks)
    spec = tmp_path / "seg.yaml"
    spec.write_text(SEGMENTATION_SPEC)
    grid = np.asarray(Image.open(main_preview(spec, beton, tmp_path / "grid.png")))[..., :3]
    zoom, size = 2, 64  # 32 px images are enlarged to at least 64
    top, left = cell_origin(0, 4, size, size)
    original = grid[top:top + size, left:left + size]
    augmented = grid[top:top + size, left + size + 2:left + 2 * size + 2]
    band = overlay_masks(images[0][None, :1, :1], np.array([[[1]]]), 200)[0, 0, 0]
    plain = overlay_masks(images[0][None, :1, :1], np.array([[[0]]]), 200)[0, 0, 0]
    assert (original[:, :8 * zoom] == band).all() and (original[:, 8 * zoom:] == plain).all()
    # flipped left-right, then turned 90 degrees counter-clockwise: the band is at the top
    assert (augmented[:8 * zoom] == band).all() and (augmented[8 * zoom:] == plain).all()


def main_preview(spec, beton, out):
    assert main(["preview", str(spec), str(beton), "--out", str(out), "--first"]) == 0
    return out


DETECTION_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      cpu: [{horizontal_flip: {p: 1.0}}]
    targets:
      boxes: {kind: boxes, format: xywh, normalized: true, min_area: 10}
      keypoints: {kind: keypoints}
    loader: {batch_size: 2, num_workers: 1}
"""
GREY = 90


def detection_scene(folder: Path) -> Path:
    """A .beton of two grey 32x32 images: the first with a box (4, 6)-(20, 26) of class 1,
    its keypoints (10, 16) visible, (24, 20) occluded and one not labelled, and a 2x2 box
    (28, 28)-(30, 30) of class 2 without keypoints (area 4: below DETECTION_SPEC's min_area);
    the second with neither. Beside it, an OUT.categories.json naming the classes."""
    import json

    images = [np.full((32, 32, 3), GREY, np.uint8) for _ in range(2)]
    boxes = [[[4, 6, 20, 26], [28, 28, 30, 30]], np.zeros((0, 4))]
    labels = [[1, 2], []]
    points = [[[[10, 16, 2], [24, 20, 1], [0, 0, 0]], np.zeros((3, 3))], np.zeros((0, 3, 3))]
    beton = write_detection_beton(folder / "det.beton", images, boxes, labels, points)
    (folder / "det.categories.json").write_text(json.dumps({"labels": [
        {"label": 1, "category_id": 7, "name": "cat"},
        {"label": 2, "category_id": 9, "name": "dog"}]}))
    return beton


def outlined(image, x1, y1, x2, y2, colour) -> bool:
    """Whether the rectangle of pixels x1..x2, y1..y2 (inclusive) has ``colour`` all round
    and is not filled with it."""
    edges = [image[y1:y2 + 1, x1], image[y1:y2 + 1, x2], image[y1, x1:x2 + 1],
             image[y2, x1:x2 + 1]]
    return all((edge == colour).all() for edge in edges) and \
        (image[y1 + 1:y2, x1 + 1:x2] != colour).any()


def test_a_detection_preview_draws_boxes_and_keypoints_on_both_halves(tmp_path, monkeypatch):
    import pipelines.preview as preview_module

    beton = detection_scene(tmp_path)
    spec = tmp_path / "det.yaml"
    spec.write_text(DETECTION_SPEC)
    texts = []
    compose = preview_module.compose_grid

    def keep(originals, augmented, labels, columns, zoom=1):
        texts.extend(labels)
        return compose(originals, augmented, labels, columns, zoom)

    monkeypatch.setattr(preview_module, "compose_grid", keep)
    grid = np.asarray(Image.open(main_preview(spec, beton, tmp_path / "grid.png")))[..., :3]
    assert texts == ["1 box", "0 boxes"]  # the 2x2 box fails min_area
    size = 64  # 32 px images enlarged twice; the boxes drawn at that size
    top, left = cell_origin(0, 2, size, size)
    original = grid[top:top + size, left:left + size]
    augmented = grid[top:top + size, left + size + 2:left + 2 * size + 2]
    cat, dog = CLASS_COLOURS[1], CLASS_COLOURS[2]
    # original: (4, 6)-(20, 26) times 2 is pixels 8..39 x 12..51; the small box drawn too
    assert outlined(original, 8, 12, 39, 51, cat)
    assert outlined(original, 56, 56, 59, 59, dog)
    assert (original[52:, :56] == GREY).all()  # nothing else below the box
    # keypoints: a filled dot at (10, 16) * 2 with its rim, a ring at (24, 20) * 2
    assert (original[32, 20] == POINT_COLOUR).all() and (original[32, 22] == POINT_RIM).all()
    assert (original[40, 48] == GREY).all() and (original[40, 50] == POINT_COLOUR).all()
    assert (original[:4, :4] == GREY).all()  # the point not labelled, at (0, 0): not drawn
    # mirrored: x -> 32 - x, the box 12..28 (pixels 24..55); the small box is not valid
    assert outlined(augmented, 24, 12, 55, 51, cat)
    assert (augmented[52:] == GREY).all()
    assert (augmented[32, 44] == POINT_COLOUR).all() and (augmented[32, 46] == POINT_RIM).all()
    assert (augmented[40, 16] == GREY).all() and (augmented[40, 18] == POINT_COLOUR).all()
    # the second sample has nothing to draw
    top, left = cell_origin(1, 2, size, size)
    assert (grid[top:top + size, left:left + size] == GREY).all()
    assert (grid[top:top + size, left + size + 2:left + 2 * size + 2] == GREY).all()


def test_pixel_boxes_undo_each_format():
    from operations import Target

    xyxy = np.array([[4.0, 6.0, 20.0, 26.0]])
    size = (32, 40)  # h, w
    scale = np.array([40, 32, 40, 32])
    for box_format, stored in [("xyxy", [4, 6, 20, 26]), ("xywh", [4, 6, 16, 20]),
                               ("cxcywh", [12, 16, 16, 20])]:
        target = Target("boxes", "boxes", "boxes", box_format=box_format)
        assert np.allclose(pixel_boxes(np.array([stored], float), target, size), xyxy)
        normalized = Target("boxes", "boxes", "boxes", box_format=box_format, normalized=True)
        assert np.allclose(pixel_boxes(np.array([stored]) / scale, normalized, size), xyxy)


def test_draw_overlay_at_a_zoom_with_the_masks_colours(tmp_path):
    import json

    image = np.full((20, 30, 3), GREY, np.uint8)
    overlay = Overlay(np.array([[2.0, 10.0, 12.0, 16.0], [5.0, 5.0, 5.0, 9.0]]),
                      np.array([1, 3]), np.array([[25.0, 4.0]]), np.array([2]))
    drawn = draw_overlay(image, overlay, zoom=3, names={1: "cat"}, offset=1)
    assert drawn.shape == (60, 90, 3)
    colour = CLASS_COLOURS[2]  # label 1 + offset 1: its polygon mask's colour
    assert outlined(drawn, 6, 30, 35, 47, colour)
    assert (drawn[24:30, 6:12] == colour).any()  # the tag above the box
    assert not (drawn == CLASS_COLOURS[4]).all(-1).any()  # no area: not drawn
    assert (drawn[12, 75] == POINT_COLOUR).all()
    assert np.array_equal(draw_overlay(image, None, zoom=2), image.repeat(2, 0).repeat(2, 1))
    beton = tmp_path / "coco.beton"
    assert box_classes(beton) == ({}, 0)
    (tmp_path / "coco.categories.json").write_text(json.dumps({
        "labels": [{"label": 0, "category_id": 1, "name": "person"}],
        "mask": {"background": 0, "offset": 1}}))
    assert box_classes(beton) == ({0: "person"}, 1)
    (tmp_path / "coco.categories.json").write_text("{not json")
    assert box_classes(beton) == ({}, 0)
