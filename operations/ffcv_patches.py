"""Corrections to FFCV 1.0.2 (FFCV is unmaintained), installed by ``apply()`` — which the
compiler calls before it builds a pipeline, and which is idempotent — not on import.

Batch buffers reused across epochs: FFCV allocates every pipeline buffer (batches_ahead + 2
batches per op) anew for each epoch, so each epoch page-faults them in again: ~200 MB for a
float32 160 px pipeline at batch 128, 10-15% of a small data set's epoch time on the 2-core
CI machine (decode-only 1,410 -> 1,600 images/s, a full policy 1,070 -> 1,330 with 1,024
images). ``_allocate_memory`` hands an epoch the previous epoch's buffers once that epoch's
thread has finished and its batches were all taken (or it was garbage-collected); a second
iterator started while the first still runs gets buffers of its own. So a batch stays valid
until the next one is requested or a new epoch starts; clone what you keep longer.

Memory managers' ``state_type``: FFCV builds its reader's Numba signature by taking Numba's
*interned* array types (``nb.uint8[::1]``, ...) and setting ``mutable = False`` on them. That
mutates the one shared type object every other compiled function uses, which changes its
hash: every Numba dispatcher whose overload table holds a signature with that type is left
with a corrupt ``OrderedDict`` and raises ``KeyError`` from ``dispatcher.overloads`` on its
next compile or when it is garbage-collected. Inside FFCV's loader thread that is a Loader
waiting forever; elsewhere a test failing depending on which Loader ran first. The
replacements build new read-only types with the same meaning (including FFCV's OS-cache typo,
which leaves the two uint64 arrays mutable, and the OS-cache reader's return type, which the
mutation made read-only) and touch no shared object. The OS-cache reader itself is one
module-level function compiled once and kept in pureffcv's cache, not a closure FFCV compiles
for every Loader.

Per-batch code run as it is: FFCV's ``Compiler.compile`` leaves the per-batch functions of
pureffcv's ops alone (``ffcv_api.uncompiled`` says why). Readers for a whole batch: the
decoders' per-batch code runs from Python, so they read a batch's sample locations with numpy
(``cpu.decode_loop.locate_samples``): each of FFCV's two readers gets a ``locate``, itself
for a whole batch, vectorized, instead of being called per sample in Numba.
"""
import weakref
from functools import lru_cache, partial
from typing import Tuple

import numba as nb
import numpy as np
import torch
from ffcv.loader.epoch_iterator import EpochIterator
from ffcv.memory_managers.os_cache import OSCacheManager
from ffcv.memory_managers.process_cache.manager import ProcessCacheManager
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.graph import Graph

from . import cache


def _readonly(dtype, ndim: int) -> nb.types.Array:
    return nb.types.Array(dtype, ndim, "C", readonly=True)


def _os_cache_state_type(self):
    return nb.types.Tuple([_readonly(nb.uint8, 1), nb.uint64[::1], nb.uint64[::1]])


def _read_os_cache(address, mem_state):
    """FFCV's OS-cache reader: a sample's bytes from the memory-mapped file."""
    size = mem_state[2][np.searchsorted(mem_state[1], address)]
    return mem_state[0][address:address + size]


@lru_cache(maxsize=1)
def _compiled_os_cache_reader():
    """``_read_os_cache`` compiled with FFCV's Compiler flags and the read-only return type
    FFCV's mutation gave it by accident, once per process and kept in pureffcv's cache
    (``cache_locator``): FFCV compiled a new closure for every Loader (~0.4 s)."""
    signature = _readonly(nb.uint8, 1)(nb.uint64, _os_cache_state_type(None))
    reader = nb.njit(signature, fastmath=True, nogil=True, error_model="numpy",
                     cache=cache.enabled())(_read_os_cache)
    reader.locate = _locate_in_file
    return reader


def _locate_in_file(pointers, mem_state) -> Tuple[np.ndarray, np.ndarray]:
    """``_read_os_cache`` for a batch: each sample's address and size (clipped as the slice
    clips)."""
    data, starts, sizes = mem_state
    pointers = pointers.astype(np.int64)
    sizes = sizes[np.searchsorted(starts, pointers.astype(np.uint64))].astype(np.int64)
    return data.ctypes.data + pointers, np.clip(sizes, 0, len(data) - pointers)


_read_os_cache.locate = _locate_in_file


def _os_cache_compile_reader(self):
    return _compiled_os_cache_reader() if Compiler.is_enabled else _read_os_cache


_ffcv_compile = Compiler.compile.__func__


def _compile_unless_uncompiled(cls, code, signature=None):
    """FFCV's ``Compiler.compile``, leaving code marked ``ffcv_api.uncompiled`` as it is."""
    return code if getattr(code, "uncompiled", False) else _ffcv_compile(cls, code, signature)


def _process_cache_state_type(self):
    return nb.types.Tuple([_readonly(nb.uint8, 2), _readonly(nb.uint64, 1),
                           _readonly(nb.uint64, 1), _readonly(nb.uint32, 1)])


_ffcv_process_cache_compile_reader = ProcessCacheManager.compile_reader


def _process_cache_compile_reader(self):
    reader = _ffcv_process_cache_compile_reader(self)
    reader.locate = partial(_locate_in_pages, int(np.log2(self.reader.page_size)))
    return reader


def _locate_in_pages(page_size_log2: int, pointers, mem_state) -> Tuple[np.ndarray, np.ndarray]:
    """FFCV's process-cache reader for a batch: each sample's address in the page slot its
    page was loaded into, and its size (clipped to the page, as the slice clips)."""
    pages, starts, sizes, slots = mem_state
    sizes = sizes[np.searchsorted(starts, pointers.astype(np.uint64))].astype(np.int64)
    pointers = pointers.astype(np.int64)
    page = pointers >> page_size_log2
    offset = pointers - (page << page_size_log2)
    addresses = pages.ctypes.data + slots[page].astype(np.int64) * pages.strides[0] + offset
    return addresses, np.clip(sizes, 0, pages.shape[1] - offset)


class _Lease:
    """A graph's last-allocated batch buffers and the epoch iterator they were given to."""

    def __init__(self, key, buffers):
        self.key, self.buffers, self.owner = key, buffers, None

    def released(self) -> bool:
        """The owner is gone, or its thread finished and every batch was taken."""
        if self.owner is None:  # allocated outside an EpochIterator: unknown user
            return False
        owner = self.owner()
        return owner is None or (not owner.is_alive() and owner.output_queue.empty())


_ffcv_allocate_memory = Graph.allocate_memory
_ffcv_epoch_iterator_init = EpochIterator.__init__


def _allocate_memory(self, batch_size, batches_ahead):
    key = (batch_size, batches_ahead, repr(self.collect_requirements()[0]))
    lease = self.__dict__.get("_pureffcv_lease")
    if lease is not None and lease.key == key and lease.released():
        if torch.cuda.is_initialized():  # copies and kernels reading them may be in flight
            torch.cuda.synchronize()
        buffers = lease.buffers
    else:
        buffers = _ffcv_allocate_memory(self, batch_size, batches_ahead)
    self._pureffcv_lease = _Lease(key, buffers)
    return buffers


def _epoch_iterator_init(self, loader, order):
    _ffcv_epoch_iterator_init(self, loader, order)  # allocates through _allocate_memory
    lease = loader.graph.__dict__.get("_pureffcv_lease")
    if lease is not None and lease.buffers is self.memory_allocations:
        lease.owner = weakref.ref(self)


def apply() -> None:
    """Install the corrections (once per process; later calls do nothing). Call before
    building an FFCV Loader over pureffcv ops (``compiler.compile_spec`` does)."""
    if getattr(Graph, "_pureffcv_patched", False):
        return
    OSCacheManager.state_type = property(_os_cache_state_type)
    OSCacheManager.compile_reader = _os_cache_compile_reader
    ProcessCacheManager.state_type = property(_process_cache_state_type)
    ProcessCacheManager.compile_reader = _process_cache_compile_reader
    Compiler.compile = classmethod(_compile_unless_uncompiled)
    Graph.allocate_memory = _allocate_memory
    EpochIterator.__init__ = _epoch_iterator_init
    Graph._pureffcv_patched = True
