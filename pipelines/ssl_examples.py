"""Self-supervised recipes beyond SimCLR as LightningModules of one's own on ``FFCVDataModule``:
examples to copy and adapt, not ``pureffcv fit`` tasks (SimCLR is: ``--model.task simclr``).

A split with views serves ``(views, labels)`` batches, ``views`` a dict ``{view name: [one
(N, C, H, W) tensor per copy]}`` in the spec's order (``FFCVDataModule``), so a module reads
its crops by the names its spec gives them::

    import lightning.pytorch as pl
    from pipelines.datamodule import FFCVDataModule
    from pipelines.ssl_examples import BYOLModule, DINOModule

    data = FFCVDataModule("specs/byol.yaml", "train.beton")          # views view1, view2
    pl.Trainer(max_epochs=100).fit(BYOLModule(arch="resnet50"), data)

    data = FFCVDataModule("specs/dino_multicrop.yaml", "train.beton")  # global1, global2, local
    pl.Trainer(max_epochs=100).fit(DINOModule(arch="resnet50"), data)

- ``BYOLModule`` (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020): an online network
  (backbone, projector, predictor) regresses a target network's projection of the other view;
  the target is an exponential moving average (EMA) of the online backbone and projector.
  ``specs/byol.yaml``'s two views are asymmetric (view1 always blurred, view2 rarely blurred
  and sometimes solarized): the loss is symmetrized over (view1, view2) and (view2, view1).
- ``DINOModule`` (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
  ICCV 2021) with multi-crop: the teacher (an EMA of the student) sees the global crops only,
  the student every crop; the student's softmax over ``out_dim`` prototypes is pulled to the
  teacher's centred and sharpened one for every pair of different crops
  (``specs/dino_multicrop.yaml``: global1, global2 at 224 px, six local crops at 96 px).

Both use the project's ResNets (``pipelines.ssl.resnet_backbone``: no torchvision) and AdamW
with a fixed rate, where the papers train with LARS (BYOL) or AdamW with warm-up and cosine
schedules (DINO): swap ``configure_optimizers`` for a long run. Labels are not used.
"""
import copy
import math
from typing import Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from .ssl import resnet_backbone


def mlp(features: int, hidden: int, out: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear: BYOL's projector and predictor."""
    return nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out))


def ema_momentum(base: float, step: int, total: int) -> float:
    """BYOL's target decay at ``step`` of ``total``: ``1 - (1 - base) (cos(pi step / total)
    + 1) / 2``, from ``base`` up to 1 (DINO's teacher follows the same cosine)."""
    return 1 - (1 - base) * (math.cos(math.pi * min(step, total) / max(total, 1)) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online``, parameter by parameter;
    buffers (BatchNorm statistics) copied."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss ``2 - 2 cos(prediction, target)``, averaged over the batch."""
    return (2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=1)).mean()


def total_steps(trainer) -> int:
    """The run's optimizer steps (for the EMA schedule); 1 when the trainer cannot say."""
    steps = trainer.estimated_stepping_batches if trainer is not None else 1
    return int(steps) if steps not in (None, float("inf")) else 1


class BYOLModule(pl.LightningModule):
    """BYOL on batches ``({view1: [x1], view2: [x2]}, labels)`` (``specs/byol.yaml``).

    - ``arch``, ``width``: the backbone (``pipelines.models``' ResNets, without ``fc``).
    - ``proj_dim``, ``hidden``: projector and predictor sizes (BYOL: 256 and 4096).
    - ``base_momentum``: the target's EMA decay at the start, rising to 1 over the run on
      BYOL's cosine (BYOL: 0.996).
    - ``views``: the two view names of the spec.
    """

    def __init__(self, arch: str = "resnet50", width: int = 64, proj_dim: int = 256,
                 hidden: int = 4096, base_momentum: float = 0.996, lr: float = 1e-3,
                 weight_decay: float = 1e-6, views: Sequence[str] = ("view1", "view2")):
        super().__init__()
        self.save_hyperparameters()
        backbone, features = resnet_backbone(arch, width)
        self.online = nn.Sequential(backbone, mlp(features, hidden, proj_dim))
        self.predictor = mlp(proj_dim, hidden, proj_dim)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The online backbone's features: what a downstream task uses."""
        return self.online[0](images)

    def training_step(self, batch, batch_idx: int):
        views = batch[0]
        first, second = (views[name][0] for name in self.hparams.views)
        both = torch.cat([first, second])  # one pass: BatchNorm sees both views
        predictions = self.predictor(self.online(both)).chunk(2)
        with torch.no_grad():
            targets = self.target(both).chunk(2)
        loss = byol_loss(predictions[0], targets[1]) + byol_loss(predictions[1], targets[0])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        momentum = ema_momentum(self.hparams.base_momentum, self.global_step,
                                total_steps(self.trainer))
        ema_update(self.target, self.online, momentum)

    def configure_optimizers(self):
        parameters = list(self.online.parameters()) + list(self.predictor.parameters())
        return torch.optim.AdamW(parameters, lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)


class DINOHead(nn.Module):
    """DINO's head: a 3-layer MLP (GELU) to a ``bottleneck``, L2-normalized, then a
    weight-normalized linear layer to ``out_dim`` prototypes."""

    def __init__(self, features: int, out_dim: int, hidden: int = 2048, bottleneck: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck, out_dim, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1.0)  # DINO: weight_g fixed at 1
        self.last.parametrizations.weight.original0.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


def dino_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
              center: torch.Tensor, student_temperature: float,
              teacher_temperature: float) -> torch.Tensor:
    """DINO's loss: for every teacher crop ``t`` (the globals) and student crop ``s`` that is
    not the same crop, the cross-entropy ``-softmax((t - center) / teacher_temperature) .
    log_softmax(s / student_temperature)``, averaged over the batch and the pairs. The
    student's crops list the globals first, in the teacher's order."""
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        target = F.softmax((t.float() - center) / teacher_temperature, dim=-1)
        for j, s in enumerate(student):
            if i == j:
                continue
            total = total - (target * F.log_softmax(s.float() / student_temperature,
                                                    dim=-1)).sum(-1).mean()
            pairs += 1
    return total / pairs


class DINOModule(pl.LightningModule):
    """DINO with multi-crop on batches ``({global1: [g1], global2: [g2], local: [l1, ...]},
    labels)`` (``specs/dino_multicrop.yaml``).

    - ``arch``, ``width``: the student's and teacher's backbone.
    - ``out_dim``: prototypes (DINO: 65536; fewer for a small run).
    - ``global_views``: the views the teacher sees (its crops, in order); every other view
      of the batch is a local view, seen by the student only.
    - ``student_temperature`` 0.1, ``teacher_temperature`` 0.04 (DINO's after warm-up),
      ``center_momentum`` 0.9 (the centre's EMA over teacher outputs), ``base_momentum``:
      the teacher's EMA decay, 0.996 rising to 1 on a cosine.
    """

    def __init__(self, arch: str = "resnet50", width: int = 64, out_dim: int = 65536,
                 hidden: int = 2048, bottleneck: int = 256,
                 global_views: Sequence[str] = ("global1", "global2"),
                 student_temperature: float = 0.1, teacher_temperature: float = 0.04,
                 center_momentum: float = 0.9, base_momentum: float = 0.996,
                 lr: float = 5e-4, weight_decay: float = 0.04):
        super().__init__()
        self.save_hyperparameters()
        backbone, features = resnet_backbone(arch, width)
        self.student = nn.Sequential(backbone, DINOHead(features, out_dim, hidden, bottleneck))
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The student backbone's features."""
        return self.student[0](images)

    def crops(self, views: dict):
        """``(globals, locals)``: lists of (N, C, H, W) tensors."""
        globals_ = [t for name in self.hparams.global_views for t in views[name]]
        locals_ = [t for name, tensors in views.items()
                   if name not in self.hparams.global_views for t in tensors]
        return globals_, locals_

    def training_step(self, batch, batch_idx: int):
        globals_, locals_ = self.crops(batch[0])
        n = globals_[0].shape[0]
        # one pass per crop size (BatchNorm over all crops of a size, as DINO's multi-crop)
        student = list(self.student(torch.cat(globals_)).split(n))
        if locals_:
            student += list(self.student(torch.cat(locals_)).split(n))
        with torch.no_grad():
            teacher = self.teacher(torch.cat(globals_)).split(n)
        loss = dino_loss(student, teacher, self.center, self.hparams.student_temperature,
                         self.hparams.teacher_temperature)
        self._teacher_mean = torch.cat(teacher).float().mean(0, keepdim=True)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        mean = self._teacher_mean
        if self.trainer.world_size > 1:
            mean = self.all_gather(mean).mean(0)
        m = self.hparams.center_momentum
        self.center.mul_(m).add_(mean, alpha=1 - m)
        momentum = ema_momentum(self.hparams.base_momentum, self.global_step,
                                total_steps(self.trainer))
        ema_update(self.teacher, self.student, momentum)

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad],
                                 lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
