"""The torch mirror of the keyed hash equals the Numba reference: keys and uniforms bit for bit,
normals to the last bit of log/cos."""
import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from operations import rng as reference
from operations.device import rng

uint64s = st.integers(0, 2 ** 64 - 1)
indices = st.lists(st.integers(0, 2 ** 63 - 1), min_size=1, max_size=16)
draws = st.one_of(st.integers(0, 2 ** 31), st.just(reference.GATE_DRAW))


def bits(value) -> int:
    """The unsigned 64 bits of an int64 or uint64 value."""
    return int(value) % 2 ** 64


@settings(max_examples=200, deadline=None)
@given(seed=uint64s, epoch=st.integers(0, 2 ** 31), position=st.integers(0, 10 ** 6))
def test_stream_key_matches_numba(seed, epoch, position):
    expected = reference.stream_key(np.uint64(seed), epoch, position)
    assert bits(rng.stream_key(seed, epoch, position)) == bits(expected)


@settings(max_examples=200, deadline=None)
@given(stream=uint64s, index=indices, draw=draws)
def test_sample_keys_uniform_and_normal_match_numba(stream, index, draw):
    keys = rng.sample_keys(stream, torch.tensor(index, dtype=torch.int64))
    for i, key in zip(index, keys.tolist()):
        expected = np.uint64(reference.sample_key(np.uint64(stream), np.int64(i)))
        assert bits(key) == bits(expected)
    u = rng.uniform(keys, draw).tolist()
    z = rng.normal(keys, draw % 2 ** 20).tolist()
    for k, (key, value) in enumerate(zip(keys.tolist(), u)):
        expected_key = np.uint64(bits(key))
        assert value == reference.uniform(expected_key, draw)
        # log and cos may differ from libm's in the last bit
        assert abs(z[k] - reference.normal(expected_key, draw % 2 ** 20)) <= 1e-14 * (1 + abs(z[k]))


def test_uniform_broadcasts_keys_against_draw_tensors():
    keys = rng.sample_keys(rng.stream_key(3, 1, 2), torch.arange(4))
    table = rng.uniform(keys[:, None], torch.arange(5))
    assert table.shape == (4, 5)
    for i, key in enumerate(keys.tolist()):
        assert table[i].tolist() == [reference.uniform(np.uint64(bits(key)), d) for d in range(5)]
