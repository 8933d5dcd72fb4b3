"""Self-supervised pieces of the ``simclr`` task (``pipelines.classifier``): the NT-Xent loss,
the projection head and the weighted kNN monitor.

- ``nt_xent_loss``: SimCLR's normalized temperature-scaled cross-entropy over every copy of
  every sample; any number of copies (two in SimCLR, more for multi-crop specs).
- ``projection_head``: SimCLR's 2-layer MLP on the backbone's features.
- ``knn_predict``: the weighted k-nearest-neighbour classifier of Wu et al. (InstDisc, CVPR
  2018) that DINO (Caron et al., ICCV 2021, ``eval_knn.py``) uses to monitor a representation:
  cosine similarity to a bank of labelled features, the k most similar vote with weight
  ``exp(similarity / T)``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

#: NT-Xent's temperature by default. SimCLR's best temperature depends on the batch: its
#: ImageNet default, 0.1, goes with batches of 4096 and LARS; its CIFAR-10 runs (Chen et al.,
#: ICML 2020, Appendix B.9; the official repository's CIFAR-10 setting) use 0.5 at batches of
#: 256-1024: the small-batch setting, which a CPU demo or one GPU trains in.
SIMCLR_TEMPERATURE = 0.5
#: the kNN monitor's neighbours (InstDisc's and DINO's k = 20; fewer when the bank is smaller)
KNN_K = 20
#: the kNN monitor's vote temperature: weight exp(cosine / 0.07) (InstDisc, DINO)
KNN_TEMPERATURE = 0.07


def nt_xent_loss(embeddings: torch.Tensor, copies: int,
                 temperature: float = SIMCLR_TEMPERATURE) -> torch.Tensor:
    """SimCLR's NT-Xent loss of ``embeddings`` (copies * N, D): rows ``k * N + i`` (k = 0 ..
    copies - 1) are the copies of sample ``i``, as ``torch.cat`` of the per-copy batches gives.

    Each row ``a`` is L2-normalized, ``s(a, b) = cos(a, b) / temperature``; its positives P(a)
    are the other copies of its sample, and with every other row in the denominator

        loss(a) = mean over p in P(a) of  -log( exp s(a, p) / sum_{b != a} exp s(a, b) )

    averaged over all rows. With two copies, P(a) is one row and this is SimCLR's loss over
    its 2N views exactly; with more it is the multi-positive form (SupCon's L_out, Khosla et
    al., NeurIPS 2020, with the sample as the class). Computed in float32."""
    if copies < 2:
        raise ValueError(f"NT-Xent needs at least two copies of each sample, got {copies}")
    rows = embeddings.shape[0]
    if rows % copies:
        raise ValueError(f"{rows} embeddings are not {copies} copies of one batch")
    n = rows // copies
    z = F.normalize(embeddings.float(), dim=1)
    logits = z @ z.t() / temperature
    eye = torch.eye(rows, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))  # a row is never its own negative
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    sample = torch.arange(rows, device=z.device) % n
    positive = (sample[:, None] == sample[None, :]) & ~eye
    return -(log_prob.masked_fill(~positive, 0.0).sum(1) / (copies - 1)).mean()


def projection_head(features: int, out: int = 128, hidden: Optional[int] = None) -> nn.Module:
    """SimCLR's projection head g: Linear(features, hidden) -> BatchNorm -> ReLU ->
    Linear(hidden, out), ``hidden`` the feature dimension by default (SimCLR's ResNet-50:
    2048 -> 2048 -> 128; its implementation normalizes the hidden layer)."""
    hidden = features if hidden is None else hidden
    return nn.Sequential(nn.Linear(features, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out))


def knn_predict(features: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                num_classes: int, k: int = KNN_K,
                temperature: float = KNN_TEMPERATURE) -> torch.Tensor:
    """The weighted kNN classes of ``features`` (B, D) given a ``bank`` (M, D) of features with
    integer ``bank_labels`` (M,): cosine similarities to the bank, the ``min(k, M)`` most
    similar vote for their class with weight ``exp(similarity / temperature)``, and the
    class with the largest total wins (ties: the lowest class). Returns (B,) int64."""
    if bank.shape[0] == 0:
        raise ValueError("the kNN bank is empty")
    k = min(k, bank.shape[0])
    similarity = F.normalize(features.float(), dim=1) @ F.normalize(bank.float(), dim=1).t()
    top, index = similarity.topk(k, dim=1)
    votes = torch.zeros(features.shape[0], num_classes, device=features.device)
    votes.scatter_add_(1, bank_labels.long().to(features.device)[index],
                       (top / temperature).exp())
    return votes.argmax(1)


class SimCLRNetwork(nn.Module):
    """A backbone (a ResNet whose ``fc`` is ``Identity``: its pooled features) and SimCLR's
    ``projection`` head; ``forward`` gives the backbone's features (B, ``features``), what the
    kNN monitor and downstream tasks use; the loss reads ``projection(features)``."""

    def __init__(self, backbone: nn.Module, features: int, proj_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.features = features
        self.projection = projection_head(features, proj_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


def resnet_backbone(arch: str, width: int = 64, blurpool: bool = False):
    """``(backbone, feature dimension)``: ``pipelines.models.build_resnet``'s network with
    ``fc`` replaced by ``Identity`` (torchvision's parameter names for the rest)."""
    from .models import build_resnet

    backbone = build_resnet(arch, num_classes=1, width=width, blurpool=blurpool)
    features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    return backbone, features


def views_features(network: nn.Module, views: dict) -> torch.Tensor:
    """``network``'s outputs for every copy of every view of a ``{view: [tensor per copy]}``
    batch, stacked as (copies * N, ...) in the batch's order (view by view, copy by copy):
    one forward pass per view, over its copies concatenated (copies of one view share a
    size; views may differ, as DINO's global and local crops do)."""
    return torch.cat([network(torch.cat(copies)) for copies in views.values()])


class FeatureBank:
    """Labelled features collected during a training epoch for the kNN monitor: at most
    ``size`` rows (the epoch's first: under a random order, a random subset; 0: none)."""

    def __init__(self, size: int = 65536):
        self.size = size
        self.reset()

    def reset(self) -> None:
        self._features, self._labels, self.count = [], [], 0

    def add(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep copies of ``features`` (B, D, detached) and of their integer ``labels`` while
        there is room (copies: on the CPU a batch's labels are the loader's own buffer, which
        FFCV refills a few batches later)."""
        room = self.size - self.count
        if room <= 0:
            return
        features = features[:room].detach().clone()
        labels = labels.reshape(-1)[:room].long().clone()
        self._features.append(features)
        self._labels.append(labels)
        self.count += features.shape[0]

    def tensors(self):
        """``(features (M, D), labels (M,))`` of the rows kept; None when there are none."""
        if not self._features:
            return None
        return torch.cat(self._features), torch.cat(self._labels)
