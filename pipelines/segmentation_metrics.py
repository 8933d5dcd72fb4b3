"""Semantic segmentation metrics from one confusion matrix accumulated over an epoch.

``confusion_matrix`` counts pixels by (true class, predicted class), leaving out the pixels
whose truth is ``ignore_index``; ``mean_iou`` and ``pixel_accuracy`` read the counts, so a
metric over an epoch is exact (not a mean of per-batch means), and under DDP the integer
counts are summed over ranks before either is computed.

- IoU of class c = TP / (TP + FP + FN) = M[c, c] / (row c + column c - M[c, c]).
- mIoU: the mean over the classes that occur in the truth or in the prediction (a class absent
  from both has 0 / 0 and is left out, as in mmsegmentation and torchvision's references);
  NaN when no pixel counts.
- pixel accuracy: the diagonal over all counted pixels; NaN when none.
"""
import torch
from torchmetrics import Metric


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """(num_classes, num_classes) int64 pixel counts, rows the truth, columns the prediction.

    ``predictions`` and ``targets`` are class indices of one shape (e.g. (N, H, W)); pixels
    whose target is ``ignore_index`` are not counted. A target or prediction outside
    [0, num_classes) (other than an ignored target) raises ValueError."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets "
                         f"{tuple(targets.shape)} differ in shape")
    targets = targets.reshape(-1).long()
    predictions = predictions.reshape(-1).long()
    kept = targets != ignore_index
    targets, predictions = targets[kept], predictions[kept]
    outside = (targets < 0) | (targets >= num_classes) | (predictions < 0) | \
        (predictions >= num_classes)
    if bool(outside.any()):
        raise ValueError(f"class indices must be in [0, {num_classes}) (targets may also be "
                         f"the ignore index {ignore_index})")
    counts = torch.bincount(targets * num_classes + predictions,
                            minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def class_iou(matrix: torch.Tensor) -> torch.Tensor:
    """Per-class IoU (float64), NaN for a class absent from both truth and prediction."""
    matrix = matrix.double()
    true_positives = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - true_positives
    return true_positives / union  # 0 / 0 = NaN: the class never occurred


def mean_iou(matrix: torch.Tensor) -> torch.Tensor:
    """The mean IoU over the classes present in the truth or the prediction (NaN if none)."""
    iou = class_iou(matrix)
    present = ~iou.isnan()
    if not bool(present.any()):
        return torch.tensor(float("nan"), dtype=torch.float64, device=matrix.device)
    return iou[present].mean()


def pixel_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Correct pixels over counted pixels (float64; NaN when no pixel counts)."""
    matrix = matrix.double()
    return matrix.diagonal().sum() / matrix.sum()


class ConfusionMatrix(Metric):
    """A torchmetrics Metric holding ``confusion_matrix`` counts over an epoch (summed over
    ranks); ``update(predictions, targets)`` takes class indices, ``compute()`` the matrix."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state("matrix", torch.zeros(num_classes, num_classes, dtype=torch.int64),
                       dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        self.matrix += confusion_matrix(predictions, targets, self.num_classes,
                                        self.ignore_index)

    def compute(self) -> torch.Tensor:
        return self.matrix


class MeanIoU(ConfusionMatrix):
    """``mean_iou`` of the epoch's confusion matrix."""

    def compute(self) -> torch.Tensor:
        return mean_iou(self.matrix).float()


class PixelAccuracy(ConfusionMatrix):
    """``pixel_accuracy`` of the epoch's confusion matrix."""

    def compute(self) -> torch.Tensor:
        return pixel_accuracy(self.matrix).float()
