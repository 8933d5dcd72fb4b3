"""The runtime loop every per-sample op runs in: once per batch the op's RNG stream for the
clock's epoch, then in parallel for every sample its key, the probability gate and the kernel
(``keyed_batch_loop``), through a cached C entry (``pointers.by_pointer``). The fused chains
(``cpu/fused.py``) and the keyed decoders reuse its pieces (``epoch_stream``,
``epoch_streams``, ``gate_check``)."""
import inspect
from functools import lru_cache

import numpy as np
from numba import njit

from .base import Gate
from .cpu.pixels import copy_pixels
from .kernel_errors import check_failure, describe, raise_replayed, reporter_token
from .pointers import ENTRY_FLAGS, by_pointer, int64_at, replay, string_positions
from .rng import bernoulli, derive, sample_key, stream_key


@njit
def epoch_stream(seed, clock_address, position):
    """The stream key of the op at ``position`` for the epoch the clock (``rng.EpochClock``)
    at ``clock_address`` holds now: read once per batch, without the GIL. One function for
    every op, so a process compiles it once (not a closure per op)."""
    return stream_key(seed, int64_at(clock_address), position)


@njit
def epoch_streams(seed, clock_address, positions):
    """``epoch_stream`` of each op in ``positions`` (int64), read once per batch: the ops
    that run as one (a fused chain's parts, the view copies)."""
    epoch = int64_at(clock_address)
    keys = np.empty(len(positions), np.uint64)
    for k in range(len(positions)):
        keys[k] = stream_key(seed, epoch, positions[k])
    return keys


@njit
def no_stream(seed, clock_address, position):
    """``epoch_stream`` of an op that draws nothing (a centre crop): 0."""
    return np.uint64(0)


def clock_arguments(clock) -> tuple:
    """(seed, clock address) for ``epoch_stream(s)``, as numpy scalars: Numba types an int a
    closure captures as a literal of its value, and would compile them again for every op."""
    return np.uint64(clock.seed % 2 ** 64), np.int64(clock.address)


def stream_arguments(clock, position: int) -> tuple:
    """``epoch_stream``'s arguments for the op at ``position`` (``clock_arguments``)."""
    return (*clock_arguments(clock), np.int64(position))


@njit(inline="always")
def gate_fires(key, kernel_key, p, on_kernel_key, draw):
    """The one probability gate: whether an op with probability ``p`` applies to the sample
    of ``key`` (``base.Gate``: the draw ``draw`` of the kernel key or of the sample key)."""
    return p >= 1.0 or bernoulli(kernel_key if on_kernel_key else key, draw, p)


def gate_check(p: float, gate: Gate):
    """njit ``fires(sample key, kernel key) -> bool``: ``gate_fires`` with this op's
    probability and gate compiled in (the fused chains' links)."""
    on_kernel_key, draw = gate.on_kernel_key, gate.draw

    @njit(inline="always")
    def fires(key, kernel_key):
        return gate_fires(key, kernel_key, p, on_kernel_key, draw)

    return fires


@njit
def unchanged(image_in, image_out, *args):
    """What an image becomes when its op's gate does not fire: a copy."""
    copy_pixels(image_in, image_out)


def leading_arguments(step) -> int:
    """How many named arguments an njit ``step(..., *args)`` takes before ``*args`` (where
    the kernel's own arguments start)."""
    parameters = inspect.signature(step.py_func).parameters.values()
    return sum(1 for q in parameters if q.kind == q.POSITIONAL_OR_KEYWORD)


def keyed_batch_loop(kernel, args: tuple, p: float, gate: Gate, clock, position: int,
                     otherwise=unchanged, op=None, in_place: bool = False):
    """The per-batch function FFCV compiles for every per-sample op: read the op's stream
    for the epoch once, then ``sample_step(kernel, otherwise)`` for every sample in
    parallel, through its cached C entry (``pointers.by_pointer``). The parameters travel as
    arguments, not constants, so a new op instance (another parameter value) compiles only
    this thin closure: a fraction of a second, against tens of seconds for a kernel.

    A sample whose kernel raised stops the batch with ``kernel_errors.KernelError`` naming
    ``op`` (the op instance, for its ``origin``) and the sample. ``in_place``: the kernel's
    output is its input (the op declared no buffer: ``DeclaredOp.in_place``)."""
    seed, clock_address, stream_position = stream_arguments(clock, position)
    step = sample_step(kernel, otherwise)
    leading = leading_arguments(step)
    run = by_pointer(step, string_positions(args, first=leading), parallel=True,
                     names=argument_names(op if op is not None else kernel, kernel, leading))
    on_kernel_key, draw = gate.on_kernel_key, gate.draw

    def report(i, arguments):  # arguments: run's, the kernel's own left out
        raise_replayed(op if op is not None else kernel, arguments[3][i],
                       lambda: replay(step, i, arguments + args))

    def apply(images, dst, indices):
        stream = epoch_stream(seed, clock_address, stream_position)
        failed = run(images.shape[0], images, dst, indices, stream, p, on_kernel_key, draw,
                     *args)
        check_failure(failed, token, (images.shape[0], images, dst, indices, stream, p,
                                      on_kernel_key, draw))
        return dst[:images.shape[0]]

    def apply_in_place(images, _no_buffer, indices):
        stream = epoch_stream(seed, clock_address, stream_position)
        failed = run(images.shape[0], images, images, indices, stream, p, on_kernel_key,
                     draw, *args)
        check_failure(failed, token, (images.shape[0], images, images, indices, stream, p,
                                      on_kernel_key, draw))
        return images

    chosen = apply_in_place if in_place else apply
    token = reporter_token(report, chosen)
    chosen.with_indices = True
    return chosen


def argument_names(op, kernel, leading: int):
    """``by_pointer``'s ``names`` for a step calling ``kernel``: argument k is the op's
    parameter of that name (from the kernel's signature) or, before them, the batch's."""
    parameters = list(inspect.signature(kernel.py_func).parameters.values())[3:]
    named = [q.name for q in parameters if q.kind == q.POSITIONAL_OR_KEYWORD]

    def name(k: int) -> str:
        if k >= leading and k - leading < len(named):
            return f"{describe(op)}: parameter '{named[k - leading]}'"
        return f"{describe(op)}: argument {k}"

    return name


@lru_cache(maxsize=None)
def sample_step(kernel, otherwise=unchanged):
    """njit ``step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args)`` for
    sample i: its key, the gate (probability ``p``, drawn as ``base.Gate`` says) and
    ``kernel(image_in, image_out, kernel key, *args)`` — or, where the gate does not fire,
    ``otherwise(image_in, image_out, *args)``. One per kernel, for all its instances."""
    @njit(**ENTRY_FLAGS)
    def step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args):
        key = sample_key(stream, indices[i])
        kernel_key = derive(key, 1)
        if gate_fires(key, kernel_key, p, on_kernel_key, draw):
            kernel(images[i], dst[i], kernel_key, *args)
        else:
            otherwise(images[i], dst[i], *args)

    return step
