"""The keyed draws of ``operations.rng`` for Python callers, bit for bit, in plain ints and
floats: the per-batch decisions (a batch op's key, mixup's lambda, cutmix's box) are a few
draws per batch, and calling the njit originals from Python compiles each of them in every
process (~0.6 s of a first batch), none of it cacheable. ``tests/operations/test_rng.py``
holds them equal to the originals.
"""
import math

_BITS64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_TO_UNIT = 2.0 ** -53


def mix64(z: int) -> int:
    """``rng.mix64``: splitmix64's finalizer on the 64 bits of ``z``."""
    z &= _BITS64
    z = ((z ^ (z >> 30)) * _M1) & _BITS64
    z = ((z ^ (z >> 27)) * _M2) & _BITS64
    return z ^ (z >> 31)


def derive(key: int, value: int) -> int:
    """``rng.derive``."""
    return mix64(int(key) ^ mix64(int(value) + GOLDEN))


def stream_key(seed: int, epoch: int, position: int) -> int:
    """``rng.stream_key``."""
    return derive(derive(mix64(int(seed) + GOLDEN), epoch), position)


def sample_key(stream: int, index: int) -> int:
    """``rng.sample_key``."""
    return derive(stream, index)


def uniform(key: int, draw: int) -> float:
    """``rng.uniform``: a float in [0, 1)."""
    bits = mix64(int(key) + ((int(draw) + 1) & _BITS64) * GOLDEN)
    return float(bits >> 11) * _TO_UNIT


def randint(key: int, draw: int, low: int, high: int) -> int:
    """``rng.randint``: an int in [low, high)."""
    return low + int(uniform(key, draw) * (high - low))


def normal(key: int, draw: int) -> float:
    """``rng.normal`` (Box-Muller, draws 2*draw and 2*draw + 1)."""
    u1 = 1.0 - uniform(key, 2 * draw)
    u2 = uniform(key, 2 * draw + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
