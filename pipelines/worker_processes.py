"""Signal hygiene for the worker processes pureffcv starts (image-checking pools, FFCV's
writer workers, the image-folder fallback's DataLoader workers).

A forked worker inherits its parent's Python signal handlers. Inside a Lightning run the
parent's SIGTERM handler only logs (``[rank: 0] Received SIGTERM: 15``) and returns, so a
worker that inherits it survives the ``terminate()`` with which ``multiprocessing.Pool``
shuts down, and the pool's ``join`` then waits for it forever; ``timeout`` cannot stop the
run either. ``init_worker`` therefore gives every worker the default SIGTERM (it dies when
told to), leaves Ctrl-C to the parent (which stops the workers and cleans up) and asks
Linux to kill the worker when its parent dies, even by SIGKILL.
"""
import ctypes
import os
import signal
from contextlib import contextmanager
from typing import Optional

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def init_worker(parent: Optional[int] = None) -> None:
    """In a worker process: default SIGTERM, SIGINT ignored, and death with the parent
    (``parent``: its pid; the worker exits at once if that process is already gone)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup still runs
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


#: the pid whose forks start as workers (``forks_start_as_workers``), else None
_forking_parent: Optional[int] = None


def _after_fork_in_child() -> None:
    if _forking_parent is not None:
        init_worker(_forking_parent)


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def forks_start_as_workers():
    """Every process forked inside the block runs ``init_worker`` first thing, before any
    code of its own: for workers started by a library that takes no initializer (FFCV's
    writer), which would otherwise outlive a killed parent until their first task."""
    global _forking_parent
    _forking_parent = os.getpid()
    try:
        yield
    finally:
        _forking_parent = None


def torch_worker_init(worker_id: int) -> None:
    """``init_worker`` as a torch DataLoader's ``worker_init_fn``."""
    init_worker()
