"""Temporal expansion for recurrent / spiking vision models."""
from ..params import Count
from ..registry import register_op
from .batch import BatchOperation


@register_op("temporal_repeat")
class TemporalRepeat(BatchOperation):
    """Repeat each image along a new time axis: (B, C, H, W) -> (B, steps, C, H, W).

    - ``steps``: number of time steps T, >= 1 (required).

    The result is an ``expand`` view (no copy, stride 0 along time): write into it only after
    ``.contiguous()``. Labels pass unchanged. No randomness. The planner's image type has no
    time axis, so the type it tracks stays the per-step image.
    """

    def __init__(self, steps: Count):
        pass  # bound in self.params

    def __call__(self, images, labels):
        return images.unsqueeze(1).expand(-1, self.params["steps"], -1, -1, -1), labels

