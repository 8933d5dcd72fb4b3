"""Kernels called through a C pointer, so the per-batch closures FFCV compiles stay thin.

Numba optimises a caller together with the machine code of every dispatcher it calls, so
each per-batch closure FFCV compiles (one per op instance: its parameters, gate and position
are constants of the closure) used to re-optimise the whole kernel it calls, 15-20 s for
TrivialAugmentWide, in every process (docs/performance.md, "Compile time"). ``by_pointer``
puts the kernel behind a C entry point instead:

- the entry is a ``cfunc`` over flat scalars (each array becomes its address and shape, each
  tuple its items), compiled once per function and argument types and kept in pureffcv's
  on-disk cache (``operations.cache``) under a digest of everything the function runs
  (``cache.function_digest``: its code, its callees' code and the values it closes over), so
  a second process loads it in milliseconds and an edited kernel never reuses a stale build;
- the caller compiles only a call to that address.

The entry is compiled with the flags of FFCV's ``Compiler`` (``fastmath``, ``error_model``
``numpy``), which every kernel was compiled with before, so the bytes do not change.
Arguments that are neither arrays (C-contiguous) nor numbers nor tuples of them nor strings
keep the direct call (compiled in every process; a ``parallel`` loop then runs on one
thread). An entry Numba cannot cache (one that calls a ctypes function, say) is compiled in
every process.
"""
import hashlib
from functools import lru_cache
from typing import Callable, Dict, List, Optional

import numba
from numba import types
from numba.core import ccallback, caching
from numba.extending import intrinsic, overload

from . import cache

#: FFCV's Compiler flags (ffcv/pipeline/compiler.py), the ones every kernel ran with before
ENTRY_FLAGS = {"fastmath": True, "error_model": "numpy"}
#: argument types an entry passes as they are
SCALARS = (types.Integer, types.Float, types.Boolean)

_callers: Dict[tuple, Callable] = {}
#: the plan of an argument compiled into the entry (``by_pointer``'s ``constants``)
CONSTANT = ["constant"]


class KernelTypingError(TypeError):
    """Numba cannot type a kernel (a user's op, say). Raised in place of Numba's own
    TypingError, which its overload resolution would replace by "No implementation of
    function ..." and so lose the reason and the kernel's line."""


def by_pointer(function: Callable, constants: Optional[Dict[int, str]] = None,
               parallel: bool = False) -> Callable:
    """An njit-callable taking ``function``'s arguments that calls ``function`` through its
    cached C entry (returns nothing: for kernels that write into an output array).

    - ``constants``: strings cannot travel through C; the value of each string argument by
      position, compiled into the entry (the caller still passes them).
    - ``parallel``: the caller's first argument is a count n, and the entry runs
      ``function(i, *the other arguments)`` for i in ``prange(n)``. (The loop must be in the
      entry: Numba cannot hand a tuple argument to a parallel loop, so the entry rebuilds
      tuples inside it.)

    One per function and options, kept for the process."""
    constants = dict(sorted((constants or {}).items()))
    key = (id(function), tuple(constants.items()), parallel)
    caller = _callers.get(key)
    if caller is None:
        caller = _callers[key] = _caller(function, constants, parallel)
    return caller


def string_positions(args: tuple, first: int) -> Dict[int, str]:
    """``by_pointer``'s ``constants`` for a call whose arguments from position ``first`` on
    are ``args``."""
    return {first + k: value for k, value in enumerate(args) if isinstance(value, str)}


def _caller(function: Callable, constants: Dict[int, str], parallel: bool) -> Callable:
    call = _direct(function, parallel)  # what Python runs; Numba compiles the overload

    @overload(call, jit_options=ENTRY_FLAGS)
    def typed_call(*args):
        args = args[0] if len(args) == 1 and isinstance(args[0], types.StarArgTuple) else args
        plan = [CONSTANT if k in constants else _flat(types.unliteral(t))
                for k, t in enumerate(args)]
        try:
            entry = None if any(p is None for p in plan) else \
                _entry(function, args, plan, constants, parallel)
        except numba.core.errors.TypingError as error:
            raise KernelTypingError(str(error)) from error
        if entry is None:
            return _direct(function, parallel)
        namespace = {"entry": entry}
        source = _source("trampoline", plan, args, constants, parallel, caller=True)
        exec(compile(source, __file__, "exec"), namespace)
        return namespace["trampoline"]

    call.__qualname__ = call.__name__ = f"by_pointer_{getattr(function, '__name__', 'function')}"
    return call


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


def _c_types(plan) -> List:
    """The entry's flat scalar signature: an array is its address then its extents."""
    flat = []
    for leaves in plan:
        for _, leaf in ([] if leaves is CONSTANT else leaves):
            flat += [types.uintp] + [types.intp] * leaf.ndim if isinstance(leaf, types.Array) \
                else [leaf]
    return flat


def _direct(function: Callable, parallel: bool) -> Callable:
    """The caller's implementation where no entry can be built: the plain call."""
    if not parallel:
        def direct(*args):
            function(*args)
        return direct

    def direct_loop(*args):
        for i in range(args[0]):
            function(i, *args[1:])
    return direct_loop


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
    if caller:
        return f"def {name}(*args):\n    entry({', '.join(passed)})\n"
    if parallel:
        return (f"def {name}({', '.join(flat_names)}):\n"
                f"    for i in prange({rebuilt[0]}):\n"
                f"        function({', '.join(['i'] + rebuilt[1:])})\n")
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


_byte_pointer, _int64_pointer = _pointer_cast(types.uint8), _pointer_cast(types.int64)


@numba.njit(inline="always")
def bytes_at(address, size):
    """The uint8[size] array at ``address`` (memory that the caller keeps alive)."""
    return numba.carray(_byte_pointer(address), (size,))


@numba.njit(inline="always")
def int64_at(address):
    """The int64 at ``address`` as it is now (memory that the caller keeps alive)."""
    return numba.carray(_int64_pointer(address), (1,))[0]


class _DigestCache(caching.FunctionCache):
    """Numba's function cache, indexed by ``cache.function_digest`` of what the entry runs
    instead of the entry's bytecode and closure (which hold no information here: every
    entry's code is generated)."""

    def __init__(self, py_func, digest: str):
        super().__init__(py_func)
        self._digest = digest

    def _index_key(self, sig, codegen):
        return (sig, codegen.magic_tuple(), (self._digest,))


def _entry(function, argument_types, plan, constants: Dict[int, str], parallel: bool) -> Callable:
    """The ctypes function of ``function``'s cached entry for these argument types and
    options (built once per process)."""
    signature = tuple(map(str, argument_types)) + tuple(constants.items()) + (parallel,)
    built = _entries.get((id(function), signature))
    if built is not None:
        return built.ctypes
    digest = hashlib.sha1(repr((cache.function_digest(function), signature,
                                cache.cache_key())).encode()).hexdigest()[:20]
    name = f"entry_{digest}"
    namespace = {"__name__": __name__, "function": function, "carray": numba.carray,
                 "prange": numba.prange}
    for leaves in plan:
        for _, leaf in ([] if leaves is CONSTANT else leaves):
            if isinstance(leaf, types.Array):
                namespace[f"pointer_to_{leaf.dtype}"] = _pointer_cast(leaf.dtype)
    source = _source(name, plan, argument_types, constants, parallel, caller=False)
    exec(compile(source, __file__, "exec"), namespace)
    entry = ccallback.CFunc(namespace[name], (tuple(_c_types(plan)), types.void), {},
                            dict(ENTRY_FLAGS, parallel=parallel))
    if cache.enabled():
        cache.install_locator()
        entry._cache = _DigestCache(namespace[name], digest)
    entry.compile()
    _entries[(id(function), signature)] = entry  # its machine code lives as long as the process
    return entry.ctypes


_entries: Dict[tuple, ccallback.CFunc] = {}
