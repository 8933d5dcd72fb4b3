"""``ImageClassifier``: the LightningModule that trains a ResNet on pureffcv batches.

Batches arrive on the device, normalized, in channels_last (the spec's device stage). Targets
are class indices (B,) or, after mixup/cutmix, class probabilities (B, C); with ``task:
segmentation``, integer masks (B, H, W) of class indices at the images' resolution. With
``task: simclr``, training batches are ``(views, labels)``, ``views`` ``{view: [tensor per
copy]}`` (``FFCVDataModule`` groups a views split's batch), and validation batches single images
with labels, for the kNN monitor.
"""
import time
import warnings
from pathlib import Path
from typing import Literal, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import (MulticlassAccuracy, MultilabelAveragePrecision,
                                         MultilabelF1Score)

from .models import build_resnet, build_segmentation_resnet
from .schedules import ScheduleName, linear_scaling_lr, lr_factor
from .segmentation_metrics import MeanIoU, PixelAccuracy
from .ssl import (SIMCLR_TEMPERATURE, FeatureBank, SimCLRNetwork, knn_predict, nt_xent_loss,
                  resnet_backbone, views_features)

#: the ``ignore_index`` of masks when neither the model nor the spec gives one
DEFAULT_IGNORE_INDEX = 255


def as_class_indices(labels: torch.Tensor) -> torch.Tensor:
    """Integer labels as a flat (B,) int64 tensor (FFCV's label pipeline may give (B, 1))."""
    return labels.reshape(-1).long()


def classification_loss(logits: torch.Tensor, targets: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy against class indices (smoothed by ``label_smoothing``) or against
    soft targets (B, C), used as given: mixup/cutmix apply their own label smoothing."""
    if targets.dtype.is_floating_point:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits, as_class_indices(targets), label_smoothing=label_smoothing)


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor,
                      ignore_index: int = DEFAULT_IGNORE_INDEX,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose mask is not ``ignore_index`` (0 when every
    pixel is ignored, where PyTorch's mean would be NaN): ``logits`` (B, C, H, W), ``masks``
    (B, H, W) integer class indices."""
    masks = masks.long()
    losses = F.cross_entropy(logits, masks, ignore_index=ignore_index, reduction="none",
                             label_smoothing=label_smoothing)  # 0 at ignored pixels
    counted = (masks != ignore_index).sum()
    return losses.sum() / counted.clamp(min=1)


def spec_ignore_index(datamodule) -> Optional[int]:
    """The ``ignore_index`` of the first mask target (``targets:``) in the data module's
    spec, in the order the spec writes its splits; None without a spec or a mask target."""
    spec = getattr(datamodule, "spec", None)
    if spec is None:
        return None
    from compiler import load_spec

    for split in load_spec(Path(spec)).splits.values():
        for target in getattr(split, "targets", ()):
            if target.options.kind == "mask":
                return target.options.ignore_index
    return None


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list:
    """Two optimizer groups: conv/linear weights with ``weight_decay``; BN parameters and
    biases (every parameter of one dimension) without, as ffcv-imagenet and timm do."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class ScheduleChangeWarning(UserWarning):
    """A resumed run's schedule spans another ``max_epochs`` than the checkpoint's run."""


class ImageClassifier(pl.LightningModule):
    """A ResNet classifier with the ImageNet training recipe knobs.

    - ``arch``: resnet18, resnet34 or resnet50 (torchvision parameter names); ``width``: the
      first stage's channels (64 standard); ``blurpool``: ffcv-imagenet's BlurPool.
    - ``num_classes``: outputs of ``fc``; checked against the data before training.
    - ``optimizer``: sgd (momentum, optional nesterov) or adamw; ``weight_decay`` skips BN
      parameters and biases.
    - ``lr``: the peak/base rate; None (default): Goyal et al.'s linear scaling rule, 0.1 x
      global batch / 256 for SGD (1e-3 for AdamW), ``schedules.linear_scaling_lr``; ``schedule``: step (``step_length``, ``step_ratio``),
      cosine (``warmup_epochs``) or triangular (``peak_epoch``), evaluated every step at the
      fractional epoch (see ``pipelines.schedules``); the run length is the trainer's
      ``max_epochs``.
    - ``label_smoothing``: for integer targets.
    - ``flip_tta``: validation averages the logits of each image and its horizontal mirror.
    - ``multilabel``: targets are multi-hot vectors (B, num_classes) (the spec's ``label:
      {type: multi_hot}``): sigmoid outputs, binary cross-entropy, and val/test ``map`` (mean
      average precision over classes) and ``f1`` (macro, at 0.5) instead of top-1/top-5.
    - ``task``: ``classification`` (the above) or ``segmentation``: batches ``(images,
      masks)`` with integer masks (B, H, W); the ResNet becomes the encoder of
      ``pipelines.models.SegmentationResNet`` (a light U-Net/FPN decoder of
      ``decoder_channels``, default 2 x ``width``, to ``num_classes`` logits per pixel);
      per-pixel cross-entropy (``label_smoothing`` too) leaving out ``ignore_index`` pixels
      (None: the spec's mask target's, else 255); val/test ``miou`` and ``pixel_accuracy``
      from the epoch's confusion matrix (``pipelines.segmentation_metrics``); flip TTA
      mirrors the logits back before averaging; predictions are masks.
    - ``task: simclr``: self-supervised SimCLR (Chen et al., ICML 2020) on a spec whose train
      split has views (``specs/simclr.yaml``; batches ``(views, labels)``): the ResNet without
      its ``fc`` is the backbone, a projection head (Linear-BN-ReLU-Linear, hidden = the
      feature dimension, out ``proj_dim``) maps its features, and the NT-Xent loss
      (``temperature``, default 0.5: ``pipelines.ssl.SIMCLR_TEMPERATURE`` says why) pairs every
      copy of every view of a sample (``pipelines.ssl.nt_xent_loss``). Logs train/loss (and
      its epoch mean, train/loss_epoch). The kNN monitor: during each training epoch the
      backbone features of every sample's first copy are kept with its label (at most
      ``knn_bank``; 0: no monitor); validation (one image per sample, labels) logs
      ``val/knn_top1``, the weighted 20-NN accuracy of its backbone features against that bank
      (``pipelines.ssl.knn_predict``, cosine, vote weight exp(cos / 0.07), as InstDisc and
      DINO monitor), and ``val/knn_chance`` (1 / ``num_classes``), so a run shows whether
      the views carry signal. ``num_classes`` is the labels' count (for the monitor only).
      No test or predict (``pureffcv fit`` only); ``label_smoothing`` and ``flip_tta`` are
      not used. The other recipes (BYOL, DINO) are ``pipelines.ssl_examples``.
    """

    def __init__(self, arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet50",
                 num_classes: int = 1000, width: int = 64, blurpool: bool = False,
                 optimizer: Literal["sgd", "adamw"] = "sgd", lr: Optional[float] = None,
                 momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 5e-5,
                 schedule: ScheduleName = "triangular", peak_epoch: float = 2.0,
                 step_length: int = 30, step_ratio: float = 0.1, warmup_epochs: float = 0.0,
                 label_smoothing: float = 0.1, flip_tta: bool = True, multilabel: bool = False,
                 task: Literal["classification", "segmentation", "simclr"] = "classification",
                 ignore_index: Optional[int] = None, decoder_channels: Optional[int] = None,
                 proj_dim: int = 128, temperature: float = SIMCLR_TEMPERATURE,
                 knn_bank: int = 65536):
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.task = task
        self._epoch_start: Optional[float] = None
        self._epoch_images = 0
        if task == "segmentation":
            self._init_segmentation(arch, num_classes, width, blurpool, multilabel,
                                    ignore_index, decoder_channels)
            return
        if task == "simclr":
            self._init_simclr(arch, num_classes, width, blurpool, multilabel, proj_dim,
                              knn_bank)
            return
        if task != "classification":
            raise ValueError(f"unknown task '{task}'; choose classification, segmentation or "
                             f"simclr")
        self.model = build_resnet(arch, num_classes, width, blurpool)
        self.model.to(memory_format=torch.channels_last)
        top_k = min(5, num_classes)
        for stage in ("val", "test"):
            if multilabel:  # mean average precision over classes, macro F1 at 0.5
                first = MultilabelAveragePrecision(num_classes, average="macro")
                second = MultilabelF1Score(num_classes, threshold=0.5, average="macro")
            else:
                first = MulticlassAccuracy(num_classes, top_k=1, average="micro")
                second = MulticlassAccuracy(num_classes, top_k=top_k, average="micro")
            setattr(self, f"{stage}_{'map' if multilabel else 'top1'}", first)
            setattr(self, f"{stage}_{'f1' if multilabel else 'top5'}", second)
            setattr(self, f"{stage}_loss", MeanMetric())
        self.predict_top_k = top_k

    def _init_segmentation(self, arch: str, num_classes: int, width: int, blurpool: bool,
                           multilabel: bool, ignore_index: Optional[int],
                           decoder_channels: Optional[int]) -> None:
        if multilabel:
            raise ValueError("multilabel is for classification; segmentation masks hold one "
                             "class per pixel")
        self.ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
        self.model = build_segmentation_resnet(arch, num_classes, width, blurpool,
                                               decoder_channels)
        self.model.to(memory_format=torch.channels_last)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_miou", MeanIoU(num_classes, self.ignore_index))
            setattr(self, f"{stage}_pixel_accuracy", PixelAccuracy(num_classes,
                                                                   self.ignore_index))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.predict_top_k = 1

    def _init_simclr(self, arch: str, num_classes: int, width: int, blurpool: bool,
                     multilabel: bool, proj_dim: int, knn_bank: int) -> None:
        if multilabel:
            raise ValueError("multilabel is for classification; the simclr task's kNN monitor "
                             "reads one class per image")
        backbone, features = resnet_backbone(arch, width, blurpool)
        self.model = SimCLRNetwork(backbone, features, proj_dim)
        self.model.to(memory_format=torch.channels_last)
        self.bank = FeatureBank(knn_bank)
        self.train_loss_epoch = MeanMetric()
        self.val_knn_top1 = MeanMetric()  # summed over ranks: every sample counts once
        self._knn = None  # the bank of the epoch being validated (gathered over ranks)
        self.predict_top_k = 1

    @property
    def simclr(self) -> bool:
        return self.task == "simclr"

    @property
    def segmentation(self) -> bool:
        return self.task == "segmentation"

    def set_ignore_index(self, ignore_index: int) -> None:
        """The masks' ignore index for the loss and the metrics (segmentation)."""
        self.ignore_index = ignore_index
        for stage in ("val", "test"):
            for name in ("miou", "pixel_accuracy"):
                getattr(self, f"{stage}_{name}").ignore_index = ignore_index

    def setup(self, stage: str) -> None:
        """Segmentation without an ``ignore_index`` of its own takes the spec's mask
        target's (255 when the spec has none)."""
        if self.segmentation and self.hparams.ignore_index is None:
            found = spec_ignore_index(getattr(self.trainer, "datamodule", None))
            if found is not None:
                self.set_ignore_index(found)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous(memory_format=torch.channels_last))

    # ----- training -------------------------------------------------------------------------
    def lr_at(self, epoch: float) -> float:
        """The learning rate at a fractional epoch."""
        h = self.hparams
        return self.base_lr() * lr_factor(h.schedule, epoch, self.trainer.max_epochs,
                                step_length=h.step_length, step_ratio=h.step_ratio,
                                warmup_epochs=h.warmup_epochs, peak_epoch=h.peak_epoch)

    def on_train_start(self):
        # Lightning logs every log_every_n_steps global steps: with fewer batches than that in
        # an epoch a short run would log no train/loss at all
        batches = int(self.trainer.num_training_batches) if \
            self.trainer.num_training_batches != float("inf") else 0
        if 0 < batches < self.trainer.log_every_n_steps:
            self.trainer.log_every_n_steps = batches

    def on_train_batch_start(self, batch, batch_idx: int):
        if self._epoch_start is None:  # not on_train_epoch_start: a mid-epoch resume skips it
            self._epoch_start, self._epoch_images = time.perf_counter(), 0
        batches = max(int(self.trainer.num_training_batches), 1)
        lr = self.lr_at(self.current_epoch + batch_idx / batches)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr

    def training_step(self, batch, batch_idx: int):
        if self.simclr:
            return self._simclr_step(batch)
        images, targets = batch[0], batch[1]
        if self.segmentation:
            loss = segmentation_loss(self(images), targets, self.ignore_index,
                                     self.hparams.label_smoothing)
        elif self.multilabel:
            loss = F.binary_cross_entropy_with_logits(self(images), targets.float())
        else:
            loss = classification_loss(self(images), targets, self.hparams.label_smoothing)
        self._epoch_images += images.shape[0]
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().optimizer.param_groups[0]["lr"])
        return loss

    def _simclr_step(self, batch):
        """NT-Xent over every copy of every view; the first copy's features (and labels) go
        to the kNN bank."""
        views = batch[0]
        if not isinstance(views, dict):
            raise TypeError("task simclr trains on (views, labels) batches: a spec whose train "
                            "split has image.views, through FFCVDataModule")
        copies = sum(len(tensors) for tensors in views.values())
        features = views_features(self, views)
        loss = nt_xent_loss(self.model.projection(features), copies, self.hparams.temperature)
        count = features.shape[0] // copies
        if len(batch) > 1 and self.bank.size > 0:
            self.bank.add(features[:count], batch[1])
        self._epoch_images += count
        self.train_loss_epoch.update(loss.detach())
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/loss_epoch", self.train_loss_epoch, on_step=False, on_epoch=True)
        self.log("train/lr", self.optimizers().optimizer.param_groups[0]["lr"])
        return loss

    def on_train_epoch_start(self):
        if self.simclr:
            self.bank.reset()

    def on_validation_epoch_start(self):
        """simclr: the kNN bank of the training epoch so far, gathered from every rank (each
        rank kept the features of its own shard)."""
        if not self.simclr:
            return
        kept = self.bank.tensors()
        if kept is not None and self.trainer.world_size > 1:
            # every rank trained on equally many batches (drop_last shards): equal banks
            kept = tuple(t.flatten(0, 1) for t in self.all_gather(kept))
        self._knn = kept

    def _knn_step(self, batch) -> None:
        """simclr validation: the weighted kNN accuracy of the batch's backbone features
        against the training epoch's bank (nothing before any training: the bank is empty)."""
        if isinstance(batch[0], dict):
            raise TypeError("task simclr validates on single images with labels; the "
                            "validation split must not have views")
        self.log("val/knn_chance", 1.0 / self.num_classes, on_step=False, on_epoch=True,
                 sync_dist=True)  # the same on every rank: no warning, no effect
        if self._knn is None or len(batch) < 2:
            return
        bank, bank_labels = self._knn
        predicted = knn_predict(self(batch[0]), bank, bank_labels, self.num_classes)
        self.val_knn_top1.update((predicted == as_class_indices(batch[1])).float())
        self.log("val/knn_top1", self.val_knn_top1, on_step=False, on_epoch=True,
                 prog_bar=True)

    def on_train_epoch_end(self):
        """Log the epoch's images/s, counted from its first batch in this process (a resumed
        epoch: from where it resumed)."""
        if self._epoch_start is None:  # no batch ran in this process
            return
        elapsed = time.perf_counter() - self._epoch_start
        images = self._epoch_images * self.trainer.world_size
        self.log("train/images_per_sec", images / max(elapsed, 1e-9))
        self._epoch_start = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["pureffcv_max_epochs"] = self.trainer.max_epochs

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Warn when a resumed run changes what its schedule is computed from: cosine and
        triangular schedules span ``max_epochs``, so the same epoch gets another rate and the
        run differs from an uninterrupted one (docs/lightning.md, "Resuming")."""
        saved = checkpoint.get("pureffcv_max_epochs")
        trainer = self._trainer
        if trainer is None or saved is None or self.hparams.schedule == "step" \
                or saved == trainer.max_epochs:
            return
        warnings.warn(ScheduleChangeWarning(
            f"pureffcv: resuming with max_epochs {trainer.max_epochs}, but the checkpoint's run "
            f"had {saved}: the {self.hparams.schedule} schedule is computed from max_epochs, so "
            f"this run's learning rates differ from an uninterrupted run's (resume with "
            f"--trainer.max_epochs {saved} for an exact continuation)"), stacklevel=2)

    def base_lr(self) -> float:
        """``lr``, or with none given the linear scaling rule for this run's global batch
        (the data module's training batch per process times the processes; 256 when the
        data module does not say)."""
        if self.hparams.lr is not None:
            return self.hparams.lr
        datamodule = getattr(self.trainer, "datamodule", None)
        per_process = datamodule.train_batch_size() if hasattr(datamodule, "train_batch_size") \
            else 256
        return linear_scaling_lr(per_process * self.trainer.world_size, self.hparams.optimizer)

    def configure_optimizers(self):
        h = self.hparams
        groups = parameter_groups(self.model, h.weight_decay)
        if h.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=self.base_lr())
        return torch.optim.SGD(groups, lr=self.base_lr(), momentum=h.momentum,
                               nesterov=h.nesterov)

    # ----- evaluation -----------------------------------------------------------------------
    def evaluation_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of an evaluation batch (with ``flip_tta``: averaged with the mirror's;
        segmentation: the mirror's logits mirrored back first)."""
        logits = self(images)
        if self.hparams.flip_tta:
            mirrored = self(images.flip(3))
            if self.segmentation:
                mirrored = mirrored.flip(3)
            logits = (logits + mirrored) / 2
        return logits

    def _evaluate(self, batch, prefix: str) -> None:
        if self.segmentation:
            return self._evaluate_masks(batch, prefix)
        images, labels = batch[0], batch[1]
        logits = self.evaluation_logits(images)
        loss = getattr(self, f"{prefix}_loss")
        if self.multilabel:
            targets = labels.reshape(labels.shape[0], -1)
            loss.update(F.binary_cross_entropy_with_logits(
                logits, targets.float(), reduction="none").mean(1))
            names = ("map", "f1")
            probabilities = logits.float().sigmoid()
            for name in names:
                getattr(self, f"{prefix}_{name}").update(probabilities, targets.long())
        else:
            if labels.dtype.is_floating_point and labels.ndim == 2:  # float vector targets
                loss.update(F.cross_entropy(logits, labels, reduction="none"))
                labels = labels.argmax(1)
            else:
                labels = as_class_indices(labels)
                loss.update(F.cross_entropy(logits, labels, reduction="none"))
            names = ("top1", "top5")
            for name in names:
                getattr(self, f"{prefix}_{name}").update(logits, labels)
        # logged as metric objects: Lightning computes them once per epoch, and torchmetrics
        # sums their states over ranks, so every evaluation sample counts exactly once
        self.log(f"{prefix}/loss", loss, on_step=False, on_epoch=True)
        for i, name in enumerate(names):
            self.log(f"{prefix}/{name}", getattr(self, f"{prefix}_{name}"), on_step=False,
                     on_epoch=True, prog_bar=i == 0)

    def _evaluate_masks(self, batch, prefix: str) -> None:
        """Segmentation: the per-pixel loss (weighted by counted pixels, so the epoch's value
        is the mean over all its pixels) and the confusion-matrix metrics."""
        images, masks = batch[0], batch[1].long()
        logits = self.evaluation_logits(images)
        counted = (masks != self.ignore_index).sum()
        loss = getattr(self, f"{prefix}_loss")
        loss.update(segmentation_loss(logits, masks, self.ignore_index), weight=counted)
        predictions = logits.argmax(1)
        self.log(f"{prefix}/loss", loss, on_step=False, on_epoch=True)
        for i, name in enumerate(("miou", "pixel_accuracy")):
            metric = getattr(self, f"{prefix}_{name}")
            metric.update(predictions, masks)
            self.log(f"{prefix}/{name}", metric, on_step=False, on_epoch=True, prog_bar=i == 0)

    def validation_step(self, batch, batch_idx: int):
        if self.simclr:
            return self._knn_step(batch)
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int):
        self._evaluate(batch, "test")

    def predict_step(self, batch, batch_idx: int):
        """``{"index", "label", "classes", "probabilities"}``: the samples' .beton indices (a
        third batch element; else positions counted from 0), their stored labels (vectors for
        vector targets), and the top-k classes (k = min(5, num_classes)) with their softmax
        probabilities (multilabel: sigmoid, each class on its own), best first.

        Segmentation: ``{"index", "mask"}``, the predicted class of every pixel (B, H, W),
        uint8 when ``num_classes`` <= 256, else int32."""
        images, labels = batch[0], batch[1]
        if len(batch) > 2:
            indices = batch[2]
        else:
            indices = torch.arange(images.shape[0]) + batch_idx * images.shape[0]
        if self.segmentation:
            masks = self.evaluation_logits(images).argmax(1)
            dtype = torch.uint8 if self.num_classes <= 256 else torch.int32
            return {"index": indices.cpu(), "mask": masks.to(dtype).cpu()}
        logits = self.evaluation_logits(images).float()
        probabilities = logits.sigmoid() if self.multilabel else logits.softmax(dim=1)
        top = probabilities.topk(self.predict_top_k, dim=1)
        stored = labels.reshape(labels.shape[0], -1) if labels.ndim > 1 or self.multilabel \
            else as_class_indices(labels)
        # a copy: on the CPU ``.cpu()`` is the loader's own batch buffer, which FFCV refills
        # batches_ahead + 2 batches later (the first rows then carried later batches' labels)
        return {"index": indices.cpu(), "label": stored.cpu().clone(),
                "classes": top.indices.cpu(), "probabilities": top.values.cpu()}
