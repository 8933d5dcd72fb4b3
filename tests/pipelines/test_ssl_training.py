"""The simclr task through FFCVDataModule on small .beton files: the ``(views, labels)`` batch
form, the checks that refuse what cannot work (views in the fallback, in evaluation splits,
for a classifier), and a short fit whose loss goes down and whose kNN monitor beats chance."""
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from compiler import compile_spec
from pipelines.classifier import ImageClassifier
from pipelines.data_checks import DataError
from pipelines.datamodule import FFCVDataModule
from tests.pipelines.train_helpers import tinted_beton, write_spec

#: specs/simclr.yaml at 32 px (blur kernel 3: about 10% of the side), batches of 16
SIMCLR_VIEWS = """\
        view:
          count: 2
          decode: {random_resized_crop: {size: 32, scale: [0.08, 1.0], ratio: [0.75, 1.3333333]}}
          cpu:
            - color_jitter: {brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2, p: 0.8}
            - grayscale: {p: 0.2}
            - gaussian_blur: {kernel_size: 3, sigma: [0.1, 2.0], p: 0.5}
          device: {dtype: float32, ops: [{horizontal_flip: {p: 0.5}}, *normalize]}
"""

#: two views of different sizes: copies of `fixed` are the val split's center crop exactly
TWO_VIEWS = """\
        fixed:
          count: 2
          decode: {center_crop: {size: 32, ratio: 1.0}}
          device: {dtype: float32, ops: [*normalize]}
        local:
          count: 3
          decode: {random_resized_crop: {size: 16, scale: [0.05, 0.4]}}
          device: {dtype: float32, ops: [{horizontal_flip: {p: 0.5}}, *normalize]}
"""

SPEC = """\
version: 1
seed: 0
x-normalize: &normalize {{normalize: {{mean: imagenet, std: imagenet}}}}
splits:
  train:
    image:
      views:
{views}    label: int
    loader: {{batch_size: 16, order: {order}, drop_last: true, num_workers: 2}}
  val:
    image:
      decode: {{center_crop: {{size: 32, ratio: 1.0}}}}
      device: {{dtype: float32, ops: [*normalize]}}
    label: int
    loader: {{batch_size: 32, num_workers: 2}}
"""


def write_views_spec(path, views=SIMCLR_VIEWS, order="random"):
    path.write_text(SPEC.format(views=views, order=order))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    return {"root": root, "spec": write_views_spec(root / "simclr.yaml"),
            "two_views": write_views_spec(root / "two_views.yaml", TWO_VIEWS, "sequential"),
            "plain": str(write_spec(root / "plain.yaml")),
            "train": str(tinted_beton(root / "train.beton", 96)),
            "val": str(tinted_beton(root / "val.beton", 48, seed=1000))}


def trainer(root, **kwargs):
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, default_root_dir=root,
                   num_sanity_val_steps=0)
    options.update(kwargs)
    return pl.Trainer(**options)


def simclr_model(**kwargs):
    options = dict(task="simclr", arch="resnet18", num_classes=4, width=8, proj_dim=32,
                   optimizer="adamw", lr=3e-3, weight_decay=1e-4, schedule="cosine")
    options.update(kwargs)
    return ImageClassifier(**options)


def copied(batch):
    """A copy of a batch (on the CPU its tensors are the loader's buffers, refilled later)."""
    if isinstance(batch, dict):
        return {key: copied(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(copied(value) for value in batch)
    return batch.clone()


class Batches(pl.Callback):
    """The first training and validation batches as the model receives them."""

    def __init__(self):
        self.train, self.val = None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.train is None:
            self.train = copied(batch)

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if self.val is None:
            self.val = copied(batch)


def test_a_views_split_serves_views_and_labels(data):
    """``(views, labels)``: views by name in the spec's order, a tensor per copy; copy k's row
    i is sample i (the `fixed` copies are the val split's center crops of the same samples)."""
    seen = Batches()
    module = FFCVDataModule(data["two_views"], data["train"], data["train"])
    trainer(data["root"], max_epochs=1, limit_train_batches=1, limit_val_batches=1,
            callbacks=[seen]).fit(simclr_model(), module)
    views, labels = seen.train
    assert list(views) == ["fixed", "local"]
    assert [tuple(t.shape) for t in views["fixed"]] == [(16, 3, 32, 32)] * 2
    assert [tuple(t.shape) for t in views["local"]] == [(16, 3, 16, 16)] * 3
    assert all(t.dtype == torch.float32 and t.is_contiguous(memory_format=torch.channels_last)
               for copies in views.values() for t in copies)
    assert labels.dtype == torch.int64 and labels.reshape(-1).tolist() == [i % 4 for i in
                                                                            range(16)]
    images, val_labels = seen.val  # the same .beton in order through the val split
    torch.testing.assert_close(views["fixed"][0], views["fixed"][1])
    torch.testing.assert_close(views["fixed"][0], images[:16], atol=0, rtol=0)
    assert val_labels[:16].reshape(-1).tolist() == labels.reshape(-1).tolist()
    assert not torch.equal(views["local"][0], views["local"][1])  # each copy its own draws


def test_the_batch_form_matches_group_views(data):
    compiled = compile_spec(data["two_views"], "train", device="cpu")
    assert compiled.outputs == ("fixed_0", "fixed_1", "local_0", "local_1", "local_2", "label")


def test_views_the_model_or_the_data_cannot_use_are_one_line_errors(data, tmp_path):
    cases = [
        (FFCVDataModule(data["spec"], data["train"], data["val"]), dict(task="classification"),
         "the train split has views (batches of several crops per image) but the model's task "
         "is classification; set --model.task simclr, or read one image per sample "
         "(image.decode)"),
        (FFCVDataModule(data["plain"], data["train"], data["val"]), dict(task="simclr"),
         "the simclr task trains on two or more views of each image, but the train split has "
         "no views; give its image views (specs/simclr.yaml)"),
        (FFCVDataModule(data["spec"], data["train"], data["val"], val_split="train"),
         dict(task="simclr"), "the train split has views, but only the training split may: "
                              "evaluation reads one image per sample (image.decode)"),
    ]
    for module, model, message in cases:
        with pytest.raises(DataError) as error:
            module.check(4, task=model["task"])
        assert str(error.value).endswith(message) and "\n" not in str(error.value)
    module = FFCVDataModule(data["spec"], data["train"], data["val"], test_path=data["val"])
    with pytest.raises(DataError, match="the simclr task trains a backbone and monitors it by "
                                        "kNN during pureffcv fit; it has no test"):
        module.check(4, stage="test", task="simclr")


def test_the_fallback_refuses_views_in_one_line(data, tmp_path):
    from pipelines.fallback import FallbackError, FallbackLoader

    folder = tmp_path / "images" / "a"
    folder.mkdir(parents=True)
    module = FFCVDataModule(data["spec"], str(tmp_path / "missing.beton"),
                            train_folder=str(tmp_path / "images"))
    with pytest.raises(DataError) as error:
        module.check(4, task="simclr")
    assert str(error.value) == (f"train: the image-folder fallback serves one image per sample, "
                                f"not views; convert {tmp_path / 'images'} first "
                                f"(--data.convert true or pureffcv convert)")
    with pytest.raises(FallbackError, match="the image-folder fallback serves one image per "
                                            "sample, not views"):
        FallbackLoader(compile_spec(data["spec"], "train", device="cpu"), tmp_path / "images")


def test_progressive_resizing_with_views_is_refused(data):
    from pipelines.progressive import ProgressiveResizing

    module = FFCVDataModule(data["spec"], data["train"], data["val"],
                            progressive=ProgressiveResizing(16, 32, 0, 2))
    with pytest.raises(DataError, match="progressive resizing resizes one train decoder; the "
                                        "train split has views"):
        module.check(4, task="simclr")


def epoch_rows(metrics_csv):
    """epoch -> (train/loss_epoch, val/knn_top1, val/knn_chance) from a CSVLogger file."""
    import csv

    rows = {}
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            for key in ("train/loss_epoch", "val/knn_top1", "val/knn_chance"):
                if row.get(key):
                    rows.setdefault(int(row["epoch"]), {})[key] = float(row[key])
    return rows


#: what val/knn_top1, averaged over the last 3 epochs of the 20-epoch run below, must reach.
#: The untrained backbone (lr 0, BatchNorm statistics adapting) reaches 0.27-0.60 in any one
#: epoch of such a run (0.51 over its last 3) and 0.53-0.65 on another host; the trained run
#: 0.91 at its end on one 2-core host and 0.76-0.84 over its last 3 epochs on another (0.81):
#: the trajectory differs with the host's floating-point paths, so a single epoch of a
#: shorter run is not a reliable bar (6 epochs: 0.81 on one host, 0.58 on the other)
KNN_BAR = 0.70
EPOCHS = 20


@pytest.mark.timeout(600)
def test_the_simclr_demo_run_lowers_the_loss_and_beats_chance_by_knn(tmp_path):
    """``pureffcv fit --config specs/runs/simclr_demo.yaml`` on the quick demo data for its
    20 epochs: the epoch's mean NT-Xent loss goes down and the kNN monitor ends well above
    chance and above what the untrained backbone reaches."""
    pytest.importorskip("skimage")
    from pipelines.cli import main
    from pipelines.demo import QUICK, prepare_data

    betons = prepare_data(QUICK, tmp_path)
    config = Path(__file__).resolve().parents[2] / "specs" / "runs" / "simclr_demo.yaml"
    args = ["fit", "--config", str(config), "--data.train_path", str(betons["train"]),
            "--data.val_path", str(betons["val"]), "--trainer.max_epochs", str(EPOCHS),
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
            "--trainer.default_root_dir", str(tmp_path)]
    assert main(args) == 0
    rows = epoch_rows(next((tmp_path / "runs" / "simclr_demo").glob("version_*/metrics.csv")))
    losses = [rows[e]["train/loss_epoch"] for e in range(EPOCHS)]
    last = [rows[e]["val/knn_top1"] for e in range(EPOCHS - 3, EPOCHS)]
    print(f"loss per epoch {[round(v, 3) for v in losses]}, last val/knn_top1 {last}")
    assert losses[-1] < losses[0] - 0.3
    assert rows[EPOCHS - 1]["val/knn_chance"] == 0.125
    assert sum(last) / 3 >= KNN_BAR, last
