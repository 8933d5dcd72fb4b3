"""``CompiledPipeline.loader(...)`` without Lightning: early-stopped epochs are closed and
joined (threads and memory stay flat, ffcv #345), an error in FFCV's loader thread raises in a
plain ``for`` loop, and ``set_epoch(n)`` is idempotent (the same epoch, the same batches)."""
import gc
import os
import threading

import pytest
import torch
from ffcv.loader.epoch_iterator import EpochIterator

from compiler import compile_spec
from compiler.safe_loader import LoaderError, SafeLoader
from tests.pipelines import failing_kernel

SPEC = """\
version: 1
seed: 3
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 24}}
      cpu: [{horizontal_flip: {p: 0.5}}]
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    label: {num_classes: 4}
    batch: [{mixup_cutmix: {prob: 1.0}}]
    loader: {batch_size: 4, num_workers: 1, order: random, drop_last: true, batches_ahead: 2}
"""


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_thirty_early_stopped_epochs_leave_threads_and_memory_flat(small_beton):
    compiled = compile_spec(SPEC, device="cpu")
    loader = compiled.loader(small_beton)
    assert isinstance(loader, SafeLoader)

    def early_stopped_epoch(epoch):
        compiled.set_epoch(epoch)
        for images, labels in loader:
            assert images.shape == (4, 3, 24, 24)
            break  # stop after one batch of ten: FFCV's thread would be left blocked

    for epoch in range(3):  # warm-up: Numba compilation, first allocations
        early_stopped_epoch(epoch)
    gc.collect()
    threads, rss = threading.active_count(), rss_bytes()
    for epoch in range(3, 33):
        early_stopped_epoch(epoch)
    gc.collect()
    assert threading.active_count() == threads
    grown = rss_bytes() - rss
    assert grown < 64 * 2 ** 20, f"RSS grew by {grown / 2 ** 20:.0f} MiB over 30 epochs"


def test_an_iterator_that_is_kept_is_closed_by_the_next_epoch(small_beton):
    compiled = compile_spec(SPEC, device="cpu")
    loader = compiled.loader(small_beton)
    before = threading.active_count()
    kept = [iter(loader) for _ in range(5)]  # each new iter closes the previous epoch
    next(kept[-1])
    assert threading.active_count() <= before + 1
    loader.close_epoch()
    assert threading.active_count() == before
    assert list(kept[0]) == []  # a closed epoch yields nothing more


def test_an_early_stopped_epoch_computes_no_more_batches(small_beton, monkeypatch):
    """FFCV's thread reads its stop flag only when its queue is full, and closing drains the
    queue: the thread used to compute the rest of the epoch before it stopped (on a large
    data set longer than the join waits, leaving it running). Now it stops after the batch
    it is computing."""
    computed = []
    run_pipeline = EpochIterator.run_pipeline

    def counted(self, b_ix, *args):
        computed.append(b_ix)
        return run_pipeline(self, b_ix, *args)

    monkeypatch.setattr(EpochIterator, "run_pipeline", counted)
    loader = compile_spec(SPEC, device="cpu").loader(small_beton, batch_size=2)
    assert len(loader) == 20
    for _ in loader:
        break
    # the batch taken, the queue's batches_ahead (2) and the one being computed when closed
    assert len(computed) <= 4, computed
    assert computed == list(range(len(computed)))


def test_a_whole_epoch_has_every_batch(small_beton):
    loader = compile_spec(SPEC, device="cpu").loader(small_beton)
    assert sum(1 for _ in loader) == len(loader) == 10  # 40 samples, batch 4
    assert sum(1 for _ in loader) == 10  # and again: each iter is one epoch


def test_a_failing_loader_thread_raises_in_a_plain_for_loop(small_beton, capfd):
    loader = compile_spec(failing_kernel.SPEC, device="cpu").loader(small_beton)
    before = threading.active_count()
    with pytest.raises(LoaderError) as error:
        for _ in loader:
            pass
    assert str(error.value).startswith(failing_kernel.MESSAGE)
    assert "\n" not in str(error.value)
    assert threading.active_count() == before
    assert "Traceback" not in capfd.readouterr().err


def test_set_epoch_twice_gives_the_same_batches(small_beton):
    compiled = compile_spec(SPEC, device="cpu")
    loader = compiled.loader(small_beton)

    def epoch(n):
        compiled.set_epoch(n)
        out = []
        for images, labels in loader:
            for op in compiled.batch_ops:
                images, labels = op(images, labels)
            out.append((images.clone(), labels.clone()))
        return out

    first, second, other = epoch(0), epoch(0), epoch(1)
    assert len(first) == len(second) == 10
    for (a, la), (b, lb) in zip(first, second):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(first, other))


def test_the_largest_seed_runs_every_order(small_beton):
    """seed 2**64 - 1 is valid: the keyed RNG takes it, FFCV's orders get it folded."""
    text = SPEC.replace("seed: 3", "seed: 18446744073709551615")
    for order in ("random", "quasi_random", "sequential"):
        compiled = compile_spec(text, device="cpu")
        batches = list(compiled.loader(small_beton, order=order))
        assert len(batches) == 10 and all(b[0].isfinite().all() for b in batches)
