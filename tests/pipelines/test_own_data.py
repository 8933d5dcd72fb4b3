"""A researcher's own data (issue 21): no silent wrong labels, no hangs, every tool on every
field layout. Each test reproduces one reported failure end to end."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compiler import compile_spec
from pipelines.cli import main
from pipelines.datamodule import FFCVDataModule
from pipelines.fallback import FallbackLoader
from pipelines.missing_betons import shared_class_map
from tests.conftest import structured_image
from tests.pipelines.train_helpers import TINTS, tinted_beton, write_spec

PUREFFCV = str(Path(sys.executable).with_name("pureffcv"))
REPO = Path(__file__).resolve().parents[2]


def run_hard(command, timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """``command`` in its own process group, killed as a group (SIGKILL) after ``timeout_s``:
    a hang fails the test instead of outliving it (``timeout`` alone could not stop it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True, env=env, **kwargs)
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"hung for {timeout_s} s and was killed: {' '.join(command)}\n{out[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, "")


def image_folder(root: Path, classes, per_class: int = 4, seed: int = 0) -> Path:
    """root/<class>/<i>.png: structured 36x36 images tinted by class (TINTS)."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        tint = TINTS[["red", "green", "blue", "yellow"].index(name)]
        for i in range(per_class):
            pixels = 0.5 * structured_image(36, 36, seed + 10 * k + i) + 0.5 * tint
            Image.fromarray(np.round(pixels).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def fit_args(spec, out, **overrides):
    values = {"--data.spec": str(spec), "--model.arch": "resnet18", "--model.width": "8",
              "--model.num_classes": "3", "--trainer.max_epochs": "1",
              "--trainer.accelerator": "cpu", "--trainer.devices": "1",
              "--trainer.logger": "false", "--trainer.enable_progress_bar": "false",
              "--trainer.enable_model_summary": "false", "--trainer.default_root_dir": str(out)}
    values.update(overrides)
    return [item for pair in values.items() for item in pair]


# -- 1. worker processes inside a Lightning run ---------------------------------------------

CHECK_UNDER_A_LOGGING_SIGTERM_HANDLER = """
import signal, sys
from pipelines.convert.images import check_all
# Lightning's SIGTERM handler logs and returns; forked workers inherit it
signal.signal(signal.SIGTERM, lambda *a: print('Received SIGTERM', flush=True))
print(len(check_all(sys.argv[1:], workers=2)))
"""


def test_image_checking_pool_shuts_down_inside_a_run_that_handles_sigterm(tmp_path):
    folder = image_folder(tmp_path / "images", ["red", "blue"])
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    done = run_hard([sys.executable, "-c", CHECK_UNDER_A_LOGGING_SIGTERM_HANDLER, *paths], 120)
    assert done.returncode == 0, done.stdout
    assert done.stdout.split()[-1] == str(len(paths))
    assert "Received SIGTERM" not in done.stdout  # no worker ran the inherited handler


# -- 2. class maps agree by construction, end to end ---------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    return {"root": root, "train": image_folder(root / "train", ["red", "green", "blue"]),
            "val": image_folder(root / "val", ["red", "blue"], per_class=3, seed=100),
            "spec": write_spec(root / "spec.yaml", batch=4)}


def test_val_without_a_train_class_is_refused_then_converted_with_trains_map(folders, capsys):
    root = folders["root"]
    train, val = root / "train.beton", root / "val.beton"
    assert main(["convert", str(folders["train"]), str(train), "--workers", "1"]) == 0
    assert main(["convert", str(folders["val"]), str(val), "--workers", "1"]) == 0
    assert json.loads((root / "val.classes.json").read_text()) == {"blue": 0, "red": 1}
    capsys.readouterr()
    args = fit_args(folders["spec"], root / "refused", **{"--data.train_path": str(train),
                                                          "--data.val_path": str(val)})
    assert main(["fit"] + args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv fit: the train and val class maps differ ({root / 'train.classes.json'} vs "
        f"{root / 'val.classes.json'}: green only in the first; red: 2 vs 1); convert the "
        f"val split with --classes {train}")
    for command in ("validate", "predict"):  # the same refusal before any evaluation
        assert main([command] + args) == 1
        assert "class maps differ" in capsys.readouterr().err

    assert main(["convert", str(folders["val"]), str(val), "--workers", "1", "--force",
                 "--classes", str(train)]) == 0
    assert json.loads((root / "val.classes.json").read_text()) == {"blue": 0, "green": 1,
                                                                   "red": 2}
    from pipelines.data_checks import beton_labels

    assert beton_labels(str(val)).tolist() == [0, 0, 0, 2, 2, 2]  # blue, then red: train's 2
    assert main(["fit"] + args) == 0
    assert (root / "refused" / "checkpoints" / "last.ckpt").is_file()

    extra = image_folder(root / "extra", ["red", "yellow"], per_class=1)
    assert main(["convert", str(extra), str(root / "x.beton"), "--classes", str(train)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv convert: {extra}: class(es) yellow not in the class map (blue, green, red)")


def test_val_folder_fallback_uses_trains_map_and_finishes_under_lightning(folders):
    """The val split read from a folder (no .beton) inside a Lightning run: labelled with the
    train .beton's map, and the image-checking pool shuts down (it hung on SIGTERM)."""
    root = folders["root"]
    train = root / "fallback-train.beton"
    assert main(["convert", str(folders["train"]), str(train), "--workers", "1"]) == 0
    module = FFCVDataModule(str(folders["spec"]), str(train), val_folder=str(folders["val"]))
    classes = shared_class_map(module._sources())
    assert classes == {"blue": 0, "green": 1, "red": 2}
    loader = FallbackLoader(compile_spec(folders["spec"], "val", device="cpu"), folders["val"],
                            classes=classes)
    assert loader.dataset.labels == [0, 0, 0, 2, 2, 2]

    args = fit_args(folders["spec"], root / "fallback", **{
        "--data.train_path": str(train), "--data.val_folder": str(folders["val"]),
        "--data.num_workers": "2"})
    done = run_hard([PUREFFCV, "fit", *args], 300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "checking images: 100%" in done.stdout
    assert "Received SIGTERM" not in done.stdout


# -- 3. Ctrl-C, then resume ----------------------------------------------------------------

def test_fit_interrupted_by_ctrl_c_resumes_from_last_ckpt_through_the_cli(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", batch=2)
    train = tinted_beton(tmp_path / "train.beton", 240)
    val = tinted_beton(tmp_path / "val.beton", 8, seed=500)
    args = fit_args(spec, tmp_path / "run", **{"--data.train_path": str(train),
                                               "--data.val_path": str(val),
                                               "--model.num_classes": "4",
                                               "--trainer.max_epochs": "3"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([PUREFFCV, "fit", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env=env)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the second epoch's batches
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("fit did not stop on Ctrl-C")
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert 0 < state["global_step"] < 3 * 120  # stopped before the end
    done = run_hard([PUREFFCV, "fit", *args, "--ckpt_path", str(last)], 300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Traceback" not in done.stdout
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 2


# -- 4. a .beton with other field names, through every command -----------------------------

@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A .beton with fields ``img`` and ``target`` and a spec that reads them."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    root = tmp_path_factory.mktemp("mapped")
    images = [np.round(0.5 * structured_image(36, 36, i) + 0.5 * TINTS[i % 3]).astype(np.uint8)
              for i in range(24)]

    class Pairs:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], i % 3

    beton = root / "mapped.beton"
    DatasetWriter(str(beton), {"img": RGBImageField(write_mode="raw"), "target": IntField()},
                  num_workers=1).from_indexed_dataset(Pairs(), chunksize=8)
    (root / "mapped.classes.json").write_text('{"red": 0, "green": 1, "blue": 2}')
    spec = write_spec(root / "spec.yaml", batch=4)
    spec.write_text(spec.read_text().replace("    image:\n", "    image:\n      field: img\n")
                    .replace("label: int", "label: {field: target}"))
    return {"root": root, "beton": beton, "spec": spec}


def test_a_field_mapped_beton_through_every_command(mapped, capsys):
    root, beton, spec = mapped["root"], str(mapped["beton"]), str(mapped["spec"])
    assert main(["check", spec]) == 0
    assert main(["explain", spec, "--device", "cpu"]) == 0
    assert "fields: image from 'img', label from 'target'" in capsys.readouterr().out
    assert main(["preview", spec, beton, "--out", str(root / "grid.png"), "--n", "6",
                 "--device", "cpu"]) == 0
    with Image.open(root / "grid.png") as grid:
        assert grid.width > 0
    from pipelines.studio.engine import Studio
    from pipelines.studio.server import StudioServer

    studio = Studio(spec, beton, n=6)
    assert studio.render().errors == []
    server = StudioServer(studio, port=0)
    try:
        state = json.loads(json.dumps(server.state()))
    finally:
        server.httpd.server_close()
    assert [s["label"] for s in state["samples"]] == ["red", "green", "blue"] * 2
    capsys.readouterr()
    assert main(["bench", spec, beton, "--epochs", "1", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["images_per_s"] > 0
    assert main(["stats", beton]) == 0
    out = root / "run"
    args = fit_args(spec, out, **{"--data.train_path": beton, "--data.val_path": beton})
    assert main(["fit"] + args) == 0
    ckpt = str(out / "checkpoints" / "last.ckpt")
    assert main(["validate"] + args + ["--ckpt_path", ckpt]) == 0
    assert main(["predict"] + args + ["--ckpt_path", ckpt, "--output",
                                      str(root / "p.csv")]) == 0
    rows = (root / "p.csv").read_text().splitlines()
    assert rows[1].split(",")[:3] == ["0", "0", "red"]
    # every stored label as written (the first batch's were once a later batch's)
    assert [row.split(",")[1] for row in rows[1:]] == [str(i % 3) for i in range(24)]


# -- 6. smaller traps ----------------------------------------------------------------------

def test_a_training_beton_smaller_than_one_batch_is_one_line_before_training(tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.yaml", batch=8)
    small = tinted_beton(tmp_path / "small.beton", 5)
    args = fit_args(spec, tmp_path / "run", **{"--data.train_path": str(small),
                                               "--model.num_classes": "4"})
    assert main(["fit"] + args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv fit: {small}: 5 sample(s), fewer than one batch of 8 with drop_last: no "
        f"training batches; lower --data.batch_size or set drop_last: false in the spec's "
        f"loader")
    assert not (tmp_path / "run").exists()


def test_default_lr_is_goyals_linear_scaling_of_the_global_batch():
    from pipelines.schedules import linear_scaling_lr

    assert linear_scaling_lr(256) == 0.1 and linear_scaling_lr(1024) == 0.4
    assert linear_scaling_lr(64) == 0.025 and linear_scaling_lr(64, "adamw") == 1e-3


def test_demo_data_folder_is_pureffcv_data_and_the_kernel_switch_is_not_a_folder(monkeypatch):
    from pipelines.demo_data import cache_dir

    monkeypatch.delenv("PUREFFCV_DATA", raising=False)
    monkeypatch.setenv("PUREFFCV_CACHE", "0")  # the kernel cache's switch: not a folder
    assert cache_dir() == Path.home() / ".cache" / "pureffcv"
    monkeypatch.setenv("PUREFFCV_DATA", "/data/demo")
    assert cache_dir() == Path("/data/demo")
    monkeypatch.delenv("PUREFFCV_DATA")
    monkeypatch.setenv("PUREFFCV_CACHE", "/old/place")
    with pytest.warns(FutureWarning, match="set PUREFFCV_DATA"):
        assert cache_dir() == Path("/old/place")


def test_fit_help_ends_with_the_options_not_a_parser_complaint():
    done = subprocess.run([PUREFFCV, "fit", "--help"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0
    assert "lacks type and help" not in done.stdout + done.stderr
    assert "--convert {true,false}" in done.stdout


def test_convert_before_fit_reports_skipped_images_on_the_console(tmp_path, capsys):
    from pipelines.missing_betons import convert_missing

    folder = image_folder(tmp_path / "train", ["red", "blue"], per_class=2)
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    beton = tmp_path / "train.beton"
    convert_missing([("train", str(beton), str(folder))], rank=0)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"train: converting {folder} -> {beton}",
                   f"train: 1 unreadable image(s) skipped, listed in "
                   f"{tmp_path / 'train.skipped.txt'}"]
