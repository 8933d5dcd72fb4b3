"""The researcher's loop from the CLI on tiny generated data: fit -> validate -> test ->
predict (file contents checked against an independent evaluation of the checkpoint), exact
resume (3 epochs == 2 + 1 resumed), and the pre-training checks of each subcommand."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.cli import main
from tests.pipelines.train_helpers import tinted_beton, write_spec


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    test = tinted_beton(root / "test.beton", 13, seed=900)
    (root / "test.classes.json").write_text(json.dumps({n: i for i, n in enumerate(
        ["red", "green", "blue", "yellow"])}))
    return {"root": root, "spec": str(write_spec(root / "spec.yaml", batch=8)),
            "train": str(tinted_beton(root / "train.beton", 32)),
            "val": str(tinted_beton(root / "val.beton", 12, seed=500)), "test": str(test)}


def args(command, data, out, **overrides):
    values = {"--seed_everything": "0", "--data.spec": data["spec"],
              "--data.train_path": data["train"], "--data.val_path": data["val"],
              "--model.arch": "resnet18", "--model.width": "8", "--model.num_classes": "4",
              "--model.optimizer": "adamw", "--model.lr": "0.003", "--model.schedule": "cosine",
              "--trainer.max_epochs": "2", "--trainer.accelerator": "cpu",
              "--trainer.devices": "1", "--trainer.enable_progress_bar": "false",
              "--trainer.enable_model_summary": "false",
              "--trainer.logger": "lightning.pytorch.loggers.CSVLogger",
              "--trainer.logger.save_dir": str(out), "--trainer.logger.name": "run",
              "--trainer.default_root_dir": str(out)}
    values.update(overrides)
    return [command] + [item for pair in values.items() if pair[1] is not None for item in pair]


def metrics(out: Path, version: int = 0):
    with open(out / "run" / f"version_{version}" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def reference(ckpt: Path, data, beton: str):
    """(logits, labels) of every sample of ``beton``, in order, computed outside Lightning:
    the checkpoint's weights, the spec's val pipeline, the mean of image and mirror logits."""
    from compiler import compile_spec
    from pipelines import loading
    from pipelines.classifier import ImageClassifier

    model = ImageClassifier.load_from_checkpoint(ckpt, map_location="cpu").eval()
    loader = compile_spec(data["spec"], "val", device="cpu").loader(beton, order="sequential")
    logits, labels = [], []
    with torch.no_grad():
        for images, targets in loading.epoch(loader):
            logits.append((model(images) + model(images.flip(3))) / 2)
            labels.append(targets.reshape(-1).clone())
    return torch.cat(logits), torch.cat(labels)


@pytest.fixture(scope="module")
def fitted(data):
    out = data["root"] / "fit"
    assert main(args("fit", data, out)) == 0
    return out


def test_fit_writes_last_every_epoch_and_logs_train_loss(fitted):
    rows = metrics(fitted)
    # 4 steps per epoch, fewer than Lightning's default log_every_n_steps (50): still logged
    assert [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len([r for r in rows if r.get("val/top1")]) == 2
    last = torch.load(fitted / "run" / "version_0" / "checkpoints" / "last.ckpt",
                      map_location="cpu", weights_only=False)
    assert last["epoch"] == 1 and last["global_step"] == 8  # the end of the last epoch


def test_validate_test_and_predict_report_what_the_checkpoint_computes(data, fitted, capsys):
    ckpt = fitted / "run" / "version_0" / "checkpoints" / "last.ckpt"
    out = data["root"] / "eval"
    common = {"--ckpt_path": str(ckpt), "--data.test_path": data["test"]}

    assert main(args("validate", data, out, **common)) == 0
    [val] = metrics(out, 0)
    logits, labels = reference(ckpt, data, data["val"])
    assert float(val["val/top1"]) == pytest.approx(
        (logits.argmax(1) == labels).float().mean().item(), abs=1e-6)
    assert float(val["val/loss"]) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-4)

    assert main(args("test", data, out, **common)) == 0
    [test] = metrics(out, 1)
    logits, labels = reference(ckpt, data, data["test"])
    assert float(test["test/top1"]) == pytest.approx(
        (logits.argmax(1) == labels).float().mean().item(), abs=1e-6)
    assert float(test["test/loss"]) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-4)

    predictions = out / "predictions.csv"
    capsys.readouterr()
    assert main(args("predict", data, out, **common, **{"--output": str(predictions),
                                                       "--top_k": "3"})) == 0
    assert f"predictions written to {predictions}" in capsys.readouterr().out
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    names = ["red", "green", "blue", "yellow"]
    assert list(rows[0]) == ["index", "label", "label_name", "class_1", "name_1", "prob_1",
                             "class_2", "name_2", "prob_2", "class_3", "name_3", "prob_3"]
    assert [int(r["index"]) for r in rows] == list(range(13))
    assert [int(r["label"]) for r in rows] == labels.tolist() == [i % 4 for i in range(13)]
    assert [r["label_name"] for r in rows] == [names[i % 4] for i in range(13)]
    probabilities = logits.softmax(1)
    top = probabilities.topk(3, dim=1)
    for row, classes, probs in zip(rows, top.indices, top.values):
        assert [int(row[f"class_{k}"]) for k in (1, 2, 3)] == classes.tolist()
        assert [row[f"name_{k}"] for k in (1, 2, 3)] == [names[c] for c in classes]
        assert [float(row[f"prob_{k}"]) for k in (1, 2, 3)] == pytest.approx(
            probs.tolist(), abs=2e-6)


def test_resuming_from_last_ckpt_equals_the_uninterrupted_run(data, tmp_path):
    record = "tests.pipelines.train_helpers.RecordImages"
    stop = "tests.pipelines.train_helpers.StopAfter"
    whole, part = tmp_path / "whole", tmp_path / "part"
    common = {"--trainer.max_epochs": "3", "--trainer.log_every_n_steps": "1",
              "--trainer.callbacks+": record}
    assert main(args("fit", data, whole, **common,
                     **{"--trainer.callbacks.path": str(whole / "images.jsonl")})) == 0
    # the same run, stopped after 2 of its 3 epochs, then resumed from last.ckpt
    interrupted = args("fit", data, part, **common,
                       **{"--trainer.callbacks.path": str(part / "images.jsonl")})
    assert main(interrupted + ["--trainer.callbacks+", stop,
                               "--trainer.callbacks.epochs", "2"]) == 0
    ckpt = part / "run" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 1
    assert main(interrupted + ["--ckpt_path", str(ckpt)]) == 0

    def steps(out, versions):
        rows = [r for v in versions for r in metrics(out, v)]
        return [(r["step"], r["train/loss"], r["train/lr"]) for r in rows if r.get("train/loss")]

    def evaluations(out, versions):
        rows = [r for v in versions for r in metrics(out, v)]
        return [(r["epoch"], r["val/loss"], r["val/top1"]) for r in rows if r.get("val/loss")]

    assert len(steps(whole, [0])) == 12
    assert steps(part, [0, 1]) == steps(whole, [0])  # same losses and rates, to the digit
    assert evaluations(part, [0, 1]) == evaluations(whole, [0])
    images = [(whole / "images.jsonl").read_text().splitlines(),
              (part / "images.jsonl").read_text().splitlines()]
    assert len(images[0]) == 12 and images[1] == images[0]  # same augmentation bytes
    weights = [torch.load(p / "run" / v / "checkpoints" / "last.ckpt", map_location="cpu",
                          weights_only=False)["state_dict"]
               for p, v in ((whole, "version_0"), (part, "version_1"))]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("command,overrides,message", [
    ("test", {}, "no test data: set data.test_path (--data.test_path FILE.beton)"),
    ("validate", {"--data.val_path": None}, "no validation data: set data.val_path"),
    ("predict", {"--output": "out.txt", "--data.test_path": "x.beton"},
     "out.txt: predictions are written as .csv or .parquet"),
    ("validate", {"--ckpt_path": "gone.ckpt"}, "gone.ckpt: no such checkpoint file"),
])
def test_evaluation_mistakes_are_one_line(data, tmp_path, capsys, command, overrides, message):
    assert main(args(command, data, tmp_path / "out", **overrides)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"pureffcv {command}: ") and message in last


def test_train_is_an_alias_of_fit():
    from pipelines.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--x"]).run.__module__ == "pipelines.commands.train"
    help_text = parser.format_help()
    for name in ("fit", "validate", "test", "predict", "train"):
        assert f"    {name}" in help_text


def tinted_folder(root: Path, n: int, seed: int) -> Path:
    from PIL import Image

    from tests.conftest import structured_image
    from tests.pipelines.train_helpers import TINTS

    for i in range(n):
        image = np.round(0.5 * structured_image(36, 36, seed + i) + 0.5 * TINTS[i % 4])
        (root / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(root / f"c{i % 4}" / f"{i:03d}.png")
    return root


def test_convert_true_converts_the_folders_before_the_data_check(data, tmp_path, capsys):
    train, val = tinted_folder(tmp_path / "train", 16, 0), tinted_folder(tmp_path / "val", 8, 50)
    (train / "c2" / "999.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    betons = tmp_path / "betons"
    argv = args("fit", data, tmp_path / "out", **{
        "--data.train_path": str(betons / "train.beton"),
        "--data.val_path": str(betons / "val.beton"), "--data.train_folder": str(train),
        "--data.val_folder": str(val), "--convert": "true", "--trainer.max_epochs": "1"})
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"train: converting {train} -> {betons / 'train.beton'}" in out
    from pipelines.data_checks import beton_labels

    assert sorted(beton_labels(str(betons / "train.beton")).tolist()) == sorted(
        i % 4 for i in range(16))  # the damaged file skipped
    assert "999.jpg" in (betons / "train.skipped.txt").read_text()
    assert json.loads((betons / "val.classes.json").read_text()) == {
        "c0": 0, "c1": 1, "c2": 2, "c3": 3}
    assert [r for r in metrics(tmp_path / "out") if r.get("val/top1")]
    from pipelines.datamodule import FFCVDataModule

    written = (betons / "train.beton").stat().st_mtime_ns
    FFCVDataModule(data["spec"], str(betons / "train.beton"), str(betons / "val.beton"),
                   train_folder=str(train), val_folder=str(val), convert=True).convert_missing()
    assert "converting" not in capsys.readouterr().out  # a later run reuses the files
    assert (betons / "train.beton").stat().st_mtime_ns == written


def test_temporal_repeat_applies_to_validation_test_and_predict_batches(data, tmp_path):
    import lightning.pytorch as pl

    from pipelines.datamodule import FFCVDataModule

    spec = tmp_path / "temporal.yaml"
    text = Path(data["spec"]).read_text()
    head, val = text.split("  val:\n")
    val = val.replace("    label: int\n", "    label: int\n    batch: [{temporal_repeat: {steps: 3}}]\n")
    spec.write_text(head + "  val:\n" + val)

    class Shapes(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.shapes = []

        def validation_step(self, batch, batch_idx):
            self.shapes.append(("val", tuple(batch[0].shape)))

        def test_step(self, batch, batch_idx):
            self.shapes.append(("test", tuple(batch[0].shape)))

        def predict_step(self, batch, batch_idx):
            self.shapes.append(("predict", tuple(batch[0].shape)))

    model = Shapes()
    module = FFCVDataModule(str(spec), val_path=data["val"], test_path=data["test"])
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.validate(model, module)
    trainer.test(model, module)
    trainer.predict(model, module)
    assert model.shapes == [("val", (8, 3, 3, 32, 32)), ("val", (4, 3, 3, 32, 32)),
                            ("test", (8, 3, 3, 32, 32)), ("test", (5, 3, 3, 32, 32)),
                            ("predict", (8, 3, 3, 32, 32)), ("predict", (5, 3, 3, 32, 32))]


def test_tensorboard_without_the_extra_is_one_line(data, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here: the message is for environments without it")
    assert main(args("fit", data, tmp_path, **{
        "--trainer.logger": "TensorBoardLogger", "--trainer.logger.save_dir": str(tmp_path),
        "--trainer.logger.name": None})) == 1
    assert capsys.readouterr().err.strip() == (
        "pureffcv fit: TensorBoardLogger needs tensorboard: pip install 'pureffcv[tensorboard]' "
        "(or log to CSV: --trainer.logger CSVLogger --trainer.logger.save_dir runs)")


def test_the_config_saved_by_fit_drives_validate_and_predict(data, fitted, tmp_path, capsys):
    run = fitted / "run" / "version_0"
    common = ["--config", str(run / "config.yaml"), "--ckpt_path",
              str(run / "checkpoints" / "last.ckpt"), "--trainer.logger", "false"]
    capsys.readouterr()
    assert main(["validate", *common]) == 0
    assert "val/top1" in capsys.readouterr().out
    out = tmp_path / "p.csv"
    assert main(["predict", *common, "--data.predict_path", data["val"], "--output",
                 str(out)]) == 0
    with open(out) as f:
        assert [int(r["index"]) for r in csv.DictReader(f)] == list(range(12))
