"""A kernel that raises stops the epoch with one line: where the op was written, the sample
and the kernel's own message.

The samples of a batch run behind a C entry, which no exception can cross
(``pointers.by_pointer``): the entry flags the samples whose call raised and returns the
first. The op's per-batch function then calls ``check_failure``, which (in object mode) has
the op's report run that sample again directly from Python (``raise_replayed``), where the
kernel's exception arrives with its message, and raise ``KernelError`` from it. The batch is never returned, so no half-written
sample is delivered; the loader's thread stops and the consumer gets the line
(``compiler.safe_loader``).
"""
import itertools
import weakref
from typing import Callable, NoReturn

import numpy as np
from numba import njit, objmode

from .errors import PureffcvError


class KernelError(PureffcvError, RuntimeError):
    """An op's kernel raised on a sample. ``str()`` is one line: ``FILE:LINE:COL: op 'name'
    failed on sample N: Type: message`` (the op's ``origin``, set by the compiler; without
    one, the op's class and no position)."""

    def __init__(self, op, message: str):
        super().__init__(f"{describe(op)} {message}")
        self.located = bool(getattr(op, "origin", ""))


def describe(op) -> str:
    """Where ``op`` was written and its name (``origin``), or its class for an op that no
    compiler placed."""
    return getattr(op, "origin", "") or f"op {getattr(op, '__name__', type(op).__name__)}"


_reporters = weakref.WeakValueDictionary()  # token -> report, while its op's code lives
_tokens = itertools.count()


def _report(token: int, failed: int, arguments: tuple) -> NoReturn:
    _reporters[token](failed, arguments)


@njit
def check_failure(failed, token, arguments):
    """Nothing when ``failed`` (a by_pointer parallel call's result) is -1, else the report
    registered as ``token`` (``reporter_token``) raises, in object mode. One function for
    every op (compiled once per argument types, not per op instance), apart from FFCV's
    per-batch one: FFCV compiles that with ``nogil``, where Numba warns about object mode."""
    if failed >= 0:
        with objmode():
            _report(token, failed, arguments)


def reporter_token(report: Callable[[int, tuple], NoReturn], holder) -> np.int64:
    """Register ``report(failed, arguments)`` for ``check_failure``; it stays registered as
    long as ``holder`` (the op's per-batch function) lives. A numpy scalar: Numba types an int
    a closure captures as a literal of its value, and would compile ``check_failure`` again
    for every op."""
    token = next(_tokens)
    _reporters[token] = holder.report = report
    return np.int64(token)


def raise_replayed(op, sample: int, replay: Callable[[], None]) -> NoReturn:
    """Raise the KernelError of ``op`` failing on data set sample ``sample``; ``replay()``
    runs that sample's kernel again directly and raises the kernel's exception."""
    try:
        replay()
    except Exception as error:
        raise KernelError(op, f"failed on sample {sample}: {type(error).__name__}: "
                              f"{error}") from error
    raise KernelError(op, f"failed on sample {sample} (run again alone, it did not fail: a "
                          f"kernel that depends on other samples or on state?)")
