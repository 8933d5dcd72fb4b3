"""A truncated or corrupted .beton is refused before training: every public entry point (the
Python ``CompiledPipeline.loader``, ``open_beton``, preview, bench, train) gives one line that
names the file, within seconds, and never hangs."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_spec
from compiler.beton_check import BetonError, check_beton
from pipelines.beton import open_beton
from pipelines.cli import main
from tests.conftest import structured_image

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
version: 1
splits:
  train:
    image:
      decode: {center_crop: {size: 16, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    label: {num_classes: 4}
    loader: {batch_size: 4, num_workers: 1}
  val:
    image:
      decode: {center_crop: {size: 16, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 4, num_workers: 1}
"""
HEADER = 24  # FFCV's header: version u2, num_fields u2, page_size u4, num_samples u8, table u8


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """12 raw 20x20 images in 2 MiB pages (the smallest FFCV writes)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    path = tmp_path_factory.mktemp("damaged") / "good.beton"

    class Pairs:
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return structured_image(20, 20, seed=i), i % 4

    writer = DatasetWriter(str(path), {"image": RGBImageField(write_mode="raw"),
                                       "label": IntField()}, num_workers=1, page_size=2 ** 21)
    writer.from_indexed_dataset(Pairs(), chunksize=4)
    return path


def damaged(good: Path, tmp_path: Path, how: str) -> Path:
    data = bytearray(good.read_bytes())
    kind, _, arg = how.partition(":")
    if kind == "cut":
        data = data[:{"0": 0, "1-short": len(data) - 1, "entry-short": len(data) - 24,
                      "half": len(data) // 2, "header": 10, "fields": 100}[arg]]
    else:
        offset, dtype, value = {"version": (0, "<u2", 3), "fields": (2, "<u2", 0),
                                "page": (4, "<u4", 3000), "samples": (8, "<u8", 2 ** 40),
                                "table": (16, "<u8", 2 ** 50),
                                "type": (HEADER, "<u1", 200)}[arg]
        data[offset:offset + np.dtype(dtype).itemsize] = np.array([value], dtype).tobytes()
    path = tmp_path / f"{how.replace(':', '-')}.beton"
    path.write_bytes(bytes(data))
    return path


DAMAGES = ["cut:0", "cut:1-short", "cut:entry-short", "cut:half", "cut:header", "cut:fields",
           "corrupt:version", "corrupt:fields", "corrupt:page", "corrupt:samples",
           "corrupt:table", "corrupt:type"]
EXPECTED = {"cut:0": "the file is empty", "cut:1-short": "not a whole number of 24-byte entries",
            "cut:entry-short": "sample 11's data", "cut:half": "allocation table pointer",
            "cut:header": "shorter than the 24-byte header", "cut:fields": "field descriptions",
            "corrupt:version": "format version 3", "corrupt:fields": "declares no fields",
            "corrupt:page": "page size 3000 is not a power of two",
            "corrupt:samples": "the metadata of 1,099,511,627,776 samples",
            "corrupt:table": "allocation table pointer", "corrupt:type": "unknown field type 200"}


def test_an_intact_file_passes(good):
    reader = check_beton(good, ("image", "label"))
    assert reader.num_samples == 12


@pytest.mark.parametrize("how", DAMAGES)
def test_the_python_entry_points_give_one_line_naming_the_file(good, tmp_path, how):
    path = damaged(good, tmp_path, how)
    for call in (lambda: open_beton(path),
                 lambda: compile_spec(SPEC, device="cpu").loader(path)):
        with pytest.raises(BetonError) as error:
            call()
        message = str(error.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert EXPECTED[how] in message, message


def run_cli(args, capsys) -> str:
    assert main(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err
    return lines[-1]


@pytest.mark.parametrize("how", ["cut:0", "cut:1-short", "corrupt:version"])
def test_preview_and_bench_give_one_line_naming_the_file(good, tmp_path, capsys, how):
    path = damaged(good, tmp_path, how)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    line = run_cli(["preview", str(spec), str(path), "--out", str(tmp_path / "grid.png"),
                    "--device", "cpu"], capsys)
    assert line.startswith(f"pureffcv preview: {path}: ") and EXPECTED[how] in line
    line = run_cli(["bench", str(spec), str(path), "--device", "cpu", "--epochs", "1"], capsys)
    assert line.startswith(f"pureffcv bench: {path}: ") and EXPECTED[how] in line
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("how", ["cut:1-short", "corrupt:samples"])
def test_train_gives_one_line_naming_the_file_before_training(good, tmp_path, how):
    path = damaged(good, tmp_path, how)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    args = ["train", "--data.spec", str(spec), "--data.train_path", str(path),
            "--data.val_path", str(good), "--model.arch", "resnet18", "--model.width", "8",
            "--model.num_classes", "4", "--trainer.max_epochs", "1",
            "--trainer.accelerator", "cpu", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pureffcv train: ") and f"{path}: " in last and EXPECTED[how] in last
    assert not (tmp_path / "run").exists()
