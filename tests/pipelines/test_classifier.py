"""The LightningModule: loss, optimizer groups, schedules, flip TTA, resume; on plain
in-memory batches (the FFCV side is tested in test_datamodule.py)."""
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pipelines.classifier import ImageClassifier, classification_loss, parameter_groups
from pipelines.progressive import ProgressiveResizing
from pipelines.schedules import cosine_factor, lr_factor, step_factor, triangular_factor


def log_softmax_np(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_label_smoothing_loss_matches_the_definition():
    logits = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.25]]
    labels = [0, 2]
    eps, k = 0.1, 3
    q = np.full((2, 3), eps / k)
    q[[0, 1], labels] += 1 - eps
    expected = -(q * log_softmax_np(logits)).sum(axis=1).mean()
    got = classification_loss(torch.tensor(logits), torch.tensor(labels), label_smoothing=eps)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    as_column = classification_loss(torch.tensor(logits), torch.tensor([[0], [2]]), eps)
    assert as_column.item() == pytest.approx(expected, rel=1e-6)  # FFCV's (B, 1) labels


def test_soft_targets_are_used_as_given():
    logits = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.25]]
    soft = [[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]]
    expected = -(np.array(soft) * log_softmax_np(logits)).sum(axis=1).mean()
    got = classification_loss(torch.tensor(logits), torch.tensor(soft), label_smoothing=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_weight_decay_skips_batch_norm_and_biases():
    model = ImageClassifier(arch="resnet18", num_classes=10, width=8).model
    decay, no_decay = parameter_groups(model, 1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert {"conv1.weight", "layer1.0.conv2.weight", "fc.weight"} <= decayed
    assert {"bn1.weight", "bn1.bias", "layer2.0.downsample.1.weight", "fc.bias"} <= undecayed
    assert all(n.endswith(".weight") and "bn" not in n and "downsample.1" not in n
               for n in decayed)
    assert len(decayed) + len(undecayed) == len(names)


def test_step_schedule_by_hand():
    assert step_factor(0) == 1.0 and step_factor(29.99) == 1.0
    assert step_factor(30) == pytest.approx(0.1) and step_factor(65) == pytest.approx(0.01)
    assert step_factor(5, step_length=2, step_ratio=0.5) == 0.25


def test_cosine_schedule_by_hand():
    assert cosine_factor(0, 10) == 1.0
    assert cosine_factor(5, 10) == pytest.approx(0.5)
    assert cosine_factor(2.5, 10) == pytest.approx((1 + math.sqrt(0.5)) / 2)
    assert cosine_factor(10, 10) == pytest.approx(0.0)
    assert cosine_factor(1, 10, warmup_epochs=2) == 0.5  # linear warm-up
    assert cosine_factor(6, 10, warmup_epochs=2) == pytest.approx(0.5)  # half-way after it


def test_triangular_schedule_is_ffcv_imagenets_ramp():
    assert triangular_factor(0, 88, peak_epoch=2) == pytest.approx(1e-4)
    assert triangular_factor(1, 88, peak_epoch=2) == pytest.approx((1e-4 + 1) / 2)
    assert triangular_factor(2, 88, peak_epoch=2) == 1.0
    assert triangular_factor(45, 88, peak_epoch=2) == pytest.approx(0.5)
    assert triangular_factor(88, 88, peak_epoch=2) == 0.0
    assert lr_factor("triangular", 45, 88, peak_epoch=2) == triangular_factor(45, 88, 2)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        lr_factor("linear", 0, 10)


def test_progressive_resizing_follows_ffcv_imagenets_rn50_ramp():
    ramp = ProgressiveResizing(start_size=160, end_size=192, start_epoch=65, end_epoch=76)
    # by hand: 160 + 32 (e - 65) / 11, rounded to a multiple of 32: 5.45 -> 5, 5.55 -> 6
    sizes = {e: ramp.size_at(e) for e in range(0, 90)}
    assert all(sizes[e] == 160 for e in range(0, 71))
    assert all(sizes[e] == 192 for e in range(71, 90))
    wide = ProgressiveResizing(start_size=64, end_size=160, start_epoch=2, end_epoch=5, step=16)
    assert [wide.size_at(e) for e in range(7)] == [64, 64, 64, 96, 128, 160, 160]
    with pytest.raises(ValueError, match="start_size <= end_size"):
        ProgressiveResizing(start_size=192, end_size=160)


def tiny_batches(n=24, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    labels = torch.arange(n) % classes
    return DataLoader(TensorDataset(images, labels), batch_size=8)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\(\)`")
def test_flip_tta_makes_validation_mirror_invariant():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for tta in (True, False):
        model = ImageClassifier(arch="resnet18", num_classes=4, width=8, flip_tta=tta).eval()
        losses = []
        for batch in (images, images.flip(3)):
            model.val_loss.reset()
            with torch.no_grad():
                model.validation_step((batch, labels), 0)
            losses.append(model.val_loss.compute().item())
        assert (losses[0] == losses[1]) is tta


class RecordLR(pl.Callback):
    def __init__(self):
        self.seen = []  # (epoch, batch, lr) as the optimizer steps with it

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.seen.append((trainer.current_epoch, batch_idx, lr))


class StopAfter(pl.Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


def fit(root, ckpt_path=None, stop_after=4):
    model = ImageClassifier(arch="resnet18", num_classes=4, width=8, lr=0.2,
                            schedule="triangular", peak_epoch=1)
    record = RecordLR()
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=root, callbacks=[record, StopAfter(stop_after)])
    trainer.fit(model, tiny_batches(), tiny_batches(8), ckpt_path=ckpt_path)
    return record.seen


def test_lr_follows_the_schedule_per_step_and_resumes_where_it_stopped(tmp_path):
    # 3 batches per epoch; triangular over 4 epochs peaking at 1: 0.2 * interp(e + b/3)
    def expected(epochs):
        return [(e, b, pytest.approx(0.2 * np.interp(e + b / 3, [0, 1, 4], [1e-4, 1.0, 0.0])))
                for e in epochs for b in range(3)]

    assert fit(tmp_path / "a", stop_after=2) == expected([0, 1])
    checkpoints = list((tmp_path / "a").rglob("*.ckpt"))
    assert [c.name for c in checkpoints] == ["epoch=1-step=6.ckpt"]
    assert fit(tmp_path / "b", ckpt_path=str(checkpoints[0])) == expected([2, 3])
