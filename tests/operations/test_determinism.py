"""Keyed randomness through a real FFCV Loader: the same seed and epoch give the same bytes per
sample whatever the worker count, batch size and order; a new epoch gives new draws; images in
one batch draw independently. Labels are sample indices, so outputs map back to samples."""
import numpy as np
import pytest

from operations import EpochClock, get_op
from tests.conftest import structured_batch, structured_image, write_beton

SAMPLES = 21


@pytest.fixture(scope="module")
def copies_beton(tmp_path_factory):
    """21 copies of one 28x36 image, label = sample index: any difference between two outputs
    comes from the draws alone."""
    image = structured_image(28, 36, seed=3)
    return write_beton(tmp_path_factory.mktemp("determinism") / "copies.beton",
                       [image] * SAMPLES, list(range(SAMPLES)))


def run_epoch(path, clock, epoch, workers, batch_size, order):
    """One epoch through a fresh pipeline bound to ``clock``: {sample index: image bytes}."""
    from ffcv.fields.decoders import IntDecoder
    from ffcv.loader import Loader, OrderOption

    ops = [get_op("random_resized_crop")(size=20), get_op("horizontal_flip")(p=0.5),
           get_op("rotate")(degrees=15), get_op("random_erasing")(p=0.5)]
    for position, op in enumerate(ops):
        op.bind(clock, position)
    loader = Loader(str(path), batch_size=batch_size, num_workers=workers, drop_last=False,
                    order=getattr(OrderOption, order), seed=5,
                    pipelines={"image": ops, "label": [IntDecoder()]})
    return loader, epoch_outputs(loader, clock, epoch)


def epoch_outputs(loader, clock, epoch):
    clock.epoch = epoch  # before iter: FFCV prefetches at iter
    outputs, order = {}, []
    for images, labels in loader:
        for image, label in zip(images, labels[:, 0]):
            outputs[int(label)] = image.copy()
            order.append(int(label))
    assert sorted(outputs) == list(range(SAMPLES))
    return outputs, order


def same(a, b):
    return all(np.array_equal(a[i], b[i]) for i in range(SAMPLES))


def test_same_seed_and_epoch_give_same_bytes_across_workers_batches_and_orders(copies_beton):
    clock = EpochClock(seed=11)
    loader, (seq_e0, order) = run_epoch(copies_beton, clock, 0, workers=1, batch_size=4,
                                        order="SEQUENTIAL")
    assert order == list(range(SAMPLES))
    seq_e1, _ = epoch_outputs(loader, clock, 1)
    again_e0, _ = epoch_outputs(loader, clock, 0)
    assert same(seq_e0, again_e0)
    assert not any(np.array_equal(seq_e0[i], seq_e1[i]) for i in range(SAMPLES))

    _, (random_e0, random_order) = run_epoch(copies_beton, EpochClock(seed=11), 0, workers=2,
                                             batch_size=7, order="RANDOM")
    assert random_order != list(range(SAMPLES))  # the order really changed
    assert same(seq_e0, random_e0)

    _, (parallel_e1, _) = run_epoch(copies_beton, EpochClock(seed=11), 1, workers=2,
                                    batch_size=4, order="SEQUENTIAL")
    assert same(seq_e1, parallel_e1)

    # one input image, 21 samples: every sample drew its own crop/flip/angle/erasure
    flat = {seq_e0[i].tobytes() for i in range(SAMPLES)}
    assert len(flat) == SAMPLES


def test_a_new_seed_gives_new_draws():
    images = structured_batch(8, 16, 16)
    first, second = get_op("rotate")(degrees=180), get_op("rotate")(degrees=180)
    first.bind(EpochClock(seed=1), 0)
    second.bind(EpochClock(seed=2), 0)
    a, b = first.apply(images), second.apply(images)
    # nearby angles can map a small image to the same pixels, so allow one coincidence
    assert sum(np.array_equal(a[i], b[i]) for i in range(8)) <= 1


def test_probability_gate_fires_at_binomial_rate():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(1, 2, 3, 3)
    images = np.repeat(image, 2000, axis=0)
    flip = get_op("vertical_flip")(p=0.3)
    flip.bind(EpochClock(seed=4), 1)
    out = flip.apply(images)
    flipped = (out == image[:, ::-1]).all(axis=(1, 2, 3))
    kept = (out == image).all(axis=(1, 2, 3))
    assert (flipped ^ kept).all()
    # binomial(2000, 0.3): mean 600, sd 20.5; the bounds are 5 sd out
    assert 497 < flipped.sum() < 703
