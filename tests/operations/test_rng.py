"""Known answers for the keyed hash, in Numba and in its torch and plain-Python mirrors: changing
a constant or a shift in both (which the mirror-equals-reference tests cannot see) fails here;
and the plain-Python mirror equals the Numba functions on random keys.

The reference is splitmix64 (Steele, Lea & Flood 2014; Vigna's splitmix64.c): with state 0 its
outputs are mix64(k * GOLDEN) for k = 1, 2, 3, 4, published as the values below."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from operations import host_rng, rng
from operations.device import rng as torch_rng

#: splitmix64's first four outputs for seed 0
SPLITMIX64_SEED0 = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
U64 = 2 ** 64


def test_mix64_of_golden_is_splitmix64s_first_output():
    assert int(rng.mix64(rng.GOLDEN)) == 0xE220A8397B1DCDAF
    assert int(torch_rng.mix64(torch.tensor(torch_rng.GOLDEN))) % U64 == 0xE220A8397B1DCDAF
    assert host_rng.mix64(host_rng.GOLDEN) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("k", range(4))
def test_mix64_follows_the_splitmix64_sequence(k):
    state = (k + 1) * 0x9E3779B97F4A7C15 % U64
    assert int(rng.mix64(np.uint64(state))) == SPLITMIX64_SEED0[k]
    assert int(torch_rng.mix64(torch.tensor(torch_rng.as_int64(state)))) % U64 == SPLITMIX64_SEED0[k]
    assert host_rng.mix64(state) == SPLITMIX64_SEED0[k]


@pytest.mark.parametrize("draw", range(4))
def test_uniform_of_key_zero_is_the_top_53_bits_of_splitmix64(draw):
    """uniform(0, d) = mix64((d + 1) * GOLDEN) >> 11, scaled by 2**-53: splitmix64 output d."""
    expected = (SPLITMIX64_SEED0[draw] >> 11) / 2.0 ** 53
    assert rng.uniform(np.uint64(0), draw) == expected
    assert torch_rng.uniform(torch.zeros(1, dtype=torch.int64), draw).item() == expected
    assert host_rng.uniform(0, draw) == expected


def test_mix64_fixes_zero_and_derive_cancels_a_matching_key():
    """By hand: every step of the finalizer maps 0 to 0, and derive(k, 0) = mix64(k ^ mix64(GOLDEN))
    is mix64(0) = 0 for k = mix64(GOLDEN); so a seed-0 stream's epoch-0 key is derive(0, position)."""
    assert int(rng.mix64(np.uint64(0))) == 0
    first = np.uint64(SPLITMIX64_SEED0[0])
    assert int(rng.derive(first, 0)) == 0
    assert int(torch_rng.derive(torch_rng.as_int64(SPLITMIX64_SEED0[0]), 0)) == 0
    for position in range(3):
        expected = int(rng.derive(np.uint64(0), position))
        assert int(rng.stream_key(0, 0, position)) == expected
        assert torch_rng.stream_key(0, 0, position) % U64 == expected
        assert host_rng.stream_key(0, 0, position) == expected
    # derive(0, 0) = mix64(0 ^ mix64(0 + GOLDEN)) = mix64(splitmix64's first output)
    assert int(rng.derive(np.uint64(0), 0)) == int(rng.mix64(first))


keys = st.integers(0, U64 - 1)
small = st.integers(0, 2 ** 31 - 1)


@settings(max_examples=300, deadline=None)
@given(keys, small, small, small, st.integers(-1000, 1000), st.integers(1, 5000))
def test_the_python_mirror_draws_what_the_numba_functions_draw(key, value, epoch, draw, low, span):
    """Bit for bit, floats included (Box-Muller's log and cos: the same libm)."""
    k = np.uint64(key)
    assert host_rng.derive(key, value) == int(rng.derive(k, value))
    assert host_rng.stream_key(key, epoch, value) == int(rng.stream_key(k, epoch, value))
    assert host_rng.sample_key(key, value) == int(rng.sample_key(k, value))
    assert host_rng.uniform(key, draw) == rng.uniform(k, draw)
    assert host_rng.randint(key, draw, low, low + span) == rng.randint(k, draw, low, low + span)
    assert host_rng.normal(key, draw) == rng.normal(k, draw)
