"""Kernels called through a C pointer, so that a kernel compiles once, into the cache, and
whatever calls it compiles nothing of it.

Numba optimises a caller together with the machine code of every dispatcher it calls, so
each per-batch closure FFCV compiled (one per op instance: its parameters, gate and position
were constants of the closure) used to re-optimise the whole kernel it calls, 15-20 s for
TrivialAugmentWide, in every process (docs/performance.md, "Compile time"). ``by_pointer``
puts the kernel behind a C entry point instead:

- the entry is a ``cfunc`` over flat scalars (each array becomes its address and shape, each
  tuple its items), compiled once per function and argument types and kept in pureffcv's
  on-disk cache (``operations.cache``) under a digest of everything the function runs
  (``code_digest.function_digest``: its code, its callees' code and the values it closes
  over) and the entry's flags, so
  a second process loads it in milliseconds and an edited kernel never reuses a stale build;
- the caller compiles only a call to that address; from Python (pureffcv's per-batch glue,
  ``ffcv_api.uncompiled``) the call goes through ctypes, and nothing is compiled but the
  entry.

The entry is compiled with the flags of FFCV's ``Compiler`` (``fastmath``, ``error_model``
``numpy``), which every kernel was compiled with before, so the bytes do not change.
Arguments that are neither arrays (C-contiguous) nor numbers nor tuples of them nor strings
keep the direct call (compiled in every process; a ``parallel`` loop then runs on one
thread), and say so once (``SerialFallbackWarning``). An entry Numba cannot cache (one that
calls a ctypes function, say) is compiled in every process.

An exception cannot cross a C entry (Numba would leave it set behind the caller's back: a
``SystemError`` without the kernel's message). So a parallel entry runs each sample's call
under ``try`` (``_guarded``), flags the samples that raised, and returns the first one; the
op then replays that sample directly from Python (``replay``) to get the exception itself,
with its message (``operations.kernel_errors``).
"""
import hashlib
import warnings
from contextlib import nullcontext
from functools import lru_cache
from typing import Callable, Dict, List, Optional

import numba
import numpy as np
from numba import types
from numba.core import ccallback
from numba.extending import intrinsic, overload

from . import cache, cache_locator, compile_flags, numba_private
from .code_digest import function_digest

#: FFCV's Compiler flags (ffcv/pipeline/compiler.py), the ones every kernel ran with before
ENTRY_FLAGS = {"fastmath": True, "error_model": "numpy"}
#: argument types an entry passes as they are
SCALARS = (types.Integer, types.Float, types.Boolean)

_callers: Dict[tuple, Callable] = {}
#: the plan of an argument compiled into the entry (``by_pointer``'s ``constants``)
CONSTANT = ["constant"]


class SerialFallbackWarning(UserWarning):
    """An argument cannot travel through a C entry: the kernel runs by a direct call, serially
    and compiled in every process."""


class KernelTypingError(TypeError):
    """Numba cannot type a kernel (a user's op, say). Raised in place of Numba's own
    TypingError, which its overload resolution would replace by "No implementation of
    function ..." and so lose the reason and the kernel's line."""


def by_pointer(function: Callable, constants: Optional[Dict[int, str]] = None,
               parallel: bool = False, names: Optional[Callable[[int], str]] = None) -> Callable:
    """An njit-callable taking ``function``'s arguments that calls ``function`` through its
    cached C entry (for kernels that write into an output array).

    - ``constants``: strings cannot travel through C; the value of each string argument by
      position, compiled into the entry (the caller still passes them).
    - ``parallel``: the caller's first argument is a count n, and the entry runs
      ``function(i, *the other arguments)`` for i in ``prange(n)``. (The loop must be in the
      entry: Numba cannot hand a tuple argument to a parallel loop, so the entry rebuilds
      tuples inside it.) It returns the first i whose call raised, -1 if none did: replay
      that one with ``replay`` for the exception.
    - ``names``: ``names(k) -> "op 'x', parameter 'y'"``, what argument k is, for the
      warning an argument that cannot travel through C gives (default: its position).

    One per function and options, kept for the process."""
    constants = dict(sorted((constants or {}).items()))
    key = (id(function), tuple(constants.items()), parallel)
    caller = _callers.get(key)
    if caller is None:
        caller = _callers[key] = _caller(function, constants, parallel, names)
    return caller


def replay(function: Callable, i: int, args: tuple) -> None:
    """Run sample ``i`` of a parallel ``by_pointer(function)`` call with arguments ``args``
    (the count first) directly, from Python: raises what it raised behind the entry."""
    function(i, *args[1:])


def string_positions(args: tuple, first: int) -> Dict[int, str]:
    """``by_pointer``'s ``constants`` for a call whose arguments from position ``first`` on
    are ``args``."""
    return {first + k: value for k, value in enumerate(args) if isinstance(value, str)}


def _caller(function: Callable, constants: Dict[int, str], parallel: bool,
            names: Optional[Callable[[int], str]]) -> Callable:
    trampolines = {}  # _python_key of the arguments -> what Python runs for them

    def call(*args):
        """From Python (the per-batch glue, ``ffcv_api.uncompiled``): the entry through
        ctypes, which releases the GIL while it runs; nothing is compiled but the entry."""
        key = tuple(map(_python_key, args))
        trampoline = trampolines.get(key)
        if trampoline is None:
            trampoline = trampolines[key] = _trampoline(
                function, tuple(map(numba.typeof, args)), constants, parallel, names,
                first_flagged)
        return trampoline(*args)

    @overload(call, jit_options=ENTRY_FLAGS)
    def typed_call(*args):
        args = args[0] if len(args) == 1 and isinstance(args[0], types.StarArgTuple) else args
        return _trampoline(function, args, constants, parallel, names, first_failure)

    call.__qualname__ = call.__name__ = f"by_pointer_{getattr(function, '__name__', 'function')}"
    return call


def _python_key(value):
    """What decides ``numba.typeof(value)`` for the arguments an entry takes, at a fraction
    of its cost (once per argument per batch)."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        return (value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous,
                flags.writeable, flags.aligned)
    if isinstance(value, tuple):
        return tuple(map(_python_key, value))
    if isinstance(value, int) and not isinstance(value, bool):
        return int, -2 ** 63 <= value < 2 ** 63  # int64, else uint64
    return type(value)


def _trampoline(function: Callable, argument_types, constants: Dict[int, str], parallel: bool,
                names: Optional[Callable[[int], str]], first: Callable) -> Callable:
    """The caller's body for these argument types: flatten the arguments and call the entry
    (``first``: how a parallel call finds its first failed sample), or the direct call where
    an argument cannot travel through C. Valid Python and valid Numba alike."""
    plan = [CONSTANT if k in constants else _flat(types.unliteral(t))
            for k, t in enumerate(argument_types)]
    try:
        entry = None if any(p is None for p in plan) else \
            _entry(function, argument_types, plan, constants, parallel)
    except numba.core.errors.TypingError as error:
        raise KernelTypingError(str(error)) from error
    if entry is None:
        k = next(k for k, p in enumerate(plan) if p is None)
        _warn_serial(function, names(k) if names else f"argument {k}", argument_types[k])
        return _direct(function, parallel)
    namespace = {"entry": entry, "np": np, "first_failure": first}
    source = _source("trampoline", plan, argument_types, constants, parallel, caller=True)
    exec(compile(source, __file__, "exec"), namespace)
    return namespace["trampoline"]


# --- flattening -----------------------------------------------------------------------------

def _flat(t) -> Optional[list]:
    """How one argument of type ``t`` travels: a list of (path, type) leaves, path being the
    index path into the argument and type a Numba scalar type or a C-contiguous array type
    (its address and extents travel); None when the argument cannot travel through C."""
    if isinstance(t, SCALARS):
        return [((), t)]
    if isinstance(t, types.NoneType):
        return []
    if isinstance(t, types.Array):
        if t.layout != "C" or not isinstance(t.dtype, SCALARS):
            return None
        return [((), t)]
    if isinstance(t, types.BaseTuple):
        leaves = []
        for k, item in enumerate(t):
            inner = _flat(item)
            if inner is None or any(isinstance(leaf, types.Array) for _, leaf in inner):
                return None  # arrays inside tuples: not worth the generality
            leaves += [((k,) + path, leaf) for path, leaf in inner]
        return leaves
    return None


def _c_types(plan, parallel: bool) -> List:
    """The entry's flat scalar signature: an array is its address then its extents (a
    parallel entry's first: the address of its flags of failed samples)."""
    flat = [types.uintp] if parallel else []
    for leaves in plan:
        for _, leaf in ([] if leaves is CONSTANT else leaves):
            flat += [types.uintp] + [types.intp] * leaf.ndim if isinstance(leaf, types.Array) \
                else [leaf]
    return flat


_warned = set()


def _warn_serial(function, what: str, argument_type) -> None:
    """Say once per function and argument that the kernel runs by the direct call."""
    if (id(function), what) in _warned:
        return
    _warned.add((id(function), what))
    warnings.warn(SerialFallbackWarning(
        f"pureffcv: {what} is a {argument_type}, which cannot travel through a C entry (only "
        f"C-contiguous arrays, numbers, strings and tuples of numbers can): the kernel runs "
        f"serially, compiled in every process"), stacklevel=2)


def _direct(function: Callable, parallel: bool) -> Callable:
    """The caller's implementation where no entry can be built: the plain call (a parallel
    one returns the first i whose call raised, -1 if none, as the entry does)."""
    if not parallel:
        def direct(*args):
            function(*args)
        return direct

    def direct_loop(*args):
        for i in range(args[0]):
            try:
                function(i, *args[1:])
            except Exception:
                return i
        return -1
    return direct_loop


def first_flagged(failed) -> int:
    """``first_failure`` in numpy, for the Python trampoline."""
    flagged = np.flatnonzero(failed)
    return int(flagged[0]) if len(flagged) else -1


@numba.njit(**ENTRY_FLAGS)
def first_failure(failed) -> int:
    """The first index flagged in ``failed``, -1 if none is."""
    for i in range(failed.shape[0]):
        if failed[i]:
            return i
    return -1


@lru_cache(maxsize=None)
def _guarded(function, arity: int):
    """njit ``guarded(i, failed, a0, ..., a<arity-1>)``: ``function(i, a0, ...)``, and
    ``failed[i] = 1`` if it raised (the exception itself cannot leave the entry). Spelled
    out, not ``*args``: Numba cannot compile a star call inside ``try``."""
    names = ", ".join(f"a{k}" for k in range(arity))
    namespace = {"function": function}
    exec(compile(f"def guarded(i, failed, {names}):\n"
                 f"    try:\n"
                 f"        function(i, {names})\n"
                 f"    except Exception:\n"
                 f"        failed[i] = 1\n", __file__, "exec"), namespace)
    return numba.njit(**ENTRY_FLAGS)(namespace["guarded"])


def _source(name: str, plan, argument_types, constants: Dict[int, str], parallel: bool,
            caller: bool) -> str:
    """The Python source of the entry (``caller`` False: rebuilds the arguments from flat
    scalars and calls ``function``, in a parallel loop if ``parallel``) or of the trampoline
    (``caller`` True: flattens the arguments and calls ``entry``)."""
    flat_names, rebuilt, passed = [], [], []
    for k, (leaves, t) in enumerate(zip(plan, argument_types)):
        if leaves is CONSTANT:
            rebuilt.append(repr(constants[k]))
            continue
        for j, (path, leaf) in enumerate(leaves):
            access = f"args[{k}]" + "".join(f"[{i}]" for i in path)
            if isinstance(leaf, types.Array):
                dims = [f"a{k}_{j}_{d}" for d in range(leaf.ndim)]
                flat_names += [f"a{k}_{j}"] + dims
                passed.append(f"{access}.ctypes.data")
                passed += [f"{access}.shape[{d}]" for d in range(leaf.ndim)]
            else:
                flat_names.append(f"a{k}_{j}")
                passed.append(access)
        rebuilt.append(_rebuild(k, leaves, t))
    if caller and parallel:
        return (f"def {name}(*args):\n"
                f"    failed = np.zeros(args[0], np.uint8)\n"
                f"    entry({', '.join(['failed.ctypes.data'] + passed)})\n"
                f"    return first_failure(failed)\n")
    if caller:
        return f"def {name}(*args):\n    entry({', '.join(passed)})\n"
    if parallel:
        return (f"def {name}({', '.join(['failed_at'] + flat_names)}):\n"
                f"    failed = carray(pointer_to_uint8(failed_at), ({rebuilt[0]},))\n"
                f"    for i in prange({rebuilt[0]}):\n"
                f"        guarded({', '.join(['i', 'failed'] + rebuilt[1:])})\n")
    return (f"def {name}({', '.join(flat_names)}):\n"
            f"    function({', '.join(rebuilt)})\n")


def _rebuild(k: int, leaves, t, path=()) -> str:
    """The expression that rebuilds argument ``k`` (or its item at ``path``) in the entry."""
    if isinstance(t, types.NoneType):
        return "None"
    if isinstance(t, types.BaseTuple):
        items = [_rebuild(k, leaves, item, path + (i,)) for i, item in enumerate(t)]
        return "(" + "".join(item + ", " for item in items) + ")"
    j = next(j for j, (p, _) in enumerate(leaves) if p == path)
    leaf = leaves[j][1]
    if isinstance(leaf, types.Array):
        dims = ", ".join(f"a{k}_{j}_{d}" for d in range(leaf.ndim))
        return f"carray(pointer_to_{leaf.dtype}(a{k}_{j}), ({dims},))"
    return f"a{k}_{j}"


# --- the entry and its cache ----------------------------------------------------------------

@lru_cache(maxsize=None)
def _pointer_cast(dtype):
    """An intrinsic ``address -> CPointer(dtype)``."""
    @intrinsic
    def pointer_to(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(types.CPointer(dtype)))
        return types.CPointer(dtype)(address), codegen

    return pointer_to


_byte_pointer = _pointer_cast(types.uint8)


@numba.njit(inline="always")
def bytes_at(address, size):
    """The uint8[size] array at ``address`` (memory that the caller keeps alive)."""
    return numba.carray(_byte_pointer(address), (size,))


def _entry(function, argument_types, plan, constants: Dict[int, str], parallel: bool) -> Callable:
    """The ctypes function of ``function``'s cached entry for these argument types and
    options (built once per process)."""
    signature = tuple(map(str, argument_types)) + tuple(constants.items()) + (parallel,)
    built = _entries.get((id(function), signature))
    if built is not None:
        return built.ctypes
    flags = dict(ENTRY_FLAGS, parallel=parallel)
    guarded = _guarded(function, len(argument_types) - 1) if parallel else None
    compile_flags.pin(guarded if parallel else function, flags)  # before the digest reads them
    digest = hashlib.sha1(repr((function_digest(function), signature, sorted(flags.items()),
                                cache.cache_key())).encode()).hexdigest()[:20]
    name = f"entry_{digest}"
    namespace = {"__name__": __name__, "function": function, "carray": numba.carray,
                 "prange": numba.prange, "guarded": guarded,
                 "pointer_to_uint8": _pointer_cast(types.uint8)}
    for leaves in plan:
        for _, leaf in ([] if leaves is CONSTANT else leaves):
            if isinstance(leaf, types.Array):
                namespace[f"pointer_to_{leaf.dtype}"] = _pointer_cast(leaf.dtype)
    source = _source(name, plan, argument_types, constants, parallel, caller=False)
    exec(compile(source, __file__, "exec"), namespace)
    on_disk = None
    if cache.enabled():
        cache_locator.install_locator()
        on_disk = numba_private.DigestIndexedCache(namespace[name], digest)
    with cache.build_lock(name) if on_disk is not None else nullcontext():
        # processes starting together: one compiles, the others wait and load
        entry = numba_private.c_entry(namespace[name], tuple(_c_types(plan, parallel)), types.void,
                                      flags, on_disk)
    _entries[(id(function), signature)] = entry  # its machine code lives as long as the process
    return entry.ctypes


_entries: Dict[tuple, ccallback.CFunc] = {}
