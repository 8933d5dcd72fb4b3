"""Learning-rate schedules as pure functions of the (fractional) epoch.

Each returns the factor that multiplies the base learning rate. The classifier evaluates one
at ``epoch + batch / batches_per_epoch`` before every step, so the rate depends on nothing but
the position in training: a resumed run gets exactly the rate an uninterrupted one had.
"""
import math
from typing import Literal

import numpy as np

ScheduleName = Literal["step", "cosine", "triangular"]


def step_factor(epoch: float, step_length: int = 30, step_ratio: float = 0.1) -> float:
    """``step_ratio ** floor(epoch / step_length)`` (torchvision's StepLR per epoch)."""
    return step_ratio ** math.floor(epoch / step_length)


def cosine_factor(epoch: float, epochs: int, warmup_epochs: float = 0.0) -> float:
    """A linear ramp from 0 to 1 over ``warmup_epochs``, then half a cosine down to 0 at
    ``epochs``."""
    if epoch < warmup_epochs:
        return epoch / warmup_epochs
    progress = min(1.0, (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-12))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def triangular_factor(epoch: float, epochs: int, peak_epoch: float = 2.0) -> float:
    """ffcv-imagenet's linear ramp: 1e-4 at epoch 0, 1 at ``peak_epoch``, 0 at ``epochs``,
    linear in between (ffcv-imagenet interpolates per step between epoch values, which is
    the same piecewise-linear curve)."""
    return float(np.interp(epoch, [0.0, peak_epoch, epochs], [1e-4, 1.0, 0.0]))


def lr_factor(name: ScheduleName, epoch: float, epochs: int, *, step_length: int = 30,
              step_ratio: float = 0.1, warmup_epochs: float = 0.0,
              peak_epoch: float = 2.0) -> float:
    """The factor of schedule ``name`` at ``epoch`` of a run of ``epochs``."""
    if name == "step":
        return step_factor(epoch, step_length, step_ratio)
    if name == "cosine":
        return cosine_factor(epoch, epochs, warmup_epochs)
    if name == "triangular":
        return triangular_factor(epoch, epochs, peak_epoch)
    raise ValueError(f"unknown schedule '{name}'; choose step, cosine or triangular")


def linear_scaling_lr(batch_size: int, optimizer: str = "sgd") -> float:
    """The default peak learning rate for a global batch of ``batch_size``: for SGD, Goyal et
    al.'s linear scaling rule ("Accurate, Large Minibatch SGD", 2017: 0.1 per 256 images,
    the ResNet-50 recipe torchvision's reference scripts also use); for AdamW, its usual
    1e-3 (Loshchilov & Hutter), which does not scale with the batch."""
    if optimizer == "adamw":
        return 1e-3
    return 0.1 * batch_size / 256

