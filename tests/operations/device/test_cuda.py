"""The cupy kernel on a GPU: equal to the torch path bit for bit, on the tensor's own device
and on torch's current stream."""
import numpy as np
import pytest
import torch

from operations.device import cuda_kernel
from operations.device.normalize import NormalizeFlip, lookup_table, normalize_flip_torch

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(not cuda_kernel.available(), reason="needs cupy (pip install pureffcv[gpu])"),
]
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def random_batch(device, b=7, h=33, w=45):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=generator)
    return images.to(device).permute(0, 3, 1, 2)


def run_kernel(images, dtype, flips):
    b, c, h, w = images.shape
    out = torch.full((b, h, w, c), float("nan"), dtype=dtype, device=images.device).permute(0, 3, 1, 2)
    table = lookup_table((123.7, 116.3, 103.5), (58.4, 57.1, 57.4), dtype)
    cuda_kernel.normalize_flip(images, out, table.to(images.device), flips)
    torch.cuda.synchronize(images.device)
    expected = torch.empty_like(out.cpu())
    normalize_flip_torch(images.cpu(), expected, table, None if flips is None else flips.cpu())
    return out, expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_equals_the_torch_path(dtype):
    images = random_batch("cuda")
    flips = torch.tensor([True, False, True, True, False, False, True])
    for mask in (flips, None):
        out, expected = run_kernel(images, dtype, mask)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out.cpu().view(torch.int16 if dtype != torch.float32 else torch.int32),
                           expected.view(torch.int16 if dtype != torch.float32 else torch.int32))


def test_kernel_runs_on_torchs_current_stream():
    images = random_batch("cuda", b=64, h=224, w=224)
    stream = torch.cuda.Stream()
    op = NormalizeFlip(dtype="float16")
    with torch.cuda.stream(stream):
        out = op.apply(images)
        expected = op.apply(images.cpu())  # the Numba path
    stream.synchronize()
    assert torch.equal(out.cpu(), expected)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_kernel_runs_on_the_tensors_device_not_cuda0():
    last = torch.device(f"cuda:{torch.cuda.device_count() - 1}")
    images = random_batch(last)
    with torch.cuda.device(0):  # the current device is cuda:0; the data is elsewhere
        out, expected = run_kernel(images, torch.float16, torch.ones(7, dtype=torch.bool))
    assert out.device == last
    assert torch.equal(out.cpu(), expected)
    assert np.isfinite(out.float().cpu().numpy()).all()
