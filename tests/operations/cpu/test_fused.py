"""The fusion passes: point maps become one lookup table per channel (byte-identical to the ops
one by one), affine ops one warp by the product of their drawn matrices; how the planner
groups runs, what explain shows, and ``optimize=False``."""
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings, strategies as st
from PIL import Image, ImageOps

from compiler import compile_spec
from operations import EpochClock, get_op
from operations.cpu.fused import FusedAffine, FusedLut
from operations.cpu.warp import affine_warp
from operations.rng import GATE_DRAW, bernoulli, derive, randint, sample_key, stream_key, uniform_range
from tests.conftest import structured_batch, structured_image

CLOCK = EpochClock(seed=5)


def bound(name: str, position: int, clock: EpochClock = CLOCK, **params):
    op = get_op(name)(**params)
    op.bind(clock, position)
    return op


def sequential(ops, images):
    """The reference: each op's own kernel, one after another (what optimize=False runs)."""
    for op in ops:
        images = op.apply(images)
    return images


def images_with_a_flat_channel():
    images = structured_batch(10, 9, 13, seed=3)
    images[0, ..., 1] = 77  # autocontrast/equalize leave a one-value channel alone
    images[1] = images[1] // 16 * 16 + 3  # few distinct values: equalize's coarse steps
    return images


# ------------------------------------------------------------------ point maps

# one instance per op, bound once (each compiles once); positions are their RNG streams
LUT_POOL = [
    bound("brightness", 1, strength=0.6),
    bound("brightness", 2, strength=0.3, p=0.5),  # the authoring layer's gate
    bound("solarize", 3, threshold=96.5, p=0.7),  # kernels with their own gate
    bound("posterize", 4, bits=3, p=0.6),
    bound("invert", 5, p=0.5),
    bound("autocontrast", 6, p=0.8),  # tables from the histograms of their input
    bound("equalize", 7, p=0.8),
]


@settings(max_examples=3, deadline=None)
@given(st.lists(st.sampled_from(range(len(LUT_POOL))), min_size=2, max_size=5, unique=True))
@example([0, 2, 5, 3, 6])  # point maps before and between the histogram ones
@example([6, 4, 5, 1])
def test_fused_point_maps_equal_the_ops_one_by_one_byte_for_byte(order):
    ops = [LUT_POOL[i] for i in order]
    fused = FusedLut(ops)
    images = images_with_a_flat_channel()
    for epoch in (0, 1, 2):
        CLOCK.epoch = epoch
        expected = sequential(ops, images)
        assert np.array_equal(fused.apply(images), expected)
        assert np.array_equal(fused.apply(images[::-1].copy(), np.arange(9, -1, -1)),
                              expected[::-1])  # per sample index, not batch position
    CLOCK.epoch = 0


def test_fused_point_maps_keep_pils_roundings_under_ffcvs_fastmath_compiler():
    """FFCV compiles the batch loop with fastmath, which Numba would hand down to the tables'
    float maths: for this image autocontrast's 253 * (255 / 253) would truncate to 254."""
    image = structured_image(18, 22, seed=0)
    reference = ImageOps.invert(ImageOps.autocontrast(Image.fromarray(image)))
    fused = FusedLut([bound("autocontrast", 1, p=1.0), bound("invert", 2, p=1.0)])
    assert np.array_equal(fused.apply(image[None])[0], np.asarray(reference))


# ------------------------------------------------------------------ affine ops

def hand_matrix(op, height, width, rng):
    """The output-to-input matrix of one part for the kernel key ``rng``, written out from the
    ops' definitions (PIL's ``Image.rotate`` matrix, a mirror, an integer shift) with the
    draws of their docstrings — not from the ops' own matrix functions."""
    name = type(op).op_name
    if name == "horizontal_flip":
        return [[-1.0, 0.0, width], [0.0, 1.0, 0.0]]
    if name == "rotate":
        low, high = -op.params["degrees"], op.params["degrees"]
        theta = -math.radians(uniform_range(rng, 0, low, high))  # PIL: CCW angle, y down
        cx, cy = width / 2, height / 2
        a, b = math.cos(theta), math.sin(theta)
        return [[a, b, cx - a * cx - b * cy], [-b, a, cy + b * cx - a * cy]]
    if name == "pad_crop":
        padding = op.params["padding"]
        dx, dy = randint(rng, 0, -padding, padding + 1), randint(rng, 1, -padding, padding + 1)
        return [[1.0, 0.0, -float(dx)], [0.0, 1.0, -float(dy)]]
    raise AssertionError(name)


def drawn_matrix(op, image_shape, epoch):
    """One part's inverse matrix for each sample, drawn from the RNG contract: the identity
    when its p-gate does not fire."""
    height, width = image_shape
    stream = np.uint64(stream_key(op.clock.seed, epoch, op.position))
    p = op.params.get("p", 1.0)

    def matrix(index):
        key = np.uint64(sample_key(stream, index))
        if p < 1.0 and not bernoulli(key, GATE_DRAW, p):
            return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        return hand_matrix(op, height, width, np.uint64(derive(key, 1)))

    return matrix


def product(outer, inner):
    """outer @ inner as 3x3 affine maps, summed left to right in float64."""
    return [[row[0] * inner[0][0] + row[1] * inner[1][0],
             row[0] * inner[0][1] + row[1] * inner[1][1],
             row[0] * inner[0][2] + row[1] * inner[1][2] + row[2]] for row in outer]


def test_fused_warp_is_one_warp_by_the_product_of_the_drawn_matrices():
    fill = (9, 200, 31)
    parts = [bound("horizontal_flip", 1, p=0.5), bound("rotate", 2, degrees=40, fill=fill),
             bound("pad_crop", 5, padding=3, fill=fill, p=0.7)]
    fused = FusedAffine(parts)
    images = structured_batch(12, 14, 18, seed=1)
    for epoch in (0, 3):
        CLOCK.epoch = epoch
        draws = [drawn_matrix(op, images.shape[1:3], epoch) for op in parts]
        expected = np.empty_like(images)
        for i, image in enumerate(images):
            matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
            for draw in draws:
                matrix = product(matrix, draw(i))
            affine_warp(image, expected[i], np.array(matrix), np.array(fill))
        # float64 products summed in another order may round the last bit differently
        assert (fused.apply(images) != expected).any(axis=-1).mean() < 0.002
        assert not np.array_equal(expected, sequential(parts, images))
    CLOCK.epoch = 0


FILL = (1, 2, 3)
FLIPS = [bound("horizontal_flip", 11, p=0.5), bound("vertical_flip", 12, p=0.5),
         bound("horizontal_flip", 13)]
SHIFTS = [bound("pad_crop", 14, padding=3, fill=FILL, p=0.8),
          bound("translate", 15, max_fraction=0.3, fill=FILL)]


@settings(max_examples=3, deadline=None)
@given(st.permutations(range(len(FLIPS))), st.integers(0, len(FLIPS)),
       st.sampled_from([None, 0, 1]))
@example([0, 1, 2], 1, 1)
def test_flips_and_one_whole_pixel_shift_fuse_exactly(flips, where, shift):
    ops = [FLIPS[i] for i in flips]
    if shift is not None:
        ops.insert(where, SHIFTS[shift])
    images = structured_batch(10, 11, 16, seed=2)
    for epoch in (0, 1):
        CLOCK.epoch = epoch
        assert np.array_equal(FusedAffine(ops).apply(images), sequential(ops, images))
    CLOCK.epoch = 0


def test_shifts_that_cancel_keep_content_the_sequence_fills():
    """The documented deviation: sequential warps lose what a shift moves out of the frame;
    the one warp keeps it. Wherever the two differ, the sequence shows the fill."""
    images = structured_batch(16, 11, 16, seed=2)
    fused, expected = FusedAffine(SHIFTS).apply(images), sequential(SHIFTS, images)
    differs = (fused != expected).any(axis=-1)
    assert differs.any()
    assert (expected[differs] == FILL).all()


def test_a_fused_step_refuses_parts_it_cannot_combine():
    rotate = bound("rotate", 1, degrees=5, fill=0)
    with pytest.raises(ValueError, match=r"^the parts of a fused warp must share one fill, "
                                         r"got \['0', '7'\]$"):
        FusedAffine([rotate, bound("translate", 2, max_fraction=0.1, fill=7)])
    with pytest.raises(ValueError, match=r"^Brightness\(strength=0.1, p=1.0\) cannot be part "
                                         r"of a FusedAffine$"):
        FusedAffine([rotate, bound("brightness", 2, strength=0.1)])
    with pytest.raises(ValueError, match="^the parts of a fused step must share one EpochClock$"):
        FusedAffine([rotate, bound("horizontal_flip", 2, clock=EpochClock(5))])


# ------------------------------------------------------------------ the planner

SPEC = """\
version: 1
seed: 4
splits:
  train:
    image:
      decode: decode
      cpu:
        - horizontal_flip: {p: 0.5}
        - pad_crop: {padding: 2, fill: 5}
        - vertical_flip: {p: 0.5}
        - translate: {max_fraction: 0.1, fill: 6}
        - brightness: {strength: 0.4, p: 0.8}
        - equalize
        - invert
        - contrast: {strength: 0.3}
        - solarize: {threshold: 128}
        - grayscale
        - posterize: {bits: 4}
      device: {dtype: uint8}
    loader: {batch_size: 16, num_workers: 2, order: sequential, drop_last: false}
"""


def test_runs_of_two_or_more_become_one_step_named_after_its_parts():
    compiled = compile_spec(SPEC, device="cpu")
    steps = compiled.cpu_steps
    assert [(s.name, type(s.op).__name__) for s in steps] == [
        ("horizontal_flip+pad_crop+vertical_flip", "FusedAffine"),  # translate's fill differs
        ("translate", "Translate"),
        ("brightness+equalize+invert", "FusedLut"),
        ("contrast", "Contrast"),  # needs the grey mean of all channels: not a point map
        ("solarize", "Solarize"),  # a run of one stays as it is
        ("grayscale", "Grayscale"),
        ("posterize", "Posterize")]
    assert [p.position for p in steps[0].parts] == [1, 2, 3]
    assert [type(op).__name__ for op in steps[2].op.parts] == ["Brightness", "Equalize", "Invert"]
    assert steps[0].op.fill == 5
    assert compiled.pipelines["image"][1:4] == [s.op for s in steps[:3]]
    table = compiled.explain().splitlines()
    assert table[4].split() == ["cpu", "1,2,3", "horizontal_flip+pad_crop+vertical_flip",
                                "FusedAffine", "?x?x3", "uint8", "HWC", "cpu", "jit-parallel",
                                "fused:", "one", "affine", "pass"]
    assert table[6].split()[:4] == ["cpu", "5,6,7", "brightness+equalize+invert", "FusedLut"]


def test_optimize_false_keeps_one_step_per_op():
    text = SPEC.replace("device: {dtype: uint8}", "device: {dtype: float32, ops: [flip, normalize]}")
    compiled = compile_spec(text, device="cpu", optimize=False)
    names = [s.name for s in compiled.plan.steps if s.stage in ("cpu", "device")]
    assert names == ["horizontal_flip", "pad_crop", "vertical_flip", "translate", "brightness",
                     "equalize", "invert", "contrast", "solarize", "grayscale", "posterize",
                     "flip", "normalize"]
    assert [s.position for s in compiled.cpu_steps] == list(range(1, 12))


def test_a_loader_runs_the_fused_steps_as_the_unfused_pipeline(small_beton):
    """Through a real ffcv Loader: the fused pipeline (a flip and a shift: exact;
    point maps: exact) gives the unfused pipeline's bytes at each epoch."""
    start, end = SPEC.index("      cpu:"), SPEC.index("      device:")
    text = SPEC[:start] + """\
      cpu:
        - horizontal_flip: {p: 0.5}
        - pad_crop: {padding: 2, fill: 5}
        - brightness: {strength: 0.4, p: 0.8}
        - equalize
        - invert
""" + SPEC[end:]
    fused, plain = compile_spec(text, device="cpu"), compile_spec(text, device="cpu", optimize=False)
    assert len(fused.cpu_steps) == 2 and len(plain.cpu_steps) == 5
    loaders = fused.loader(small_beton, num_workers=1), plain.loader(small_beton, num_workers=1)
    batches = []
    for epoch in (0, 1):
        fused.set_epoch(epoch)
        plain.set_epoch(epoch)
        ours, theirs = ([x.clone() for x, _ in loader] for loader in loaders)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs)) and len(ours) == 3
        batches.append(torch.cat(ours))
    assert not torch.equal(*batches)


NORMALIZE_SPEC = """\
version: 1
seed: 4
splits:
  train:
    image:
      decode: decode
      cpu: [{posterize: {bits: 7}}]
      device: {dtype: DTYPE, ops: [FLIP normalize]}
    loader: {batch_size: 16, num_workers: 2, order: sequential, drop_last: false}
"""


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_normalize_in_the_jit_stage_gives_the_device_kernels_bits(small_beton, dtype):
    """On the CPU the device normalize+flip runs per image in the JIT stage: through a real
    Loader, bit for bit the batches of the device-stage kernel (optimize=False), channels_last,
    each image flipped or not on its own draw."""
    text = NORMALIZE_SPEC.replace("DTYPE", dtype)
    flipping = text.replace("FLIP", "{flip: {p: 0.5}},")
    jit = compile_spec(flipping, device="cpu")
    device = compile_spec(flipping, device="cpu", optimize=False)
    assert [type(s.op).__name__ for s in jit.cpu_steps] == ["Posterize", "JitNormalizeFlip"]
    assert [s.name for s in device.plan.stage("device")] == ["flip", "normalize"]
    ours, theirs = ([x.clone() for x, _ in c.loader(small_beton, num_workers=2)]
                    for c in (jit, device))
    assert len(ours) == 3 and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert ours[0].dtype == getattr(torch, dtype)
    assert ours[0].is_contiguous(memory_format=torch.channels_last)
    unflipped = compile_spec(text.replace("FLIP", ""), device="cpu")
    plain = torch.cat([x.clone() for x, _ in unflipped.loader(small_beton, num_workers=1)])
    ours = torch.cat(ours)
    flipped = [torch.equal(ours[i], plain[i].flip(-1)) for i in range(len(ours))]
    kept = [torch.equal(ours[i], plain[i]) for i in range(len(ours))]
    assert all(f != k for f, k in zip(flipped, kept))  # each image: mirrored or not
    assert 8 <= sum(flipped) <= 32  # p = 0.5 over 40 images
