"""device_random_erasing: the CPU random_erasing's boxes and bytes, on uint8 and float batches."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from operations import EpochClock, get_op
from operations.cpu.erasing import erasing_box
from operations.device import rng
from operations.cpu.erasing import RandomErasingOnDevice, erasing_boxes
from operations.ffcv_api import State
from tests.conftest import structured_batch

INDICES = np.arange(200, 216)


def bound(op, seed=5, epoch=2, position=3):
    op.bind(EpochClock(seed, epoch), position)
    return op


@pytest.mark.parametrize("value, count", [("zero", 1), ("mean", 2), ("random", 2), (77, 1)])
def test_same_bytes_as_the_cpu_op(value, count):
    images = structured_batch(16, 20, 24, seed=7)
    cpu = bound(get_op("random_erasing")(p=0.7, value=value, count=count)).apply(images, INDICES)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    device = bound(RandomErasingOnDevice(p=0.7, value=value, count=count)).apply(batch, INDICES)
    assert device.is_contiguous(memory_format=torch.channels_last)
    assert 4 <= (cpu != images).any(axis=(1, 2, 3)).sum() <= 15  # some erased, some not
    assert np.array_equal(device.permute(0, 2, 3, 1).numpy(), cpu)


@settings(max_examples=60, deadline=None)
@given(key=st.integers(0, 2 ** 64 - 1), height=st.integers(1, 40), width=st.integers(1, 40),
       scale=st.tuples(st.floats(0.01, 0.5), st.floats(0.5, 1.0)),
       ratio=st.tuples(st.floats(0.1, 1.0), st.floats(1.0, 10.0)))
def test_boxes_equal_the_cpu_boxes_and_fit(key, height, width, scale, ratio):
    y, x, h, w = erasing_boxes(torch.tensor([rng.as_int64(key)]), 1, height, width, scale, ratio)
    box = (int(y), int(x), int(h), int(w))
    assert box == tuple(int(v) for v in erasing_box(np.uint64(key), 1, height, width, scale, ratio))
    assert 0 <= box[0] and box[0] + box[2] <= height and 0 <= box[1] and box[1] + box[3] <= width


def test_float_batches_erase_the_same_pixels_in_place():
    images = torch.from_numpy(np.maximum(structured_batch(16, 20, 24, seed=7), 1)).permute(0, 3, 1, 2)
    as_uint8 = bound(RandomErasingOnDevice(p=0.7)).apply(images, INDICES)
    floats = images.float()
    op = bound(RandomErasingOnDevice(p=0.7))
    state = State(jit_mode=False, device=torch.device("cpu"), shape=(3, 20, 24), dtype=torch.float32)
    assert op.declare_state_and_memory(state)[1] is None  # no output buffer
    out = op.generate_code()(floats, None, INDICES)
    assert out is floats  # the Loader's batch, erased where it is
    assert (as_uint8 == 0).any()
    assert torch.equal(out == 0, as_uint8 == 0)
    assert torch.equal(out[out != 0], images.float()[out != 0])


def test_apply_leaves_its_input_alone():
    images = torch.from_numpy(structured_batch(16, 20, 24, seed=7)).permute(0, 3, 1, 2)
    before = images.clone()
    out = bound(RandomErasingOnDevice(p=1.0, value="mean", count=3)).apply(images, INDICES)
    assert torch.equal(images, before) and not torch.equal(out, before)


def test_random_value_on_floats_is_standard_normal_noise_inside_the_box():
    floats = torch.full((8, 3, 48, 48), 7.0).contiguous(memory_format=torch.channels_last)
    out = bound(RandomErasingOnDevice(p=1.0, scale=(0.3, 0.3), value="random")).apply(floats)
    noise = out[out != 7.0]
    assert noise.numel() > 8 * 3 * 0.25 * 48 * 48
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05


def test_mean_value_on_floats_is_the_unrounded_channel_mean():
    floats = torch.rand(4, 3, 10, 12).contiguous(memory_format=torch.channels_last)
    out = bound(RandomErasingOnDevice(p=1.0, value="mean")).apply(floats)
    means = floats.double().mean((2, 3), keepdim=True).float().expand_as(floats)
    changed = out != floats
    assert changed.any() and torch.allclose(out[changed], means[changed], rtol=1e-6, atol=0)
