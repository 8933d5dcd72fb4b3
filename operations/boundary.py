"""Steps the compiler inserts at the CPU -> device boundary besides FFCV's own."""
from dataclasses import replace
from typing import Callable, Optional, Tuple

import torch

from .ffcv_api import AllocationQuery, Operation, State


class Float16FromBits(Operation):
    """Reinterpret a uint16 tensor of float16 bit patterns as float16 (a view: no copy).

    Numba has no float16, so a JIT op producing float16 (``cpu_normalize``) stores the bits as
    uint16 (``operations.types.storage_dtype``); this step, right after ToTensor, turns them
    back into numbers."""

    def generate_code(self) -> Callable:
        def as_float16(batch, dst):
            return batch.view(torch.float16)

        return as_float16

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        return replace(previous_state, jit_mode=False, dtype=torch.float16), None
