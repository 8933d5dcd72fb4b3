"""normalize's CPU backend (once cpu_normalize, still its deprecated alias) against a float64
numpy reference; its type rules."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from operations import ImageType, OpTypeError, get_op
from operations.normalization import MEAN, STD
from tests.conftest import structured_batch


def reference(images, mean, std):
    return ((images.astype(np.float64) - np.array(mean)) / np.array(std)).astype(np.float32)


@pytest.mark.parametrize("mean, std", [("imagenet", "imagenet"), ("cifar10", "cifar10"),
                                       ((10.0, 128.0, 250.0), (1.0, 64.0, 0.5))])
def test_matches_float64_reference(mean, std):
    images = structured_batch(3, 6, 7)
    out = get_op("cpu_normalize")(mean=mean, std=std).apply(images)
    assert out.dtype == np.float32
    expected = reference(images, MEAN.get(mean, mean) if isinstance(mean, str) else mean,
                         STD.get(std, std) if isinstance(std, str) else std)
    assert np.array_equal(out, expected)


def test_output_type_changes_dtype_and_refuses_other_inputs():
    op = get_op("normalize", "cpu")()
    assert op.output_type(ImageType(8, 8)) == ImageType(8, 8, dtype="float32")
    with pytest.raises(OpTypeError, match=r"^'normalize' expects uint8 images but gets "
                                          r"float32; move it before"):
        op.output_type(ImageType(8, 8, dtype="float32"))
    assert get_op("cpu_normalize")(dtype="float16").output_type(ImageType(8, 8)) == \
        ImageType(8, 8, dtype="float16")


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_float16_bits_round_like_numpy(value):
    from operations.cpu.normalize import float16_bits

    bits = np.uint16(float16_bits(value))
    if np.isnan(value):  # the documented contract: a quiet NaN of the same sign (no payload)
        assert bits & 0x7FFF == 0x7E00 and (bits >> 15) == np.signbit(value)
        return
    with np.errstate(over="ignore"):
        expected = np.array(value).astype(np.float16).view(np.uint16)
    assert bits == expected


def test_float16_output_is_bits_in_the_jit_stage_and_float16_after_the_boundary(small_beton):
    from compiler import compile_spec
    from tests.conftest import structured_image

    images = structured_batch(3, 6, 7)
    out = get_op("cpu_normalize")(dtype="float16").apply(images)
    assert out.dtype == np.uint16  # Numba has no float16: the stage carries the bit patterns
    expected = ((images - np.array(MEAN["imagenet"])) / np.array(STD["imagenet"])).astype(np.float16)
    assert np.array_equal(out.view(np.float16), expected)

    spec = """version: 1
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      cpu: [{cpu_normalize: {dtype: float16}}]
    loader: {batch_size: 8, order: sequential, num_workers: 1, drop_last: false}
"""
    compiled = compile_spec(spec, device="cpu")
    assert [s.name for s in compiled.plan.steps][1:4] == ["cpu_normalize", "to_tensor",
                                                         "float16_from_bits"]
    batch, labels = next(iter(compiled.loader(small_beton)))
    assert batch.dtype == torch.float16 and batch.shape == (8, 3, 32, 32)
    for i in range(8):  # small_beton: 32x40 images, center crop 32x32 at x offset 4
        crop = structured_image(32, 40, seed=i)[:, 4:36]
        expected = ((crop - np.array(MEAN["imagenet"])) / np.array(STD["imagenet"])).astype(np.float16)
        assert np.array_equal(batch[i].permute(1, 2, 0).numpy(), expected)


def test_has_no_probability():
    assert list(get_op("cpu_normalize").parameters()) == ["mean", "std", "dtype"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 4]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_lookup_pixels_mirrors_exactly_like_numpy(height, width, channels, mirror, seed):
    """The JIT stage's normalize (+ flip) loop: ``table[c, src[y, x', c]]`` with x' mirrored
    when asked, any shape and channel count (RGB has its own unrolled loops)."""
    from operations.cpu.normalize import lookup_pixels

    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    table = rng.standard_normal((channels, 256)).astype(np.float32)
    dst = np.empty(src.shape, np.float32)
    lookup_pixels(src, dst, table, mirror)
    source = src[:, ::-1] if mirror else src
    assert np.array_equal(dst, table[np.arange(channels), source])
