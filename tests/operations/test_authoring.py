"""The kernel-to-Operation authoring API: signature, probability gate, keyed draws."""
import numpy as np
import pytest

from operations import EpochClock, cpu_op, get_op
from operations.rng import uniform
from tests.conftest import structured_batch


def test_kernel_signature_becomes_the_op_signature():
    flip = get_op("horizontal_flip")
    assert list(flip.parameters()) == ["p"]
    with pytest.raises(TypeError):
        flip(bogus=1)


def test_kernel_must_start_with_image_in_image_out_rng():
    def bad(image, out, key):
        pass

    with pytest.raises(TypeError, match="image_in, image_out, rng"):
        cpu_op(bad)


def test_probability_gate_applies_per_image_and_changes_with_epoch():
    images = structured_batch(64, 6, 8)
    flip = get_op("horizontal_flip")(p=0.5)
    flip.bind(EpochClock(seed=7), position=2)
    first = flip.apply(images)
    flipped = [bool((first[i] == images[i, :, ::-1]).all()) for i in range(64)]
    kept = [bool((first[i] == images[i]).all()) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image either flipped or kept
    assert 16 < sum(flipped) < 48  # binomial(64, 0.5): outside is a < 1e-4 event
    again = flip.apply(images)
    assert np.array_equal(first, again)  # same seed and epoch: same bytes
    flip.clock.epoch = 1
    assert not np.array_equal(first, flip.apply(images))


def test_uniform_is_in_unit_interval_and_spread():
    draws = np.array([uniform(np.uint64(12345), k) for k in range(4000)])
    assert draws.min() >= 0.0 and draws.max() < 1.0
    counts = np.histogram(draws, bins=10, range=(0, 1))[0]
    assert counts.min() > 300 and counts.max() < 500  # 400 expected per bin
