"""The FFCV names pureffcv's op classes build on, from one place: FFCV's own where FFCV
imports, else ``operations.ffcv_stand_ins`` (the same API), so that the device stage, its
CUDA kernels and its tests run on a machine without FFCV (``scripts/gpu_check.sh``).

``FFCV_MISSING`` is None when FFCV imported, else the one-line reason it did not; the ops
that need FFCV itself (the decoders, which subclass FFCV's and call its C library) are then
not registered, and nothing can read a .beton.

``uncompiled``: FFCV compiles every JIT-stage op's per-batch function (``Compiler.compile``),
a closure Numba cannot cache, 0.1-1.4 s per op in every process (3.6 s of the hybrid spec's
first batch). pureffcv's per-batch functions are Python glue around cached C entries
(``pointers.by_pointer``, which release the GIL while the samples run in parallel), marked
to run as they are: FFCV's ``Compiler`` leaves them alone once ``ffcv_patches.apply`` ran
(the stand-in's always does).
"""
from typing import Callable, Optional

try:
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation
    from ffcv.pipeline.state import State

    FFCV_MISSING: Optional[str] = None
except (ImportError, OSError) as exc:  # not installed, or its C library does not load
    from .ffcv_stand_ins import AllocationQuery, Compiler, Operation, State

    FFCV_MISSING = f"FFCV cannot be imported ({type(exc).__name__}: {exc})"


def uncompiled(code: Callable) -> Callable:
    """Mark an op's per-batch function to run in FFCV's JIT stage as it is (Python glue
    calling cached entries: nothing to compile in a new process), and make sure FFCV's
    ``Compiler`` honours the mark (``ffcv_patches.apply``; the stand-in's always does).
    Returns ``code``."""
    code.uncompiled = True
    if FFCV_MISSING is None:
        from . import ffcv_patches
        ffcv_patches.apply()
    return code


__all__ = ["AllocationQuery", "Compiler", "Operation", "State", "FFCV_MISSING", "uncompiled"]
