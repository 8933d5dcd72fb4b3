"""The batch-stage contract: ops applied to ``(images, labels)`` after the loader, on the
device, because they need the whole batch (mixup, cutmix) or change its shape (temporal).

They are not FFCV Operations. Randomness is keyed per batch: batch ``n`` of an epoch draws from
``sample_key(stream_key(seed, epoch, position), n)``, where ``n`` counts the op's calls since
the epoch last started (``restart()``, which ``CompiledPipeline.set_epoch`` calls; a change of
the clock's epoch restarts it too). Same seed, epoch and batch order -> the same mixing, also
when the same epoch is started twice.
"""
from typing import Optional, Tuple

import numpy as np
import torch

from ..base import Parameterized
from ..rng import EpochClock, sample_key, stream_key
from ..types import ImageType, OpTypeError
from .stage import FLOAT_DTYPES


class BatchOperation(Parameterized):
    """Base of the batch ops: ``__call__(images, labels) -> (images, targets)``; parameters
    as every op's (``self.params``)."""

    stage = "batch"
    clock: EpochClock = EpochClock()
    position: int = 0
    _epoch: Optional[int] = None
    _batches: int = 0

    def bind(self, clock: EpochClock, position: int) -> None:
        """Attach the pipeline's clock and this op's position (its RNG stream)."""
        self.clock, self.position, self._epoch = clock, position, None

    def restart(self) -> None:
        """Start the epoch's batch counter again: the next batch is batch 0 of the epoch."""
        self._epoch = None

    def output_type(self, image: ImageType) -> ImageType:
        return image

    def next_key(self) -> np.uint64:
        """This batch's key; advances the batch counter (reset when the epoch changes)."""
        epoch = self.clock.epoch
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, 0
        stream = np.uint64(stream_key(np.uint64(self.clock.seed), epoch, self.position))
        key = sample_key(stream, self._batches)
        self._batches += 1
        return np.uint64(key)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def require_float(op: str, image: ImageType) -> None:
    """Refuse uint8 images: mixing needs normalized floats."""
    if image.dtype not in FLOAT_DTYPES:
        raise OpTypeError(f"'{op}' mixes normalized float images but gets {image.dtype}; "
                          f"add normalize to the device stage")
