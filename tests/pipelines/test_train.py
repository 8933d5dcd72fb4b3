"""``pureffcv train`` (LightningCLI): one-line user errors, and a 2-process DDP run on CPU."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest

from pipelines.classifier import ImageClassifier
from pipelines.cli import main
from pipelines.datamodule import FFCVDataModule
from tests.pipelines.train_helpers import tinted_beton, write_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {"root": root, "spec": str(write_spec(root / "spec.yaml", order="quasi_random")),
            "train": str(tinted_beton(root / "train.beton", 32, labels=list(range(32)))),
            "val": str(tinted_beton(root / "val.beton", 27, seed=500))}


def cli_args(data, **overrides):
    args = {"--data.spec": data["spec"], "--data.train_path": data["train"],
            "--data.val_path": data["val"], "--model.arch": "resnet18", "--model.width": "8",
            "--model.num_classes": "32", "--trainer.max_epochs": "1",
            "--trainer.accelerator": "cpu", "--trainer.logger": "false",
            "--trainer.default_root_dir": str(data["root"] / "cli")}
    args.update(overrides)
    return ["train"] + [item for pair in args.items() for item in pair]


@pytest.mark.parametrize("overrides,message", [
    ({"--data.train_path": "nowhere.beton"}, "nowhere.beton: no such .beton file"),
    ({"--model.num_classes": "10"}, "labels go up to 31 (32 classes) but the model's "
                                    "num_classes is 10; set it to at least 32"),
    ({"--ckpt_path": "missing.ckpt"}, "missing.ckpt: no such checkpoint file"),
])
def test_user_mistakes_are_one_line_before_training(data, capsys, overrides, message):
    assert main(cli_args(data, **overrides)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pureffcv train: ") and err[-1].endswith(message)
    assert not (data["root"] / "cli").exists()  # nothing trained, nothing written


def test_spec_errors_are_one_line_with_the_position(data, capsys, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(Path(data["spec"]).read_text().replace("p: 0.5", "p: 1.5"))
    assert main(cli_args(data, **{"--data.spec": str(spec)})) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"pureffcv train: {spec}:7:") and "1.5" in last


def test_plan_errors_are_one_line_before_training(data, capsys, tmp_path):
    spec = tmp_path / "misplaced.yaml"  # loads, but its plan puts a torch op in the CPU stage
    spec.write_text(Path(data["spec"]).read_text().replace("horizontal_flip", "flip"))
    assert main(cli_args(data, **{"--data.spec": str(spec)})) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"pureffcv train: {spec}:7:14: 'flip' is a device (torch) op and cannot be in image.cpu "
        f"(torch ops run after the transfer to the device); put it under image.device.ops")
    assert not (data["root"] / "cli").exists()  # nothing trained, nothing written


RUN_CONFIG = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 2
  strategy: ddp
  max_epochs: 2
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {{save_dir: {out}, name: run}}
  callbacks:
    - class_path: tests.pipelines.train_helpers.RecordBatches
      init_args: {{out_dir: {out}/record}}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{dirpath: {out}/checkpoints, save_last: true}}
model: {{arch: resnet18, num_classes: 32, width: 8, lr: 0.1}}
data: {{spec: {spec}, train_path: {train}, val_path: {val}}}
"""


@pytest.mark.timeout(900)
def test_ddp_shards_training_and_validates_every_sample_once(data, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG.format(out=tmp_path, **data))
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "train", "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "quasi_random" not in done.stderr  # the spec's order runs, no fallback warned

    # training: per epoch, the ranks' samples (labels = sample index) are disjoint and cover all
    ranks = [json.loads((tmp_path / "record" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for epoch in ("0", "1"):
        seen = [ranks[r]["labels"][epoch] for r in (0, 1)]
        assert len(seen[0]) == len(seen[1]) == 16
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1]) == list(range(32))
    assert ranks[0]["labels"]["0"] != ranks[0]["labels"]["1"]  # reshuffled per epoch
    assert list((tmp_path / "run").glob("version_*/config.yaml"))  # resolved config saved

    # validation: 27 samples over 2 ranks (13 + 14; FFCV's distributed mode would pad them to
    # 28); the metrics logged under DDP equal a 1-process validation of the same checkpoint
    with open(next((tmp_path / "run").glob("version_*/metrics.csv"))) as f:
        logged = [row for row in csv.DictReader(f) if row.get("val/loss")][-1]
    model = ImageClassifier.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    single = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    [metrics] = single.validate(model, FFCVDataModule(data["spec"], val_path=data["val"]))
    assert float(logged["val/loss"]) == pytest.approx(metrics["val/loss"], rel=1e-5)
    assert float(logged["val/top1"]) == pytest.approx(metrics["val/top1"], abs=1e-7)
    assert float(logged["val/top5"]) == pytest.approx(metrics["val/top5"], abs=1e-7)
