"""Field mapping and target types: a .beton written by FFCV's own writer with fields
``target`` and ``img`` trained through a spec mapping; multi-label (multi-hot) training with
BCE and mAP/F1 rising above chance; float-vector targets."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.cli import main
from tests.conftest import structured_image
from tests.pipelines.train_helpers import TINTS, tinted_beton, write_spec


def write_fields(path: Path, fields: dict, samples) -> Path:
    """``samples`` (tuples in ``fields`` order) through FFCV's DatasetWriter."""
    from ffcv.writer import DatasetWriter

    class Samples:
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return samples[i]

    DatasetWriter(str(path), fields, num_workers=1).from_indexed_dataset(Samples(), chunksize=8)
    return path


def tinted(n: int, seed: int):
    return [np.round(0.5 * structured_image(36, 36, seed + i) + 0.5 * TINTS[i % 4])
            .astype(np.uint8) for i in range(n)]


MAPPED = """\
    image:
      field: img
"""


def mapped_spec(path: Path) -> Path:
    text = write_spec(path).read_text()
    text = text.replace("    image:\n", MAPPED).replace("    label: int\n",
                                                       "    label: {field: target}\n")
    path.write_text(text)
    return path


def test_a_beton_with_other_field_names_reads_through_the_spec_mapping(tmp_path):
    from ffcv.fields import FloatField, IntField, RGBImageField

    from compiler import compile_spec
    from pipelines import loading

    images = tinted(12, 0)
    # other names, other order, and an extra field the pipeline does not read
    ours = write_fields(tmp_path / "ours.beton",
                        {"target": IntField(), "weight": FloatField(), "img": RGBImageField()},
                        [(i % 4, 0.5, im) for i, im in enumerate(images)])
    default = tinted_beton(tmp_path / "default.beton", 12)
    spec, plain = mapped_spec(tmp_path / "mapped.yaml"), write_spec(tmp_path / "plain.yaml")

    def batches(spec, beton):
        loader = compile_spec(spec, "val", device="cpu").loader(beton, order="sequential")
        return [tuple(t.clone() for t in batch) for batch in loading.epoch(loader)]

    got, want = batches(spec, ours), batches(plain, default)
    assert len(got) == len(want) == 2
    for (images_a, labels_a), (images_b, labels_b) in zip(got, want):
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    with pytest.raises(Exception, match="has no 'img' field"):
        compile_spec(spec, "val", device="cpu").loader(default)


def test_fit_on_img_target_fields(tmp_path):
    from ffcv.fields import IntField, RGBImageField

    def beton(name, n, seed):
        return str(write_fields(tmp_path / name, {"img": RGBImageField(), "target": IntField()},
                                [(im, i % 4) for i, im in enumerate(tinted(n, seed))]))

    out = tmp_path / "out"
    argv = ["fit", "--data.spec", str(mapped_spec(tmp_path / "spec.yaml")),
            "--data.train_path", beton("train.beton", 32, 0),
            "--data.val_path", beton("val.beton", 12, 500), "--model.arch", "resnet18",
            "--model.width", "8", "--model.num_classes", "4", "--trainer.max_epochs", "1",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir", str(out)]
    assert main(argv) == 0
    with open(next(out.glob("lightning_logs/version_0/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert [r for r in rows if r.get("val/top1")] and [r for r in rows if r.get("train/loss")]
    assert main(argv[:-6] + ["--model.num_classes", "3"]) == 1  # labels checked via 'target'


MULTI = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 32, scale: [0.8, 1.0]}}
      cpu: [{horizontal_flip: {p: 0.5}}]
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    label: {type: multi_hot, num_classes: 4}
    loader: {batch_size: 16, order: random, drop_last: true, num_workers: 1}
  val:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    label: {type: multi_hot, num_classes: 4}
    loader: {batch_size: 16, num_workers: 1}
"""


def multi_label_set(n: int, seed: int):
    """Grey structured images with a solid patch of each present class's tint (classes
    present independently with p = 0.5, at least one): which tints are in the picture?"""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        present = rng.random(4) < 0.5
        if not present.any():
            present[rng.integers(4)] = True
        image = structured_image(36, 36, seed + i).mean(2, keepdims=True).repeat(3, 2) * 0.5
        for c in np.flatnonzero(present):
            y, x = rng.integers(0, 24, 2)
            image[y:y + 12, x:x + 12] = TINTS[c]
        samples.append((image.astype(np.uint8), present.astype(np.uint8)))
    return samples


def test_multi_label_fit_beats_chance_and_predicts_sigmoid_scores(tmp_path):
    from ffcv.fields import NDArrayField, RGBImageField

    def beton(name, n, seed):
        fields = {"image": RGBImageField(), "label": NDArrayField(np.dtype("uint8"), (4,))}
        return str(write_fields(tmp_path / name, fields, multi_label_set(n, seed)))

    spec = tmp_path / "multi.yaml"
    spec.write_text(MULTI)
    train, val = beton("train.beton", 96, 0), beton("val.beton", 32, 1000)
    out = tmp_path / "out"
    common = ["--data.spec", str(spec), "--data.train_path", train, "--data.val_path", val,
              "--model.arch", "resnet18", "--model.width", "8", "--model.num_classes", "4",
              "--model.multilabel", "true", "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false", "--seed_everything", "0",
              "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
              "--trainer.logger.save_dir", str(out)]
    assert main(["fit", *common, "--model.optimizer", "adamw", "--model.lr", "0.01",
                 "--model.schedule", "cosine", "--trainer.max_epochs", "6"]) == 0
    with open(out / "lightning_logs" / "version_0" / "metrics.csv") as f:
        evaluations = [r for r in csv.DictReader(f) if r.get("val/map")]
    truth = np.stack([target for _, target in multi_label_set(32, 1000)])
    chance = truth.mean()  # the mAP of scores that carry no information: the positive rate
    assert float(evaluations[-1]["val/map"]) > chance + 0.25
    assert float(evaluations[-1]["val/f1"]) > 0.5
    ckpt = out / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    predictions = tmp_path / "p.csv"
    assert main(["predict", *common, "--ckpt_path", str(ckpt), "--output", str(predictions),
                 "--top_k", "4"]) == 0
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [" ".join(str(c) for c in np.flatnonzero(t))
                                          for t in truth]
    scores = np.array([[float(r[f"prob_{k}"]) for k in range(1, 5)] for r in rows])
    assert np.all(np.diff(scores, axis=1) <= 0)  # ranked
    assert not np.allclose(scores.sum(1), 1.0)  # sigmoid scores, not a softmax
    # the model's own threshold-0.5 decisions recover most labels
    decided = np.zeros_like(truth)
    for i, r in enumerate(rows):
        for k in range(1, 5):
            if float(r[f"prob_{k}"]) > 0.5:
                decided[i, int(r[f"class_{k}"])] = 1
    assert (decided == truth).mean() > 0.75


def test_a_model_and_spec_that_disagree_on_multilabel_is_one_line(tmp_path, capsys):
    from ffcv.fields import NDArrayField, RGBImageField

    spec = tmp_path / "multi.yaml"
    spec.write_text(MULTI)
    fields = {"image": RGBImageField(), "label": NDArrayField(np.dtype("uint8"), (4,))}
    beton = str(write_fields(tmp_path / "m.beton", fields, multi_label_set(8, 0)))
    argv = ["fit", "--data.spec", str(spec), "--data.train_path", beton, "--model.arch",
            "resnet18", "--model.num_classes", "4", "--trainer.accelerator", "cpu"]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv fit: {spec}: the train label type is multi_hot but the model's multilabel "
        f"is false; set --model.multilabel true")
    assert main(argv[:-4] + ["--model.num_classes", "5", "--model.multilabel", "true"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv fit: {beton}: targets have 4 entries but the model's num_classes is 5; "
        f"set it to 4")


def test_convert_writes_multi_hot_targets_from_a_csv(tmp_path, capsys):
    import json

    from ffcv.fields import NDArrayField
    from ffcv.fields.decoders import NDArrayDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.reader import Reader
    from PIL import Image

    from pipelines import loading

    folder = tmp_path / "photos"
    folder.mkdir()
    rows = [("a.png", "dog cat"), ("b.png", "cat"), ("c.png", ""), ("d.png", "bird;dog"),
            ("broken.png", "cat")]
    for i, (name, _) in enumerate(rows[:4]):
        Image.fromarray(structured_image(20, 20, seed=i)).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    table = tmp_path / "labels.csv"
    table.write_text("path,labels\n" + "".join(f"photos/{n},{l}\n" for n, l in rows))
    out = tmp_path / "multi.beton"
    assert main(["convert", str(table), str(out), "--workers", "1"]) == 0
    assert "4 written, 1 skipped" in capsys.readouterr().out
    assert json.loads((tmp_path / "multi.classes.json").read_text()) == {
        "bird": 0, "cat": 1, "dog": 2}
    handler = Reader(str(out)).handlers["label"]
    assert isinstance(handler, NDArrayField) and tuple(handler.shape) == (3,)
    loader = Loader(str(out), batch_size=4, order=OrderOption.SEQUENTIAL, num_workers=1,
                    pipelines={"image": None, "label": [NDArrayDecoder()]})
    [(targets,)] = [tuple(np.array(t) for t in batch) for batch in loading.epoch(loader)]
    assert targets.tolist() == [[0, 1, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]]
    bad = tmp_path / "bad.csv"
    bad.write_text("photos/a.png,cat,extra\n")
    assert main(["convert", str(bad), str(tmp_path / "x.beton")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv convert: {bad}:1: expected 'path,labels' (2 columns), got 3 column(s)")


def test_float_vector_targets_arrive_as_stored_and_train_as_soft_targets(tmp_path):
    from ffcv.fields import NDArrayField, RGBImageField

    from compiler import compile_spec
    from pipelines import loading
    from pipelines.classifier import ImageClassifier

    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(4), 6).astype(np.float32)
    fields = {"image": RGBImageField(), "label": NDArrayField(np.dtype("float32"), (4,))}
    beton = write_fields(tmp_path / "soft.beton", fields,
                         [(im, soft[i]) for i, im in enumerate(tinted(6, 0))])
    spec = tmp_path / "soft.yaml"
    spec.write_text(MULTI.replace("type: multi_hot", "type: float"))
    loader = compile_spec(spec, "val", device="cpu").loader(beton, order="sequential")
    [(images, targets)] = [tuple(t.clone() for t in b) for b in loading.epoch(loader)]
    assert targets.dtype == torch.float32 and torch.equal(targets, torch.from_numpy(soft))
    model = ImageClassifier(arch="resnet18", num_classes=4, width=8)
    logits = model(images)
    expected = -(targets * logits.log_softmax(1)).sum(1).mean()
    from pipelines.classifier import classification_loss

    assert classification_loss(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)
