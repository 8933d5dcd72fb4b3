"""Corrections to FFCV 1.0.2 that pureffcv applies on import (FFCV is unmaintained).

Memory managers' ``state_type``: FFCV builds its reader's Numba signature by taking Numba's
*interned* array types (``nb.uint8[::1]``, ...) and setting ``mutable = False`` on them. That
mutates the one shared type object every other compiled function uses, which changes its
hash: every Numba dispatcher whose overload table holds a signature with that type is left
with a corrupt ``OrderedDict`` and raises ``KeyError`` from ``dispatcher.overloads`` on its
next compile or when it is garbage-collected. Inside FFCV's loader thread that is a Loader
waiting forever; elsewhere a test failing depending on which Loader ran first. The
replacements build new read-only types with the same meaning (including FFCV's OS-cache typo,
which leaves the two uint64 arrays mutable, and the OS-cache reader's return type, which the
mutation made read-only) and touch no shared object.
"""
import numba as nb
import numpy as np
from ffcv.memory_managers.os_cache import OSCacheManager
from ffcv.pipeline.compiler import Compiler
from ffcv.memory_managers.process_cache.manager import ProcessCacheManager


def _readonly(dtype, ndim: int) -> nb.types.Array:
    return nb.types.Array(dtype, ndim, "C", readonly=True)


def _os_cache_state_type(self):
    return nb.types.Tuple([_readonly(nb.uint8, 1), nb.uint64[::1], nb.uint64[::1]])


def _os_cache_compile_reader(self):
    """FFCV's OS-cache reader (a sample's bytes from the memory-mapped file), compiled with
    the read-only return type FFCV's mutation gave it by accident."""
    def read(address, mem_state):
        size = mem_state[2][np.searchsorted(mem_state[1], address)]
        return mem_state[0][address:address + size]

    return Compiler.compile(read, _readonly(nb.uint8, 1)(nb.uint64, self.state_type))


def _process_cache_state_type(self):
    return nb.types.Tuple([_readonly(nb.uint8, 2), _readonly(nb.uint64, 1),
                           _readonly(nb.uint64, 1), _readonly(nb.uint32, 1)])


OSCacheManager.state_type = property(_os_cache_state_type)
OSCacheManager.compile_reader = _os_cache_compile_reader
ProcessCacheManager.state_type = property(_process_cache_state_type)
