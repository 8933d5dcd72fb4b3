"""pureffcv operations: per-sample CPU ops (Numba), device ops (torch/cupy), keyed RNG,
the op registry and the authoring API for custom ops. Knows FFCV, Numba and torch; no YAML."""
from . import ffcv_patches  # noqa: F401  (first: before any FFCV Loader is built)
from .authoring import cpu_op
from .base import PureOperation, Stage
from .params import Ascending, FloatRange, Named, PositiveInt, Probability, Range, Size
from .registry import ENTRY_POINT_GROUP, UnknownOpError, available_ops, get_op, register_op
from .rng import EpochClock
from .types import DTYPES, ImageType, OpTypeError

__all__ = [
    "cpu_op", "PureOperation", "Stage", "Ascending", "FloatRange", "Named", "PositiveInt",
    "Probability", "Range", "Size", "ENTRY_POINT_GROUP", "UnknownOpError", "available_ops",
    "get_op", "register_op", "EpochClock", "DTYPES", "ImageType", "OpTypeError",
]
