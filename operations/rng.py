"""Keyed, counter-based randomness: every draw is a pure function of
(seed, epoch, op position, sample index, draw number).

No generator state exists anywhere, so per-sample results do not depend on thread count,
worker count, batch size or order, and Python can seed everything. (Batch ops such as mixup
key their draws by the batch's number in the epoch instead, so they do depend on batch size
and order.) The mixer is splitmix64's finalizer;
the device stage mirrors these functions bit for bit in torch (``operations.device.rng``).
"""
import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53

#: Draw number reserved for an op's probability gate (``p``); kernels use 0, 1, 2, ...
GATE_DRAW = 0x7FFFFFFF


@njit(inline='always')
def mix64(z):
    """splitmix64 finalizer: a bijective avalanche of one uint64."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline='always')
def derive(key, value):
    """A new key from a key and a non-negative integer (epoch, position, sample index)."""
    return mix64(np.uint64(key) ^ mix64(np.uint64(value) + GOLDEN))


@njit(inline='always')
def stream_key(seed, epoch, position):
    """The key of one op (``position`` in its pipeline) for one epoch."""
    return derive(derive(mix64(np.uint64(seed) + GOLDEN), epoch), position)


@njit(inline='always')
def sample_key(stream, index):
    """The key of one sample (its index in the data set) within an op's stream."""
    return derive(stream, index)


@njit(inline='always')
def uniform(key, draw):
    """Draw number ``draw`` of ``key``: a float64 uniform on [0, 1)."""
    bits = mix64(np.uint64(key) + (np.uint64(draw) + np.uint64(1)) * GOLDEN)
    return np.float64(bits >> _S11) * _TO_UNIT


@njit(inline='always')
def uniform_range(key, draw, low, high):
    """A float64 uniform on [low, high)."""
    return low + (high - low) * uniform(key, draw)


@njit(inline='always')
def randint(key, draw, low, high):
    """An int64 uniform on [low, high) (bias below 2**-40 for ranges under 2**13)."""
    return low + np.int64(uniform(key, draw) * (high - low))


@njit(inline='always')
def normal(key, draw):
    """A standard normal (Box-Muller); consumes draw numbers 2*draw and 2*draw + 1."""
    u1 = 1.0 - uniform(key, 2 * draw)
    u2 = uniform(key, 2 * draw + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@njit(inline='always')
def bernoulli(key, draw, p):
    """True with probability ``p``."""
    return uniform(key, draw) < p


class EpochClock:
    """The seed and current epoch of one compiled pipeline: its ops' per-batch code reads
    them once per batch (``batch_loop.epoch_stream``). Set the epoch before ``iter(loader)``:
    FFCV prefetches at ``iter``."""

    def __init__(self, seed: int = 0, epoch: int = 0):
        self.seed = int(seed)
        self.epoch = int(epoch)
