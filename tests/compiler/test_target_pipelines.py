"""Masks through compiled pipelines: an image whose colours encode its mask comes out with
colour regions and mask regions that agree, through random geometric specs and through a
Loader; masks are reproducible as images are (same seed, any workers or batch size); uint16
masks; the batch order whatever the .beton's field order."""
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from compiler import compile_spec, load_spec
from tests.conftest import write_segmentation_beton

#: each class's colour (none is black, the image's fill) and the colour -> class decoding
PALETTE = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [220, 220, 60]], np.uint8)
GEOMETRIC = ["horizontal_flip", "vertical_flip: {p: 0.5}", "rotate: {degrees: 40}",
             "shear: {degrees: [-15, 15, -10, 10]}", "translate: {max_fraction: 0.2}",
             "pad_crop: {padding: 6}",
             "random_affine: {degrees: 25, translate: [0.1, 0.1], scale: [0.8, 1.2]}"]


def label_map(height: int, width: int, seed: int) -> np.ndarray:
    """Rectangles and discs of classes 0..3 on class 0."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    ys, xs = np.mgrid[:height, :width]
    for k in range(6):
        cls = 1 + k % 3
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(5, 16)
        if k % 2:
            mask[(ys - cy) ** 2 + (xs - cx) ** 2 < r * r] = cls
        else:
            mask[max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = cls
    return mask


def classes_of(images: np.ndarray) -> np.ndarray:
    """Each pixel's class by its nearest palette colour (NHWC uint8 images); -1 for black."""
    distance = ((images[..., None, :].astype(np.int32) - PALETTE.astype(np.int32)) ** 2).sum(-1)
    classes = distance.argmin(-1)
    classes[images.max(-1) == 0] = -1
    return classes


def spec_text(cpu, decode="{random_resized_crop: {size: 48, scale: [0.4, 1.0]}}",
              seed=0, mask_options="{num_classes: 4}", device="{ops: [horizontal_flip]}") -> str:
    return textwrap.dedent(f"""\
        version: 1
        seed: {seed}
        splits:
          train:
            image:
              decode: {decode}
              cpu: [{", ".join(cpu)}]
              device: {device}
            targets: {{mask: {mask_options}}}
            loader: {{batch_size: 4, order: sequential, drop_last: false, num_workers: 1}}
        """).replace("device: {ops:", "device: {dtype: uint8, ops:")


def run_jit_steps(steps, batch, indices):
    """A plan's per-sample steps (decoder and transfer left out) on a numpy batch."""
    for step in steps:
        if step.stage == "cpu":
            batch = step.op.apply(batch, indices)
    return batch


@settings(max_examples=15, deadline=None)
@given(ops=st.lists(st.sampled_from(GEOMETRIC), min_size=1, max_size=4),
       seed=st.integers(0, 2 ** 32), shape=st.sampled_from([(48, 64), (64, 48), (37, 53)]))
def test_random_geometric_specs_keep_colour_regions_and_mask_regions_together(ops, seed, shape):
    compiled = compile_spec(load_spec(spec_text(ops, seed=seed)), device="cpu")
    masks = np.stack([label_map(*shape, seed + i) for i in range(4)])
    images = PALETTE[masks]
    indices = np.arange(10, 14, dtype=np.int64)
    images_out = run_jit_steps(compiled.plan.steps, images, indices)
    masks_out = run_jit_steps(compiled.plan.targets["mask"], masks[..., None], indices)[..., 0]
    expected = np.where(masks_out == 255, -1, masks_out.astype(np.int64))  # uncovered
    agree = (classes_of(images_out) == expected).mean()
    assert agree >= 0.999, f"{ops}: {agree:.5f}"


def write_coloured(path, masks, field_order=("image", "mask")):
    """A .beton of ``masks`` and images that show each class in its PALETTE colour."""
    return write_segmentation_beton(path, [PALETTE[m % 4] for m in masks], masks, field_order)


@pytest.fixture(scope="module")
def segmentation_beton(tmp_path_factory):
    masks = [label_map(60 + i % 5, 80 - i % 7, i) for i in range(12)]
    return write_coloured(tmp_path_factory.mktemp("seg") / "seg.beton", masks)


def epoch(compiled, beton, **overrides):
    images, masks = [], []
    for image, mask in compiled.loader(beton, **overrides):
        images.append(image.permute(0, 2, 3, 1).numpy().copy())
        masks.append(mask.numpy().copy())
    return np.concatenate(images), np.concatenate(masks)


def test_a_loader_cuts_the_mask_from_the_images_crop_box(segmentation_beton):
    """Pixels whose colour is exactly a class colour (not blended by the image's area
    resize at a region's edge) carry that class in the mask."""
    compiled = compile_spec(load_spec(spec_text(["rotate: {degrees: 20}"])), device="cpu")
    images, masks = epoch(compiled, segmentation_beton)
    assert images.shape == (12, 48, 48, 3) and masks.shape == (12, 48, 48)
    assert masks.dtype == np.uint8
    exact = (images[..., None, :] == PALETTE).all(-1)  # (N, H, W, classes)
    pure = exact.any(-1) & (masks != 255)
    assert pure.mean() > 0.7
    assert (exact.argmax(-1) == masks)[pure].mean() >= 0.999


def test_masks_are_reproducible_whatever_the_workers_or_batch_size(segmentation_beton):
    text = spec_text(["trivial_augment_wide", "rotate: {degrees: 30, p: 0.5}"])
    first = epoch(compile_spec(load_spec(text), device="cpu"), segmentation_beton)
    again = epoch(compile_spec(load_spec(text), device="cpu"), segmentation_beton,
                  batch_size=5, num_workers=2)
    assert np.array_equal(first[1], again[1]) and np.array_equal(first[0], again[0])
    other = compile_spec(load_spec(text), device="cpu")
    other.set_epoch(1)
    assert not np.array_equal(first[1], epoch(other, segmentation_beton)[1])


def test_uint16_masks_come_out_as_int32_with_their_ids(tmp_path):
    masks = [(label_map(40, 40, i).astype(np.uint16) * 1000) for i in range(4)]
    beton = write_coloured(tmp_path / "wide.beton", masks)
    text = spec_text(["vertical_flip"], decode="decode", device="{ops: []}",
                     mask_options="{ignore_index: 65535}")
    _, out = epoch(compile_spec(load_spec(text), device="cpu"), beton)
    assert out.dtype == np.int32
    assert np.array_equal(out, np.stack(masks)[:, ::-1, :].astype(np.int32))


def test_batches_keep_image_then_mask_whatever_the_files_field_order(tmp_path):
    masks = [label_map(40, 40, i) for i in range(4)]
    beton = write_coloured(tmp_path / "swapped.beton", masks, ("mask", "image"))
    text = spec_text([], decode="decode", device="{ops: []}")
    images, out = epoch(compile_spec(load_spec(text), device="cpu"), beton)
    assert images.shape == (4, 40, 40, 3) and np.array_equal(out, np.stack(masks))


def test_masks_follow_the_image_decoders_size_under_progressive_resizing(segmentation_beton):
    compiled = compile_spec(load_spec(spec_text([])), device="cpu")
    compiled.decoder.op.set_output_size(40)  # what the DataModule does between epochs
    images, masks = epoch(compiled, segmentation_beton)
    assert images.shape[1:3] == masks.shape[1:] == (40, 40)
