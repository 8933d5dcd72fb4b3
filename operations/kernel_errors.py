"""A kernel that raises stops the epoch with one line: where the op was written, the sample
and the kernel's own message.

The samples of a batch run behind a C entry, which no exception can cross
(``pointers.by_pointer``): the entry flags the samples whose call raised and returns the
first. The op's per-batch function (Python glue) then calls ``check_failure``, which has the
op's report run that sample again directly (``raise_replayed``), where the kernel's exception
arrives with its message, and raise ``KernelError`` from it. The batch is never returned, so
no half-written sample is delivered; the loader's thread stops and the consumer gets the line
(``compiler.safe_loader``).
"""
from typing import Callable, NoReturn

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


def check_failure(failed: int, report: Callable[[int, tuple], NoReturn],
                  arguments: tuple) -> None:
    """Nothing when ``failed`` (a by_pointer parallel call's result) is -1, else
    ``report(failed, arguments)`` raises."""
    if failed >= 0:
        report(failed, arguments)


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
