"""The fused normalize+flip as one cupy kernel (CUDA only; imported lazily).

One thread per output pixel in a grid-stride loop: read C bytes (from the mirrored column
when the sample flips), look each up in the per-channel table held in shared memory, write C
values. The table holds output *bits* (uint16 for float16/bfloat16, uint32 for float32), so the
kernel never converts floats and bfloat16 needs no special case. It is compiled once per
(bits, C, H, W) — constant sizes turn the index divisions into multiplications — and launched
inside ``cupy.cuda.Device(tensor's index)`` on torch's current stream of that device: never
on cuda:0 by accident (FFCV's NormalizeImage bug), never racing FFCV's per-batch streams.
32-bit indexing: the caller keeps batches under 2**31 elements.
"""
import functools

import numpy as np
import torch

_THREADS = 256
_BLOCKS_PER_SM = 16

_SOURCE = r"""
extern "C" __global__ void normalize_flip(
        const unsigned char* __restrict__ src, {T}* __restrict__ dst,
        const {T}* __restrict__ table, const unsigned char* __restrict__ flips,
        const unsigned int pixels) {{
    __shared__ {T} lut[256 * {C}];
    for (unsigned int i = threadIdx.x; i < 256u * {C}u; i += blockDim.x) lut[i] = table[i];
    __syncthreads();
    for (unsigned int p = blockIdx.x * blockDim.x + threadIdx.x; p < pixels;
         p += gridDim.x * blockDim.x) {{
        const unsigned int x = p % {W}u;
        const unsigned int q = flips[p / ({H}u * {W}u)] ? p + ({W}u - 1u - 2u * x) : p;
        const unsigned char* s = src + q * {C}u;
        {T}* d = dst + p * {C}u;
#pragma unroll
        for (unsigned int c = 0; c < {C}u; ++c) d[c] = lut[s[c] * {C}u + c];
    }}
}}
"""

_BITS = {2: ("unsigned short", torch.int16, np.uint16), 4: ("unsigned int", torch.int32, np.uint32)}


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """True when cupy imports and sees a GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or a cupy built for another CUDA: use the torch path
        return False


@functools.lru_cache(maxsize=None)
def _kernel(width: int, channels: int, height: int, row: int):
    import cupy

    ctype = _BITS[width][0]
    return cupy.RawKernel(_SOURCE.format(T=ctype, C=channels, H=height, W=row), "normalize_flip")


def _as_cupy(tensor: torch.Tensor, dtype):
    """A flat cupy view of a contiguous CUDA tensor's memory (no copy, no stream sync)."""
    import cupy

    size = tensor.numel() * tensor.element_size()
    memory = cupy.cuda.UnownedMemory(tensor.data_ptr(), size, tensor, tensor.device.index)
    return cupy.ndarray((size // np.dtype(dtype).itemsize,), dtype,
                        cupy.cuda.MemoryPointer(memory, 0))


def normalize_flip(images: torch.Tensor, out: torch.Tensor, table: torch.Tensor, flips) -> None:
    """Launch the kernel: images uint8 and out (B, C, H, W) channels_last on one CUDA device,
    table (256, C) of out's dtype on that device, flips a (B,) bool tensor or None."""
    import cupy

    b, c, h, w = images.shape
    device = images.device
    if flips is None:
        flips = torch.zeros(b, dtype=torch.uint8, device=device)
    flips = flips.to(device=device, dtype=torch.uint8)
    width = out.element_size()
    _, bits_dtype, np_dtype = _BITS[width]
    src = images.permute(0, 2, 3, 1)
    dst = out.permute(0, 2, 3, 1).view(bits_dtype)
    pixels = b * h * w
    with cupy.cuda.Device(device.index):
        blocks = min(-(-pixels // _THREADS),
                     cupy.cuda.Device().attributes["MultiProcessorCount"] * _BLOCKS_PER_SM)
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
        with stream:
            _kernel(width, c, h, w)((blocks,), (_THREADS,), (
                _as_cupy(src, np.uint8), _as_cupy(dst, np_dtype),
                _as_cupy(table.view(bits_dtype), np_dtype), _as_cupy(flips, np.uint8),
                np.uint32(pixels)))
