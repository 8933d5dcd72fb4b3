"""Progressive resizing (ffcv-imagenet's ``get_resolution``): train at a small image size
first and ramp linearly to the final size, rounding to multiples of ``step``.

The DataModule sets the train decoder's ``output_size`` to ``size_at(epoch)`` before each
epoch; when the size changes it sets the Loader's ``recompile`` for that epoch, so FFCV
regenerates its code and re-allocates its buffers (the image-folder fallback reads the size
per sample).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressiveResizing:
    """Output size ``start_size`` up to epoch ``start_epoch``, ``end_size`` from ``end_epoch``
    on, linear in between rounded to the nearest multiple of ``step`` (default 32)."""

    start_size: int = 160
    end_size: int = 192
    start_epoch: int = 0
    end_epoch: int = 10
    step: int = 32

    def __post_init__(self):
        if not 0 < self.start_size <= self.end_size:
            raise ValueError(f"progressive resizing needs 0 < start_size <= end_size, got "
                             f"{self.start_size} and {self.end_size}")
        if not 0 <= self.start_epoch <= self.end_epoch:
            raise ValueError(f"progressive resizing needs 0 <= start_epoch <= end_epoch, got "
                             f"{self.start_epoch} and {self.end_epoch}")
        if self.step < 1:
            raise ValueError(f"progressive resizing needs step >= 1, got {self.step}")

    def size_at(self, epoch: int) -> int:
        """The train image size (side) for ``epoch``."""
        if epoch <= self.start_epoch:
            return self.start_size
        if epoch >= self.end_epoch:
            return self.end_size
        fraction = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        size = self.start_size + fraction * (self.end_size - self.start_size)
        return int(round(size / self.step)) * self.step
