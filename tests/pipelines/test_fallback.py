"""The image-folder fallback: a torch DataLoader running the compiled pipeline gives the FFCV
Loader's batches bit for bit; its errors, warning and the FFCV install message."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from compiler import compile_spec
from pipelines.convert import convert
from pipelines.fallback import (FallbackError, FallbackLoader, FallbackWarning,
                                use_fallback, warn_fallback)
from tests.conftest import structured_image

# keyed crop with a real resize, two keyed CPU ops, the fused device normalize+flip
SPEC = """\
version: 1
seed: 4  # epoch 0 keys the decoder below 2**63, epoch 1 above
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 24, scale: [0.3, 1.0]}}
      cpu: [{horizontal_flip: {p: 0.5}}, {pad_crop: {padding: 3, p: 0.7}}]
      device: {dtype: float32, ops: [{flip: {p: 0.5}}, {normalize: {mean: imagenet}}]}
    loader: {batch_size: 4, num_workers: 2, order: sequential, drop_last: false}
"""

# float16 leaves the CPU stage as uint16 bit patterns; the plan's boundary views them as float16
FLOAT16_SPEC = """\
version: 1
seed: 4
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 24, scale: [0.3, 1.0]}}
      cpu: [{horizontal_flip: {p: 0.5}}, {cpu_normalize: {mean: imagenet, dtype: float16}}]
    loader: {batch_size: 4, num_workers: 2, order: sequential, drop_last: false}
"""

PLAIN = """\
version: 1
splits:
  train:
    image:
      decode: {%s}
      device: {dtype: uint8}
    loader: {batch_size: 4, order: random}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """10 lossless PNGs of varied sizes in 3 class folders."""
    root = tmp_path_factory.mktemp("fallback") / "images"
    for i in range(10):
        (root / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(structured_image(30 + i, 36, seed=i))
        image.save(root / f"c{i % 3}" / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("spec,dtype", [(SPEC, torch.float32), (FLOAT16_SPEC, torch.float16)],
                         ids=["float32", "cpu_float16"])
def test_fallback_batches_equal_the_ffcv_loaders_bit_for_bit_at_every_epoch(folder, tmp_path,
                                                                             spec, dtype):
    beton = convert(folder, tmp_path / "images.beton", write_mode="raw", workers=1).output
    reference, fallback = compile_spec(spec, device="cpu"), compile_spec(spec, device="cpu")
    loader = reference.loader(beton)
    batches = FallbackLoader(fallback, folder, num_workers=1)
    seen = []
    for epoch in (0, 1):
        reference.set_epoch(epoch)
        fallback.set_epoch(epoch)
        expected = [(x.clone(), y.clone()) for x, y in loader]
        got = list(batches)
        assert len(got) == len(batches) == len(expected) == 3  # 10 samples, 4 a batch, keep 2
        for (x, y), (fx, fy) in zip(expected, got):
            assert (fx.shape, fx.dtype, fx.device) == (x.shape, dtype, x.device)
            assert fx.is_contiguous(memory_format=torch.channels_last)
            assert (fy.shape, fy.dtype, fy.device) == (y.shape, y.dtype, y.device)
            assert torch.equal(fx, x) and torch.equal(fy, y)
        seen.append(torch.cat([x for x, _ in got]))
    assert not torch.equal(seen[0], seen[1])  # a new epoch draws anew


def test_shuffled_epochs_are_reproducible_permutations(folder):
    compiled = compile_spec(PLAIN % "center_crop: {size: 24, ratio: 1.0}", device="cpu")
    batches = FallbackLoader(compiled, folder, drop_last=False)

    def epoch_images(epoch):
        compiled.set_epoch(epoch)
        return [image.numpy().tobytes() for x, _ in batches for image in x]

    first, again, second = epoch_images(0), epoch_images(0), epoch_images(1)
    assert first == again and first != second
    assert len(first) == 10 and sorted(first) == sorted(second) and len(set(first)) == 10
    assert len(FallbackLoader(compiled, folder)) == 2  # the spec's train split drops the last


def test_plain_decode_of_mixed_sizes_is_a_one_line_error(folder):
    batches = FallbackLoader(compile_spec(PLAIN % "decode: {}", device="cpu"), folder,
                             shuffle=False)
    with pytest.raises(FallbackError) as error:
        next(iter(batches))
    assert str(error.value) == ("images of different sizes in one batch (36x30, 36x33, 36x36, "
                                "36x39); 'decode' needs one size: decode with center_crop or "
                                "random_resized_crop")


def test_a_folder_without_class_folders_is_a_one_line_error(tmp_path):
    compiled = compile_spec(PLAIN % "decode: {}", device="cpu")
    with pytest.raises(FallbackError) as error:
        FallbackLoader(compiled, tmp_path)
    assert str(error.value) == f"{tmp_path}: no class sub-folders (expected SRC/<class>/<image>)"


def test_use_fallback_only_when_the_beton_is_missing_and_the_folder_exists(folder, tmp_path):
    existing = tmp_path / "data.beton"
    existing.write_bytes(b"")
    assert use_fallback(tmp_path / "missing.beton", folder)
    assert use_fallback(None, folder)
    assert not use_fallback(existing, folder)
    assert not use_fallback(tmp_path / "missing.beton", tmp_path / "no-folder")
    assert not use_fallback(tmp_path / "missing.beton", None)


def test_the_warning_names_the_slowdown_and_the_fix():
    with pytest.warns(FallbackWarning) as record:
        warn_fallback("train", "data/train")
    assert str(record[0].message) == (
        "train: no .beton file, so training reads the image folder data/train through a plain "
        "PyTorch DataLoader (PIL decoding in worker processes: slower than FFCV, 1.6x in a 2-core "
        "measurement); "
        "convert it once with `pureffcv convert data/train OUT.beton`, or pass --convert to do "
        "that before training")




def test_a_truncated_jpeg_is_skipped_named_and_counted_and_the_rest_loads(folder, tmp_path):
    import shutil

    from pipelines.fallback import SkippedImagesWarning

    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    buffer = tmp_path / "whole.jpg"
    Image.fromarray(structured_image(36, 36, seed=99)).save(buffer, quality=90)
    bad = damaged / "c1" / "05b.jpg"  # sorts between c1's images
    bad.write_bytes(buffer.read_bytes()[:len(buffer.read_bytes()) // 2])  # truncated
    compiled = compile_spec(PLAIN % "center_crop: {size: 24, ratio: 1.0}", device="cpu")
    with pytest.warns(SkippedImagesWarning) as record:
        loader = FallbackLoader(compiled, damaged, batch_size=4, num_workers=2,
                                shuffle=False, drop_last=False)
    message = str(record[0].message)
    assert message.startswith(f"{damaged}: 1 unreadable image(s) skipped, training on the "
                              f"other 10 ({bad}: OSError")
    assert loader.skipped[0][0] == str(bad)
    # the same samples, in the same order, as the undamaged folder
    clean = FallbackLoader(compile_spec(PLAIN % "center_crop: {size: 24, ratio: 1.0}",
                                        device="cpu"), folder, batch_size=4, num_workers=0,
                           shuffle=False, drop_last=False)
    got = [(images.clone(), labels.clone()) for images, labels in loader]
    want = list(clean)
    assert sum(len(labels) for _, labels in got) == 10
    for (a, la), (b, lb) in zip(got, want):
        assert torch.equal(a, b) and torch.equal(la, lb)
