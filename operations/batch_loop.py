"""The runtime loop every per-sample op runs in: once per batch the op's RNG stream for the
clock's epoch, then in parallel for every sample its key, the probability gate and the kernel
(``keyed_batch_loop``), through a cached C entry (``pointers.by_pointer``). The fused chains
(``cpu/fused.py``) and the keyed decoders reuse its pieces (``epoch_stream``,
``epoch_streams``, ``gate_check``); the pairwise chains (``device/batch.ChainedPairs``) run
its per-sample call (``sample_call``) per pair, through ``chained_pair_step``."""
import inspect
from functools import lru_cache
from typing import Callable, NamedTuple, Tuple

import numpy as np
from numba import njit

from . import host_rng
from .base import Gate
from .cpu.pixels import copy_pixels
from .ffcv_api import uncompiled
from .kernel_errors import check_failure, describe, raise_replayed
from .pointers import ENTRY_FLAGS, by_pointer, replay, string_positions
from .rng import bernoulli, derive, sample_key


def epoch_stream(clock, position: int) -> np.uint64:
    """The stream key of the op at ``position`` for the epoch ``clock`` (``rng.EpochClock``)
    holds now: read once per batch by the op's per-batch glue."""
    return np.uint64(host_rng.stream_key(clock.seed, clock.epoch, position))


def epoch_streams(clock, positions) -> np.ndarray:
    """``epoch_stream`` of each op in ``positions`` (uint64): the ops that run as one (a
    fused chain's parts, the view copies)."""
    return np.array([epoch_stream(clock, int(position)) for position in positions], np.uint64)


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


class KeyedLoop(NamedTuple):
    """What a per-sample op runs in ``keyed_batch_loop``: ``kernel(image_in, image_out, kernel
    key, *args)`` where its gate (probability ``p``, drawn as ``gate`` says) fires, else
    ``otherwise(image_in, image_out, *args)``; ``in_place``: the kernel's output is its input
    (the op declared no buffer: ``DeclaredOp.in_place``)."""

    kernel: Callable
    args: tuple
    p: float
    gate: Gate
    otherwise: Callable = unchanged
    in_place: bool = False


def keyed_batch_loop(loop: KeyedLoop, clock, position: int, op=None):
    """The per-batch function of every per-sample op, run from Python as it is
    (``ffcv_api.uncompiled``): read the op's stream for the epoch once, then
    ``sample_step(loop.kernel, loop.otherwise)`` for every sample in parallel, through its
    cached C entry (``pointers.by_pointer``). The parameters travel as arguments, not
    constants, so a new op instance (another parameter value) compiles nothing: its entry is
    the kernel's.

    A sample whose kernel raised stops the batch with ``kernel_errors.KernelError`` naming
    ``op`` (the op instance, for its ``origin``) and the sample."""
    kernel, args = loop.kernel, loop.args
    step = sample_step(kernel, loop.otherwise)
    leading = leading_arguments(step)
    run = by_pointer(step, string_positions(args, first=leading), parallel=True,
                     names=argument_names(op if op is not None else kernel, kernel, leading))
    p, on_kernel_key, draw = loop.p, loop.gate.on_kernel_key, loop.gate.draw

    def report(i, arguments):  # arguments: run's, the kernel's own left out
        raise_replayed(op if op is not None else kernel, arguments[3][i],
                       lambda: replay(step, i, arguments + args))

    def apply(images, dst, indices):
        out = images if loop.in_place else dst
        arguments = (images.shape[0], images, out, indices, epoch_stream(clock, position), p,
                     on_kernel_key, draw)
        check_failure(run(*arguments, *args), report, arguments)
        return out[:images.shape[0]]

    apply.with_indices = True
    return uncompiled(apply)


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
def sample_call(kernel, otherwise=unchanged):
    """njit ``call(index, image_in, image_out, stream, p, on_kernel_key, draw, *args)`` for
    the sample of data-set index ``index``: its key, the gate (probability ``p``, drawn as
    ``base.Gate`` says) and ``kernel(image_in, image_out, kernel key, *args)`` — or, where
    the gate does not fire, ``otherwise(image_in, image_out, *args)``. One per kernel, for
    all its instances; a batch's loop (``sample_step``) and a chain's links call it."""
    @njit(**ENTRY_FLAGS)
    def call(index, image_in, image_out, stream, p, on_kernel_key, draw, *args):
        key = sample_key(stream, index)
        kernel_key = derive(key, 1)
        if gate_fires(key, kernel_key, p, on_kernel_key, draw):
            kernel(image_in, image_out, kernel_key, *args)
        else:
            otherwise(image_in, image_out, *args)

    return call


@lru_cache(maxsize=None)
def sample_step(kernel, otherwise=unchanged):
    """njit ``step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args)``:
    ``sample_call(kernel, otherwise)`` for sample i of a batch."""
    call = sample_call(kernel, otherwise)

    @njit(**ENTRY_FLAGS)
    def step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args):
        call(indices[i], images[i], dst[i], stream, p, on_kernel_key, draw, *args)

    return step


#: where a chain's step reads and writes, per image: the chain's input, its output, scratch
INPUT, OUTPUT, SCRATCH, SECOND_SCRATCH = range(4)


def chain_routes(in_place: Tuple[bool, ...]) -> Tuple[Tuple[int, int], ...]:
    """(source, target) of each step of a chain whose steps run in place or not as
    ``in_place`` says: the last step with a buffer of its own writes the output; those
    before it write scratch (two, in turn, when one reads what the other holds); an in-place
    step runs on what the step before it wrote (the input if none did)."""
    writer = max(s for s, runs_in_place in enumerate(in_place) if not runs_in_place)
    routes, current = [], INPUT
    for s, runs_in_place in enumerate(in_place):
        if runs_in_place:
            routes.append((current, current))
            continue
        target = OUTPUT if s == writer else SECOND_SCRATCH if current == SCRATCH else SCRATCH
        routes.append((current, target))
        current = target
    return tuple(routes)


@lru_cache(maxsize=None)
def chained_pair_step(calls: Tuple[Callable, ...], counts: Tuple[int, ...],
                      routes: Tuple[Tuple[int, int], ...], pair_kernel):
    """njit ``step(k, images, out, indices, streams, ps, on_kernel_keys, draws, decision,
    *args)`` for pair k of a batch of B = ``out.shape[0]`` images: the ``sample_call``s
    ``calls`` for image k and then image B-1-k, each from and to the buffers its route
    (``chain_routes``) names (step s takes ``streams[s]``, ``ps[s]``, ``on_kernel_keys[s]``,
    ``draws[s]`` and the next ``counts[s]`` of ``args``), then ``pair_kernel(k, out,
    decision)`` while both are in cache. Scratch, where steps write some, is the shape and
    dtype of the input (those steps keep the image's type), allocated once per pair: it
    stays in cache instead of being written to memory. The middle image of an odd batch
    gets the steps only. Each image gets the calls its ops make one after the other, so the
    same bytes."""
    chain = _chain(calls, counts, routes)
    scratch = SCRATCH_BUFFERS[len({target for _, target in routes if target >= SCRATCH})]

    @njit(**ENTRY_FLAGS)
    def step(k, images, out, indices, streams, ps, on_kernel_keys, draws, decision, *args):
        first, second = scratch(images[k])
        chain(indices[k], images[k], out[k], first, second, streams, ps, on_kernel_keys,
              draws, args)
        partner = out.shape[0] - 1 - k
        if partner != k:
            chain(indices[partner], images[partner], out[partner], first, second, streams,
                  ps, on_kernel_keys, draws, args)
            pair_kernel(k, out, decision)

    return step


@njit
def _no_scratch(image):
    return image, image  # never written: no route targets them


@njit
def _one_scratch(image):
    return np.empty_like(image), image


@njit
def _two_scratch(image):
    return np.empty_like(image), np.empty_like(image)


SCRATCH_BUFFERS = (_no_scratch, _one_scratch, _two_scratch)


def _buffer(slot: int):
    """njit ``buffer(image, out, first, second)``: the one of its arguments at ``slot``."""
    @njit(inline="always")
    def buffer(image, out, first, second):
        return (image, out, first, second)[slot]
    return buffer


#: a route's buffer, by ``INPUT``, ``OUTPUT``, ``SCRATCH``, ``SECOND_SCRATCH``
BUFFERS = tuple(_buffer(slot) for slot in (INPUT, OUTPUT, SCRATCH, SECOND_SCRATCH))


def _chain(calls: Tuple[Callable, ...], counts: Tuple[int, ...],
           routes: Tuple[Tuple[int, int], ...]):
    """njit ``chain(index, image, out, first, second, streams, ps, on_kernel_keys, draws,
    args)``: the calls in order for one image, built link by link (Numba cannot loop over a
    tuple of different functions)."""
    @njit
    def done(index, image, out, first, second, streams, ps, on_kernel_keys, draws, args):
        pass

    chain, stop = done, sum(counts)
    for s in reversed(range(len(calls))):
        start = stop - counts[s]
        chain = _link(s, calls[s], start, stop, routes[s], chain)
        stop = start
    return chain


def _link(s: int, call, start: int, stop: int, route: Tuple[int, int], rest):
    """One link of ``_chain``: call ``s`` from and to the buffers of its ``route`` with
    ``args[start:stop]``, then the rest."""
    source, target = BUFFERS[route[0]], BUFFERS[route[1]]

    @njit
    def link(index, image, out, first, second, streams, ps, on_kernel_keys, draws, args):
        call(index, source(image, out, first, second), target(image, out, first, second),
             streams[s], ps[s], on_kernel_keys[s], draws[s], *args[start:stop])
        rest(index, image, out, first, second, streams, ps, on_kernel_keys, draws, args)
    return link
