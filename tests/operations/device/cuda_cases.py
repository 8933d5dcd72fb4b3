"""Every CUDA check of the device stage, as plain functions that raise AssertionError: no
pytest, no hypothesis, no FFCV. ``test_cuda.py`` runs them under pytest; on a GPU node that
has only torch, cupy, numba and Lightning, ``scripts/gpu_check.sh`` runs them directly.

``CASES`` maps a name to ``(needs, check)``; ``skip_reason(needs)`` says why a case cannot
run here (None when it can). References are the CPU paths (torch or Numba), which the CPU
suite checks against numpy and the CPU ops.
"""
from typing import Callable, Dict, Optional, Tuple
from unittest import mock

import torch

from operations import EpochClock
from operations.device import cuda_kernel, mix
from operations.cpu.erasing import RandomErasingOnDevice
from operations.device.mix import Cutmix, Mixup, MixupCutmix
from operations.device.normalize import NormalizeFlip, lookup_table, normalize_flip_torch

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


def skip_reason(needs: Tuple[str, ...]) -> Optional[str]:
    """Why a case needing ``needs`` ("cuda", "cupy", "two_gpus") cannot run here, or None."""
    if "cuda" in needs and not torch.cuda.is_available():
        return "needs CUDA (torch.cuda.is_available() is False)"
    if "cupy" in needs and not cuda_kernel.available():
        return "needs cupy (pip install pureffcv[gpu] or [gpu-cuda13])"
    if "two_gpus" in needs and torch.cuda.device_count() < 2:
        return f"needs two GPUs ({torch.cuda.device_count()} here)"
    return None


def last_gpu() -> torch.device:
    return torch.device(f"cuda:{torch.cuda.device_count() - 1}")


def random_batch(device, b=7, h=33, w=45) -> torch.Tensor:
    """A uint8 (b, 3, h, w) channels_last batch of uniform noise, the same on every device."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=generator)
    return images.to(device).permute(0, 3, 1, 2)


def bound(op, position=1):
    op.bind(EpochClock(5, 2), position)
    return op


def run_kernel(images, dtype, flips):
    """The cupy kernel's output on ``images``' device and the torch path's on the CPU."""
    b, c, h, w = images.shape
    out = torch.full((b, h, w, c), float("nan"), dtype=dtype, device=images.device)
    out = out.permute(0, 3, 1, 2)
    table = lookup_table((123.7, 116.3, 103.5), (58.4, 57.1, 57.4), dtype)
    cuda_kernel.normalize_flip(images, out, table.to(images.device), flips)
    torch.cuda.synchronize(images.device)
    expected = torch.empty_like(out.cpu())
    normalize_flip_torch(images.cpu(), expected, table, None if flips is None else flips.cpu())
    return out, expected


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.cpu(), b.cpu()
    return a.dtype == b.dtype and torch.equal(a.view(BITS.get(a.dtype, a.dtype)),
                                              b.view(BITS.get(b.dtype, b.dtype)))


def kernel_equals_the_torch_path():
    images = random_batch("cuda")
    flips = torch.tensor([True, False, True, True, False, False, True])
    for dtype in DTYPES:
        for mask in (flips, None):
            out, expected = run_kernel(images, dtype, mask)
            assert out.is_contiguous(memory_format=torch.channels_last), dtype
            assert same_bits(out, expected), (dtype, mask is None)


def kernel_runs_on_torchs_current_stream():
    images = random_batch("cuda", b=64, h=224, w=224)
    stream = torch.cuda.Stream()
    op = bound(NormalizeFlip(dtype="float16"))
    with torch.cuda.stream(stream):
        out = op.apply(images)
        expected = op.apply(images.cpu())  # the Numba path
    stream.synchronize()
    assert torch.equal(out.cpu(), expected)


def kernel_runs_on_the_tensors_device_not_cuda0():
    images = random_batch(last_gpu())
    with torch.cuda.device(0):  # the current device is cuda:0; the data is elsewhere
        out, expected = run_kernel(images, torch.float16, torch.ones(7, dtype=torch.bool))
    assert out.device == last_gpu()
    assert torch.equal(out.cpu(), expected)
    assert torch.isfinite(out.float()).all()


def fused_normalize_flip_equals_the_cpu_op():
    """The fused op on CUDA (cupy's kernel, or torch's path without cupy) against its Numba
    path on the CPU: the same flips and the same bits, for every float dtype."""
    images = random_batch("cuda", b=16, h=40, w=56)
    for dtype in ("float16", "bfloat16", "float32"):
        op = bound(NormalizeFlip(dtype=dtype, p=0.5))
        assert same_bits(op.apply(images), op.apply(images.cpu())), dtype


def device_erasing_equals_the_cpu_bytes():
    """device_random_erasing on CUDA against the same op on the CPU: uint8 bytes equal for
    constant and mean fills; random noise within one level (torch's float64 maths on a GPU
    may differ in the last bit, which can move a rounding); float32 with a constant equal."""
    images = random_batch("cuda", b=24, h=48, w=40)
    for value in ("zero", "mean", 100, "random"):
        op = bound(RandomErasingOnDevice(p=0.9, value=value, count=2))
        gpu, cpu = op.apply(images).cpu(), op.apply(images.cpu())
        assert gpu.is_contiguous(memory_format=torch.channels_last)
        if value == "random":
            differ = (gpu.int() - cpu.int()).abs()
            assert differ.max() <= 1 and (differ > 0).float().mean() < 1e-3, value
        else:
            assert torch.equal(gpu, cpu), value
        assert not torch.equal(gpu, images.cpu()), value  # p=0.9: something was erased
    floats = images.float().contiguous(memory_format=torch.channels_last) / 255
    op = bound(RandomErasingOnDevice(p=0.9, value="zero"))
    assert same_bits(op.apply(floats), op.apply(floats.cpu()))


def mixing_all_pairs_at_once_equals_pair_by_pair():
    """mixup and cutmix on CUDA mix all pairs at once; the CPU's way (one pair at a time) on
    the same GPU gives the same bits, and the ops' images and targets equal the CPU ops'
    (cutmix exactly; mixup to float rounding: a GPU lerp may fuse a multiply-add)."""
    for dtype in (torch.float16, torch.float32):
        for size in (1, 2, 9, 16):
            generator = torch.Generator().manual_seed(size)
            images = torch.rand(size, 3, 8, 12, generator=generator).to(dtype)
            images = images.contiguous(memory_format=torch.channels_last).cuda()
            results = {}
            for at_once in (False, True):
                with mock.patch.object(mix, "all_pairs_at_once", lambda _images: at_once):
                    blended, swapped = images.clone(), images.clone()
                    mix.mixup_in_place(blended, 0.37)
                    mix.swap_with_partners(swapped[..., 2:7, 3:11])
                results[at_once] = blended, swapped
            assert all(same_bits(a, b) for a, b in zip(results[False], results[True])), (dtype, size)
            assert torch.equal(results[True][1][..., 2:7, 3:11], images.flip(0)[..., 2:7, 3:11])
    images = torch.rand(12, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(12)
    for make in (lambda: Mixup(num_classes=12), lambda: Cutmix(num_classes=12),
                 lambda: MixupCutmix(num_classes=12)):
        gpu_op, cpu_op = bound(make(), 4), bound(make(), 4)
        for _ in range(4):  # four batches: new draws each, the same on both devices
            gpu_images, gpu_targets = gpu_op(images.cuda(), labels.cuda())
            cpu_images, cpu_targets = cpu_op(images.clone(), labels)
            assert gpu_images.device.type == "cuda" and gpu_targets.device.type == "cuda"
            assert torch.allclose(gpu_targets.cpu(), cpu_targets, atol=1e-6, rtol=0)
            assert torch.allclose(gpu_images.cpu(), cpu_images, atol=1e-6, rtol=1e-6)
            if isinstance(gpu_op, Cutmix):
                assert torch.equal(gpu_images.cpu(), cpu_images)


def device_ops_run_on_the_tensors_device():
    """Every device op on the last GPU while cuda:0 is current (cuda:N under DDP): outputs
    on the input's device, equal to the CPU's."""
    device = last_gpu()
    images = random_batch(device, b=8, h=24, w=32)
    floats = (images.float() / 255).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(8)
    with torch.cuda.device(0):
        fused = bound(NormalizeFlip(dtype="float16"))
        erasing = bound(RandomErasingOnDevice(p=0.9, value="mean"))
        gpu_cutmix, cpu_cutmix = bound(Cutmix(num_classes=8)), bound(Cutmix(num_classes=8))
        outputs = [(fused.apply(images), fused.apply(images.cpu())),
                   (erasing.apply(images), erasing.apply(images.cpu())),
                   (gpu_cutmix(floats.clone(), labels.to(device))[0],
                    cpu_cutmix(floats.cpu(), labels)[0])]
        torch.cuda.synchronize(device)
    for gpu, cpu in outputs:
        assert gpu.device == device
        assert same_bits(gpu, cpu)


CASES: Dict[str, Tuple[Tuple[str, ...], Callable[[], None]]] = {
    "kernel_equals_the_torch_path": (("cuda", "cupy"), kernel_equals_the_torch_path),
    "kernel_runs_on_torchs_current_stream": (("cuda", "cupy"),
                                             kernel_runs_on_torchs_current_stream),
    "kernel_runs_on_the_tensors_device_not_cuda0": (("cuda", "cupy", "two_gpus"),
                                                    kernel_runs_on_the_tensors_device_not_cuda0),
    "fused_normalize_flip_equals_the_cpu_op": (("cuda",), fused_normalize_flip_equals_the_cpu_op),
    "device_erasing_equals_the_cpu_bytes": (("cuda",), device_erasing_equals_the_cpu_bytes),
    "mixing_all_pairs_at_once_equals_pair_by_pair": (
        ("cuda",), mixing_all_pairs_at_once_equals_pair_by_pair),
    "device_ops_run_on_the_tensors_device": (("cuda",), device_ops_run_on_the_tensors_device),
}
