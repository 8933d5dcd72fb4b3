"""pureffcv operations: per-sample CPU ops (Numba), device ops (torch/cupy), keyed RNG,
the op registry and the authoring API for custom ops. Knows FFCV, Numba and torch; no YAML.

Importing it registers the built-in ops, gives the Numba functions that importing FFCV
compiles pureffcv's on-disk cache (``cache_locator.cache_foreign_dispatchers``) and every
function Numba compiles a random id, so entries cached by different processes never share a
symbol (``numba_private.RandomFunctionIds``), and changes nothing else; FFCV's corrections
are installed by ``ffcv_patches.apply()``, which the compiler calls."""
from .cache_locator import cache_foreign_dispatchers
from .numba_private import use_random_function_ids

use_random_function_ids()  # before anything is compiled and cached
cache_foreign_dispatchers()  # before anything imports FFCV

from .authoring import affine, channel_map, cpu_op, point_map  # noqa: E402  (after the cache)
from .base import FusionPart, Gate, PureOperation, Stage
from .errors import PureffcvError
from .params import Ascending, FloatRange, Named, PositiveInt, Probability, Range, Size
from .registry import ENTRY_POINT_GROUP, UnknownOpError, available_ops, get_op, register_op
from .rng import EpochClock
from .targets import IMAGE_ONLY, Target
from .types import DTYPES, ImageType, OpTypeError
from . import builtins  # noqa: F401,E402  (registers the built-in ops; needs the registry above)

__all__ = [
    "affine", "channel_map", "cpu_op", "point_map", "FusionPart", "Gate", "PureOperation",
    "Stage", "PureffcvError", "Ascending", "FloatRange", "Named", "PositiveInt", "Probability",
    "Range", "Size", "ENTRY_POINT_GROUP", "UnknownOpError", "available_ops", "get_op",
    "register_op", "EpochClock", "IMAGE_ONLY", "Target", "DTYPES", "ImageType", "OpTypeError",
]
