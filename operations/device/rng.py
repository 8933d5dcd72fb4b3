"""The keyed hash of ``operations.rng`` in torch, bit for bit, vectorised over samples.

torch has no uint64, so keys are int64 tensors holding the same 64 bits: addition and
multiplication wrap identically in two's complement, and logical right shifts are arithmetic
shifts with the sign-extended bits masked off. Works on any device that has int64 tensors.
"""
import math
from typing import Union

import torch

_BITS64 = (1 << 64) - 1


def as_int64(value: int) -> int:
    """The int64 holding the 64 bits of a non-negative Python int (mod 2**64)."""
    value &= _BITS64
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN = as_int64(0x9E3779B97F4A7C15)
_M1 = as_int64(0xBF58476D1CE4E5B9)
_M2 = as_int64(0x94D049BB133111EB)
_TO_UNIT = 2.0 ** -53

Ints = Union[int, torch.Tensor]


def _shr(z: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of int64 bits."""
    return (z >> shift) & ((1 << (64 - shift)) - 1)


def _tensor(value: Ints) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(torch.int64)
    return torch.tensor(as_int64(int(value)), dtype=torch.int64)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer on int64 bits."""
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def derive(keys: Ints, values: Ints) -> torch.Tensor:
    """``operations.rng.derive`` elementwise (broadcasting)."""
    return mix64(_tensor(keys) ^ mix64(_tensor(values) + GOLDEN))


def stream_key(seed: int, epoch: int, position: int) -> int:
    """The key of one op for one epoch, as the int64 holding its 64 bits."""
    return int(derive(derive(mix64(_tensor(seed) + GOLDEN), epoch), position))


def sample_keys(stream: int, indices: torch.Tensor) -> torch.Tensor:
    """The key of each sample (data-set index) within an op's stream; same device as indices."""
    return derive(torch.tensor(as_int64(stream), dtype=torch.int64, device=indices.device),
                  indices.to(torch.int64))


def uniform(keys: torch.Tensor, draw: Ints) -> torch.Tensor:
    """Draw number ``draw`` (an int or an int64 tensor, broadcast) of each key: float64 in
    [0, 1). Equals ``operations.rng.uniform(key, draw)`` exactly."""
    step = (_tensor(draw).to(keys.device) + 1) * GOLDEN
    return _shr(mix64(keys + step), 11).to(torch.float64) * _TO_UNIT


def gate_fires(keys: torch.Tensor, p: float, on_kernel_key: bool, draw: int) -> torch.Tensor:
    """``operations.batch_loop.gate_fires`` for every sample key at once: p >= 1, or draw
    ``draw`` of the sample key (of the kernel key ``derive(key, 1)`` when ``on_kernel_key``)
    below p."""
    if p >= 1.0:
        return torch.ones(keys.shape, dtype=torch.bool, device=keys.device)
    return uniform(derive(keys, 1) if on_kernel_key else keys, draw) < p


def normal(keys: torch.Tensor, draw: Ints) -> torch.Tensor:
    """A standard normal by Box-Muller from draws 2*draw and 2*draw + 1, like
    ``operations.rng.normal`` (equal up to the last bit of torch's log and cos)."""
    draw = _tensor(draw).to(keys.device)
    u1 = 1.0 - uniform(keys, 2 * draw)
    u2 = uniform(keys, 2 * draw + 1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
