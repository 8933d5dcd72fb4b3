"""`pureffcv bench --json`: the documented keys, sane values, and the stage breakdown adding up."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import structured_image, write_beton
from tests.pipelines import failing_kernel

REPO = Path(__file__).resolve().parents[2]

PUREFFCV = str(Path(sys.executable).with_name("pureffcv"))
SPEC = """\
version: 1
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 24}}
      cpu: [{solarize: {threshold: 128, p: 0.5}}]
      device: {dtype: float32, ops: [flip, {normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 16, num_workers: 1}
"""


@pytest.mark.timeout(900)
def test_bench_json_has_the_documented_keys(tmp_path):
    beton = write_beton(tmp_path / "data.beton", [structured_image(32, 40, i) for i in range(48)],
                        [i % 3 for i in range(48)])
    (tmp_path / "spec.yaml").write_text(SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"), str(beton),
                           "--epochs", "1", "--device", "cpu", "--json",
                           "--compare", "torch_hybrid", "ffcv_decode", "--plot", str(tmp_path / "plot.png")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report) == {"spec", "split", "device", "num_workers", "batch_size", "epochs",
                           "images_per_s", "first_epoch_s", "compile_s", "stages_us_per_image",
                           "variants"}
    assert (report["device"], report["num_workers"], report["batch_size"]) == ("cpu", 1, 16)
    assert set(report["stages_us_per_image"]) == {"decode", "cpu_ops", "transfer", "device_ops"}
    assert set(report["variants"]) == {"pipeline", "decode", "cpu_ops", "transfer", "torch_hybrid",
                                       "ffcv_decode"}
    for variant in report["variants"].values():
        assert variant["images"] == 48 and variant["images_per_s"] > 0  # one timed epoch
        # compile time: the first epoch less one steady epoch
        steady = variant["seconds"] / variant["epochs"]
        assert variant["compile_s"] == pytest.approx(max(0.0, variant["first_epoch_s"] - steady))
    assert report["compile_s"] == report["variants"]["pipeline"]["compile_s"]
    # the stage costs are differences of cumulative prefixes: they add up to the pipeline's
    total = sum(report["stages_us_per_image"].values())
    assert total == pytest.approx(1e6 / report["images_per_s"])
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_bench_reports_a_missing_file_in_one_line(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"),
                           str(tmp_path / "nope.beton"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"pureffcv bench: {tmp_path / 'nope.beton'}: "
                                                f"no such .beton file"]


def test_an_op_failing_in_the_loader_thread_is_one_line_not_a_hang(tmp_path, small_beton):
    spec = tmp_path / "failing.yaml"
    spec.write_text(failing_kernel.SPEC)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", str(spec),
                           str(small_beton), "--device", "cpu", "--epochs", "1", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"pureffcv bench: {failing_kernel.MESSAGE}")
    assert line.endswith("failing_kernel.py, line 9)")


def test_compare_dataloader_without_images_fails_before_timing(tmp_path, small_beton):
    (tmp_path / "spec.yaml").write_text(SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"), str(small_beton),
                           "--device", "cpu", "--compare", "dataloader"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    # stderr holds no progress bar: no timed run started
    assert done.stderr == ("pureffcv bench: --compare dataloader needs --images DIR (the "
                           "source image folder)\n")


def test_ffcv_decode_is_ffcvs_decoder_for_the_same_crop():
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder

    from operations import get_op
    from pipelines.bench import ffcv_decoder

    rrc = ffcv_decoder(get_op("random_resized_crop")(size=[20, 30], scale=(0.3, 0.9),
                                                      ratio=(0.5, 2.0)))
    assert isinstance(rrc, RandomResizedCropRGBImageDecoder)
    # FFCV's own decoder objects: plain attributes, not pureffcv's bound params
    assert (tuple(rrc.output_size), rrc.scale, rrc.ratio) == ((20, 30), (0.3, 0.9), (0.5, 2.0))
    center = ffcv_decoder(get_op("center_crop")(size=24, ratio=0.75))
    assert isinstance(center, CenterCropRGBImageDecoder)
    assert (tuple(center.output_size), center.ratio) == ((24, 24), 0.75)
    with pytest.raises(ValueError, match="random_resized_crop or center_crop"):
        ffcv_decoder(get_op("decode")())


def test_compare_dali_without_dali_fails_before_timing(tmp_path, small_beton):
    from pipelines import dali_baseline

    if dali_baseline.available():
        pytest.skip("nvidia.dali is importable here: the refusal cannot be seen")
    (tmp_path / "spec.yaml").write_text(SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"), str(small_beton),
                           "--device", "cpu", "--compare", "dali"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr == ("pureffcv bench: --compare dali needs NVIDIA DALI (pip install "
                           "nvidia-dali-cuda130: it runs CPU pipelines without a GPU)\n")


def test_dali_is_fed_each_samples_stored_jpeg_bytes(tmp_path, small_beton):
    """The bytes handed to DALI are the JPEG files as stored (they decode to the image PIL
    decodes from them), with their labels; a raw .beton is refused in one line."""
    import io

    import numpy as np
    from PIL import Image

    from pipelines.dali_baseline import jpeg_samples

    y, x = np.mgrid[0:40, 0:48]
    images = [np.stack([x * 5, y * 6, (x + y) * 2 + 20 * i], -1).astype(np.uint8)[:, :40 + i]
              for i in range(5)]  # smooth: a JPEG of them is within a few levels
    beton = write_beton(tmp_path / "jpg.beton", images, [4, 3, 2, 1, 0], write_mode="jpg")
    blobs, labels = jpeg_samples(str(beton))
    assert labels.tolist() == [4, 3, 2, 1, 0]
    for blob, image in zip(blobs, images):
        decoded = np.asarray(Image.open(io.BytesIO(blob.tobytes())))
        assert decoded.shape == image.shape
        assert blob[:2].tolist() == [0xFF, 0xD8] and blob[-2:].tolist() == [0xFF, 0xD9]
        assert np.abs(decoded.astype(int) - image).mean() < 3  # a JPEG of this image
    with pytest.raises(ValueError, match="needs every image of .* stored as JPEG"):
        jpeg_samples(str(small_beton))


VIEWS_SPEC = """\
version: 1
splits:
  train:
    image:
      views:
        big: {count: 2, decode: {random_resized_crop: {size: 24}}}
        small: {count: 3, decode: {random_resized_crop: {size: 12, scale: [0.05, 0.4]}}}
    loader: {batch_size: 16, num_workers: 1}
"""


@pytest.mark.timeout(900)
def test_bench_times_a_views_split_whole_as_one_view_and_against_ffcv_per_copy(tmp_path):
    beton = write_beton(tmp_path / "data.beton", [structured_image(32, 40, i) for i in range(48)],
                        [i % 3 for i in range(48)], write_mode="jpg")
    (tmp_path / "spec.yaml").write_text(VIEWS_SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"), str(beton),
                           "--epochs", "1", "--device", "cpu", "--json",
                           "--compare", "ffcv_views"], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report["variants"]) == {"pipeline", "one_view", "ffcv_views"}
    for variant in report["variants"].values():  # samples, not images of every copy
        assert variant["images"] == 48 and variant["images_per_s"] > 0
    assert report["stages_us_per_image"] == {}  # no prefixes are timed for views


def test_ffcv_views_baseline_has_one_pipeline_per_copy_at_its_size(tmp_path):
    from compiler import compile_spec
    from pipelines.bench import _ffcv_views_batches

    beton = write_beton(tmp_path / "data.beton", [structured_image(32, 40, i) for i in range(8)],
                        list(range(8)), write_mode="jpg")
    compiled = compile_spec(VIEWS_SPEC, device="cpu")
    batches = _ffcv_views_batches(compiled, str(beton), {"order": "sequential",
                                                          "drop_last": False})
    [*views, labels] = next(iter(batches(0)))
    assert [tuple(v.shape) for v in views] == [(8, 3, 24, 24)] * 2 + [(8, 3, 12, 12)] * 3
    assert labels.tolist() == list(range(8))


def test_compare_ffcv_views_needs_views(tmp_path, small_beton):
    (tmp_path / "spec.yaml").write_text(SPEC)
    done = subprocess.run([PUREFFCV, "bench", str(tmp_path / "spec.yaml"), str(small_beton),
                           "--device", "cpu", "--compare", "ffcv_views"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr == ("pureffcv bench: --compare ffcv_views needs a split with "
                           "image.views; 'train' has none\n")
