"""The FFCV names pureffcv's op classes build on, from one place: FFCV's own where FFCV
imports, else ``operations.ffcv_stand_ins`` (the same API), so that the device stage, its
CUDA kernels and its tests run on a machine without FFCV (``scripts/gpu_check.sh``).

``FFCV_MISSING`` is None when FFCV imported, else the one-line reason it did not; the ops
that need FFCV itself (the decoders, which subclass FFCV's and call its C library) are then
not registered, and nothing can read a .beton.
"""
from typing import Optional

try:
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.operation import Operation
    from ffcv.pipeline.state import State

    FFCV_MISSING: Optional[str] = None
except (ImportError, OSError) as exc:  # not installed, or its C library does not load
    from .ffcv_stand_ins import AllocationQuery, Compiler, Operation, State

    FFCV_MISSING = f"FFCV cannot be imported ({type(exc).__name__}: {exc})"

__all__ = ["AllocationQuery", "Compiler", "Operation", "State", "FFCV_MISSING"]
