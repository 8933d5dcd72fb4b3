"""The contract between an op and the planner: a stage, a typed signature, keyed randomness."""
import inspect
from dataclasses import replace
from typing import ClassVar, Literal, Optional, Tuple

import numpy as np
import torch
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State

from .rng import EpochClock
from .types import ImageType, storage_dtype

#: Where a step runs. decoder: first step of the image field (JIT, CPU); cpu: a Numba op on
#: per-sample numpy arrays; device: a torch op on the batch after ToDevice; batch: a torch op
#: on (images, labels) applied after the loader (mixup, cutmix).
Stage = Literal["decoder", "cpu", "device", "batch"]


class PureOperation(Operation):
    """An FFCV Operation the planner can type-check and seed.

    Subclasses set ``stage``, take their parameters as keyword arguments of ``__init__``
    (annotated: the compiler validates spec values against the signature) and override
    ``output_type`` when they change size, dtype or layout.
    """

    stage: ClassVar[str] = "cpu"
    #: defaults until the compiler binds the op: seed 0, epoch 0, stream 0
    clock: EpochClock = EpochClock()
    position: int = 0
    _applier = None  # (compiled batch function, takes indices) once ``apply`` has run

    def bind(self, clock: EpochClock, position: int) -> None:
        """Attach the pipeline's seed/epoch clock and this op's position (its RNG stream)."""
        self.clock = clock
        self.position = position
        self._applier = None  # generated code depends on the binding

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        """The type this op produces from ``image``; raise OpTypeError if it cannot accept it."""
        return image

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        """FFCV's hook, derived from ``output_type`` for per-sample CPU ops."""
        out = self.output_type(image_type_of_state(previous_state))
        dtype = storage_dtype(out.dtype)
        return (replace(previous_state, jit_mode=True, shape=out.sample_shape, dtype=dtype),
                AllocationQuery(out.sample_shape, dtype))

    def apply(self, images: np.ndarray, indices: Optional[np.ndarray] = None) -> np.ndarray:
        """Run this CPU op on a numpy batch (N, H, W, C) outside a Loader, with the same
        code and the same draws a Loader would use (tests, previews, the DataLoader fallback).
        ``indices`` are the samples' data-set indices (default 0..N-1)."""
        if indices is None:
            indices = np.arange(len(images), dtype=np.int64)
        images = np.ascontiguousarray(images)  # kernels walk flat views (operations/cpu/pixels)
        state = State(jit_mode=True, device=torch.device("cpu"), shape=images.shape[1:], dtype=images.dtype)
        _, query = self.declare_state_and_memory(state)
        dst = np.empty((len(images),) + tuple(query.shape), dtype=query.dtype)
        if self._applier is None:  # compile once per op and binding
            code = self.generate_code()
            fn = Compiler.compile(code) if getattr(code, "is_parallel", False) else code
            self._applier = (fn, getattr(code, "with_indices", False))
        fn, with_indices = self._applier
        if with_indices:
            return fn(images, dst, np.asarray(indices, dtype=np.int64))
        return fn(images, dst)

    @classmethod
    def parameters(cls) -> dict:
        """The user-facing parameters: name -> inspect.Parameter (what a spec may set)."""
        sig = inspect.signature(cls.__init__)
        return {n: p for n, p in sig.parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def image_type_of_state(state: State) -> ImageType:
    """Our ImageType for an FFCV State in the JIT stage (per-sample HWC numpy)."""
    h, w, c = (tuple(state.shape) + (None, None, 3))[:3] if state.shape else (None, None, 3)
    return ImageType(height=h, width=w, channels=c, dtype=np.dtype(state.dtype).name,
                     layout="HWC", device="cpu", jit=True)
