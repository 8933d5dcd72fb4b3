"""A pipeline compiled from a spec and run through a real ffcv Loader gives the same tensors
as the same pipeline written by hand with FFCV's own operations."""
import numpy as np
import torch
from ffcv.fields.decoders import IntDecoder
from ffcv.fields.rgb_image import CenterCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.transforms import NormalizeImage, RandomHorizontalFlip, Squeeze, ToDevice, ToTensor, ToTorchImage

from compiler import compile_spec

SPEC = """\
version: 1
seed: 2
splits:
  val:
    image:
      decode: {center_crop: {size: 24, ratio: 0.875}}
      cpu: [{horizontal_flip: {p: 1.0}}]
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 16, num_workers: 1}
"""
MEAN = np.array([0.485, 0.456, 0.406]) * 255
STD = np.array([0.229, 0.224, 0.225]) * 255


def _batches(loader):
    images, labels = zip(*[(x.clone(), y.clone()) for x, y in loader])
    return images, labels


def test_compiled_loader_matches_the_hand_written_ffcv_pipeline(small_beton):
    compiled = compile_spec(SPEC, split="val", device="cpu")
    ours = _batches(compiled.loader(small_beton))
    cpu = torch.device("cpu")
    by_hand = Loader(str(small_beton), batch_size=16, num_workers=1, order=OrderOption.SEQUENTIAL,
                     drop_last=False, pipelines={
                         "image": [CenterCropRGBImageDecoder((24, 24), 0.875),
                                   RandomHorizontalFlip(flip_prob=1.0),
                                   NormalizeImage(MEAN, STD, np.float32),
                                   ToTensor(), ToDevice(cpu), ToTorchImage()],
                         "label": [IntDecoder(), ToTensor(), Squeeze(), ToDevice(cpu)]})
    theirs = _batches(by_hand)
    assert [len(b) for b in ours[0]] == [16, 16, 8]  # val: sequential, keeps the last batch
    for mine, reference in zip(ours[0], theirs[0]):
        assert mine.dtype == torch.float32 and mine.shape == (len(mine), 3, 24, 24)
        assert mine.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(mine, reference.float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(torch.cat(ours[1]), torch.cat(theirs[1]))
    assert torch.equal(torch.cat(ours[1]), torch.arange(40) % 4)


def test_a_second_loader_of_one_pipeline_gives_the_same_batches(small_beton):
    """FFCV's Loader pops the decoder off the op list it is given; each Loader gets its own
    copy, so a second one still crops (it decoded full-size images before) and explain still
    shows the label decoder."""
    compiled = compile_spec(SPEC, split="val", device="cpu")
    first, second = (_batches(compiled.loader(small_beton))[0] for _ in range(2))
    assert [tuple(b.shape) for b in second] == [(16, 3, 24, 24), (16, 3, 24, 24), (8, 3, 24, 24)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert "label: IntDecoder -> ToTensor" in compiled.explain()


def test_more_workers_than_the_machine_runs_warns_and_uses_every_thread(small_beton):
    """FFCV hands num_workers to numba.set_num_threads, which refuses more threads than
    NUMBA_NUM_THREADS: a spec written for a bigger machine still opens its data here."""
    import numba
    import pytest

    from compiler.workers import WorkersWarning

    limit = numba.config.NUMBA_NUM_THREADS
    compiled = compile_spec(SPEC.replace("num_workers: 1", f"num_workers: {limit + 6}"),
                            split="val", device="cpu")
    with pytest.warns(WorkersWarning, match=f"num_workers {limit + 6} is more than the {limit} "
                                            f"threads this machine runs; using {limit}"):
        loader = compiled.loader(small_beton)
    assert loader.num_workers == limit
    assert sum(1 for _ in loader) == 3  # it runs: 40 samples, batch 16
