"""The batch-stage contract: ops applied to ``(images, labels)`` after the loader, on the
device, because they need the whole batch (mixup, cutmix) or change its shape (temporal).

They are not FFCV Operations. Randomness is keyed per batch: batch ``n`` of an epoch draws from
``sample_key(stream_key(seed, epoch, position), n)``, where ``n`` counts the op's calls since
the epoch last started (``restart()``, which ``CompiledPipeline.set_epoch`` calls; a change of
the clock's epoch restarts it too). Same seed, epoch and batch order -> the same mixing, also
when the same epoch is started twice.

A batch op declared in pairs (``decide``, ``pair_kernel``, ``apply_decision``, ``targets``:
mixup and cutmix) also runs on a CPU device inside FFCV's parallel JIT stage
(``split_for_jit``): ``JitPairs`` takes the batch's decision in Python once per batch and
mixes the pairs (i, B-1-i) in parallel; the op itself, called after the loader, completes
the batch with the decision the JIT stage took for those images (handed over by their
memory, which the loader passes on as the batch's tensor). The same draws, the same bytes.
"""
import threading
from collections import OrderedDict
from typing import Callable, ClassVar, Optional, Tuple

import numpy as np
import torch

from ..base import Parameterized, PureOperation
from ..batch_loop import (chain_routes, chained_pair_step, epoch_streams, leading_arguments,
                          sample_call)
from ..errors import PureffcvError
from ..ffcv_api import uncompiled
from ..kernel_errors import check_failure, raise_replayed
from ..pointers import by_pointer, replay, string_positions
from ..host_rng import sample_key, stream_key
from ..rng import EpochClock
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

    #: a pairwise op's njit ``(i, images, decision)``: mixes the pair (i, B-1-i) of a
    #: float32 (B, H, W, C) batch in place as ``apply_decision`` does; None: no JIT form
    pair_kernel: ClassVar[Optional[Callable]] = None

    def output_type(self, image: ImageType) -> ImageType:
        return image

    def for_target(self, target):
        """Refused: a batch op mixes the pixels of two images, which a target (a class per
        pixel) cannot follow."""
        raise OpTypeError(f"'{self.op_name}' mixes pairs of images; {target.kind} targets "
                          f"cannot follow it (target '{target.name}'): remove it from this "
                          f"split, or the target")

    def next_key(self) -> np.uint64:
        """This batch's key; advances the batch counter (reset when the epoch changes)."""
        epoch = self.clock.epoch
        if epoch != self._epoch:
            self._epoch, self._batches, self._consumed = epoch, 0, 0
        key = sample_key(stream_key(self.clock.seed, epoch, self.position), self._batches)
        self._batches += 1
        return np.uint64(key)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """A pairwise op: this batch's decision (``decide``), applied to the images in place
        and to the labels; after ``split_for_jit``, the decision the JIT stage took and
        applied to these images, applied to the labels."""
        if self._images_in_jit_stage:
            return images, self.targets(labels, self.consume(images))
        decision = self.decide(self.next_key(), images.shape[-2], images.shape[-1])
        return self.apply_decision(images, decision), self.targets(labels, decision)

    # --- pairwise ops: one decision per batch --------------------------------------------

    def decide(self, key: np.uint64, height: int, width: int) -> np.ndarray:
        """Everything the batch of ``key`` needs (float64 numbers) for images of this size."""
        raise NotImplementedError

    def apply_decision(self, images: torch.Tensor, decision: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def targets(self, labels: torch.Tensor, decision: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def split_for_jit(self, image: ImageType) -> Optional[PureOperation]:
        """On a CPU device, for ``image`` (what the JIT stage ends with): this op's image
        half as a JIT op mixing the pairs in FFCV's parallel stage, with this op's draws and
        bytes; from then on this op, called after the loader, completes each batch with the
        decision that op took (``targets``). None when the op has no ``pair_kernel`` or the
        images are not float32 (the JIT stage holds float16 as bits)."""
        if self.pair_kernel is None or image.dtype != "float32":
            return None
        self._images_in_jit_stage = True
        return JitPairs(self)

    def restart(self) -> None:
        """Start the epoch's batch counter again: the next batch is batch 0 of the epoch."""
        self._epoch = None
        self._handed = None

    _images_in_jit_stage = False  # set by split_for_jit
    _consumed: int = 0  # decisions the op after the loader has taken this epoch
    _producer: Optional[threading.Thread] = None  # the thread that last took a decision
    _handed: Optional[OrderedDict] = None  # images' address -> decision, not consumed yet
    _lock = threading.Lock()

    def produce(self, address: int, height: int, width: int) -> np.ndarray:
        """The JIT stage's decision for its next batch, whose images are at ``address``
        (kept for ``consume``: the loader hands the same memory over as a tensor). Each
        epoch's iteration runs in a new FFCV thread, which continues from the batches
        consumed: the draws are those of the op after the loader (``__call__``) for the same
        batches, however the last iteration stopped (prefetched batches never consumed)."""
        with self._lock:
            thread = threading.current_thread()
            if thread is not self._producer:
                self._producer, self._batches = thread, self._consumed
            decision = np.ascontiguousarray(self.decide(self.next_key(), height, width),
                                            dtype=np.float64)
            if self._handed is None:
                self._handed = OrderedDict()
            self._handed[address] = decision
            self._handed.move_to_end(address)
            while len(self._handed) > HANDED_BATCHES:  # never consumed (a prefix benchmark)
                self._handed.popitem(last=False)
            return decision

    def consume(self, images: torch.Tensor) -> np.ndarray:
        """The decision the JIT stage took for ``images`` (found by their memory)."""
        with self._lock:
            decision = (self._handed or {}).pop(images.data_ptr(), None)
            if decision is None:
                raise BatchHandoffError(f"'{self.op_name}': no batch was mixed in the JIT "
                                        f"stage for these targets (build the loader from the "
                                        f"same CompiledPipeline)")
            self._consumed += 1
            return decision


#: decisions a pairwise op keeps for batches not consumed yet (FFCV has batches_ahead + 2)
HANDED_BATCHES = 256


class BatchHandoffError(PureffcvError, RuntimeError):
    """The op after the loader has no decision from the JIT stage for its batch."""


class JitPairs(PureOperation):
    """A pairwise batch op's image half in FFCV's parallel JIT stage: once per batch its
    decision (``BatchOperation.produce``), then the pairs in parallel through the op's
    cached C entry (``pair_kernel``), in place."""

    stage = "cpu"

    def __init__(self, batch_op: BatchOperation):
        super().__init__()

    @property
    def batch_op(self) -> BatchOperation:
        return self.params["batch_op"]

    def for_target(self, target):
        return self.batch_op.for_target(target)

    def declare_state_and_memory(self, previous_state):
        return previous_state, None  # in place: no buffer of its own

    def apply(self, images: np.ndarray, indices: Optional[np.ndarray] = None) -> np.ndarray:
        """A mixed copy of a float32 (N, H, W, C) numpy batch (tests, the studio; a Loader
        runs the same code in place)."""
        images = np.array(images, dtype=np.float32, order="C")
        if self._applier is None:
            self._applier = (self.generate_code(), False)
        return self._applier[0](images, None)

    def generate_code(self):
        produce, op_name = self.batch_op.produce, self.batch_op.op_name
        kernel = self.batch_op.pair_kernel
        run = by_pointer(kernel, parallel=True)

        def report(i, arguments):  # i: the pair whose kernel raised
            raise_replayed(self.batch_op, i, lambda: replay(kernel, i, arguments))

        def mix_pairs(images, dst):
            decision = produce(images.ctypes.data, images.shape[1], images.shape[2])
            arguments = (images.shape[0] // 2, images, decision)
            check_failure(run(*arguments), report, arguments)
            return images

        mix_pairs.__name__ = f"{op_name}_pairs"
        return uncompiled(mix_pairs)


class ChainedPairs(PureOperation):
    """``JitPairs`` with the per-sample steps that write its batch before it (on a CPU device
    the lowered normalize, the in-place ops after it such as random erasing, and the CPU ops
    before it that keep the image's type, such as trivial_augment_wide): per pair k, the
    steps for images k and B-1-k, then the pair kernel, while both images are in cache,
    instead of one pass over the whole batch per op, each writing it to memory and the next
    reading it back (``batch_loop.chained_pair_step``; the steps before the one writing the
    batch write scratch that stays in cache). The same kernels, draws and order per image,
    hence the same bytes. The compiler creates it (``compiler.passes.chain_into_pairs``);
    ``steps`` are ops with a ``keyed_loop()``, one of them writing a buffer of its own."""

    stage = "cpu"

    def __init__(self, steps: tuple, pairs: JitPairs):
        super().__init__()
        self.clock, self.position = steps[0].clock, steps[0].position
        self.origin = " and ".join(origin for origin in (getattr(op, "origin", "") for op in
                                                          (*steps, pairs.batch_op)) if origin)

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        for op in self.params["steps"]:
            image = op.output_type(image)
        return self.params["pairs"].output_type(image)

    def declare_state_and_memory(self, previous_state):
        """The buffer of the last step with one (the batch the pairs mix); the steps
        before it write per-pair scratch instead of theirs."""
        state, memory = previous_state, None
        for op in self.params["steps"]:
            state, query = op.declare_state_and_memory(state)
            memory = query or memory
        return state, memory

    def for_target(self, target):
        return None  # made only from steps that move no target

    def generate_code(self):
        steps, pairs = self.params["steps"], self.params["pairs"]
        loops = [op.keyed_loop() for op in steps]
        produce, kernel = pairs.batch_op.produce, pairs.batch_op.pair_kernel
        step = chained_pair_step(tuple(sample_call(loop.kernel, loop.otherwise) for loop in loops),
                                 tuple(len(loop.args) for loop in loops),
                                 chain_routes(tuple(loop.in_place for loop in loops)), kernel)
        args = tuple(item for loop in loops for item in loop.args)
        leading = leading_arguments(step)
        run = by_pointer(step, string_positions(args, first=leading), parallel=True)
        positions = [op.position for op in steps]
        ps = np.array([loop.p for loop in loops], np.float64)
        on_kernel_keys = np.array([loop.gate.on_kernel_key for loop in loops], np.bool_)
        draws = np.array([loop.gate.draw for loop in loops], np.int64)
        clock = self.clock

        def report(k, arguments):  # k: the pair one of whose calls raised
            raise_replayed(self, arguments[3][k], lambda: replay(step, k, arguments + args))

        def chained_pairs(images, dst, indices):
            out = dst[:images.shape[0]]
            decision = produce(out.ctypes.data, out.shape[1], out.shape[2])
            arguments = ((images.shape[0] + 1) // 2, images, out, indices,
                         epoch_streams(clock, positions), ps, on_kernel_keys, draws, decision)
            check_failure(run(*arguments, *args), report, arguments)
            return out

        chained_pairs.with_indices = True
        chained_pairs.__name__ = f"{pairs.batch_op.op_name}_chained_pairs"
        return uncompiled(chained_pairs)


def require_float(op: str, image: ImageType) -> None:
    """Refuse uint8 images: mixing needs normalized floats."""
    if image.dtype not in FLOAT_DTYPES:
        raise OpTypeError(f"'{op}' mixes normalized float images but gets {image.dtype}; "
                          f"add normalize to the device stage")
