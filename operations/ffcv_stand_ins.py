"""Stand-ins for the four names of FFCV's pipeline API that pureffcv's op classes build on
(``Operation``, ``State``, ``AllocationQuery``, ``Compiler``), with FFCV 1.0.2's fields,
signatures and behaviour, for a machine where FFCV cannot be imported.

Reading a .beton needs FFCV; the device stage does not. A GPU node whose image lacks FFCV
(and the JPEG/OpenCV headers to build it) still imports ``operations``, runs the device ops,
their CUDA kernels and their tests through these (``scripts/gpu_check.sh``).
``operations.ffcv_api`` picks FFCV's own names whenever FFCV imports;
tests/operations/test_ffcv_api.py checks that these match FFCV's.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from multiprocessing import cpu_count
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch
from numba import njit, prange, set_num_threads


@dataclass
class State:
    """FFCV's ``ffcv.pipeline.state.State``: what a pipeline stage holds."""

    jit_mode: bool
    device: torch.device
    shape: Tuple[int, ...]
    dtype: np.dtype

    def __post_init__(self):
        if self.jit_mode and self.device != torch.device("cpu"):
            raise AssertionError("Can't be in JIT mode and on the GPU")
        if self.jit_mode and isinstance(self.dtype, torch.dtype):
            raise AssertionError("Can't allocate a torch tensor in JIT mode")


@dataclass(frozen=True)
class AllocationQuery:
    """FFCV's ``ffcv.pipeline.allocation_query.AllocationQuery``: one sample's output buffer."""

    shape: Tuple[int, ...]
    dtype: Union[np.dtype, torch.dtype]
    device: Optional[torch.device] = None


class Operation(ABC):
    """FFCV's ``ffcv.pipeline.operation.Operation``: a pipeline step."""

    def __init__(self):
        self.metadata: np.ndarray = None
        self.memory_read: Callable = None

    def accept_field(self, field) -> None:
        self.field = field

    def accept_globals(self, metadata, memory_read) -> None:
        self.metadata = metadata
        self.memory_read = memory_read

    @abstractmethod
    def generate_code(self) -> Callable:
        raise NotImplementedError

    def declare_shared_memory(self, previous_state: State) -> Optional[AllocationQuery]:
        return None

    def generate_code_for_shared_state(self) -> Optional[Callable]:
        return None

    @abstractmethod
    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        raise NotImplementedError


class Compiler:
    """FFCV's ``ffcv.pipeline.compiler.Compiler``: how JIT-stage code is compiled, and the
    worker threads of Numba and torch."""

    is_enabled = True
    num_threads = 1

    @classmethod
    def set_enabled(cls, b: bool) -> None:
        cls.is_enabled = b

    @classmethod
    def set_num_threads(cls, n: int) -> None:
        if n < 1:
            n = cpu_count()
        cls.num_threads = n
        set_num_threads(n)
        torch.set_num_threads(n)

    @classmethod
    def compile(cls, code, signature=None):
        parallel = getattr(code, "is_parallel", False) and cls.num_threads > 1
        if cls.is_enabled and not getattr(code, "uncompiled", False):
            return njit(signature, fastmath=True, nogil=True, error_model="numpy",
                        parallel=parallel)(code)
        return code

    @classmethod
    def get_iterator(cls):
        return prange if cls.num_threads > 1 else range
