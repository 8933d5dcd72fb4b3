"""Iterating FFCV Loaders safely: an error in the loader thread becomes an exception in the
consumer, and every epoch's thread is stopped and joined.

FFCV runs each epoch in an ``EpochIterator`` thread. When that thread dies of an error (a
custom kernel's Numba typing error, say), FFCV prints the traceback and leaves the consumer
blocked on the batch queue forever; when the consumer stops early, the thread is never joined
(ffcv #345, #393) and blocks on its full queue, holding its batch buffers.

- ``start(loader)`` starts an epoch whose thread's error is kept, not printed;
- ``batches(iterator)`` yields its batches and raises ``LoaderError`` (one line, the thread's
  error as ``__cause__``) instead of waiting on a dead thread;
- ``close(iterator)`` stops, drains and joins the thread and releases its buffers, after the
  batch the thread is computing (FFCV's thread reads its stop flag only when the queue is
  full: drained, it would compute the rest of the epoch first);
- ``epoch(loader)`` is the three together, for a consumer that reads whole epochs;
- ``SafeLoader`` is an ffcv Loader whose ``iter()`` is ``epoch``: a plain ``for`` loop that
  breaks early closes and joins its epoch, and a dead thread raises. ``CompiledPipeline.loader``
  returns one. (``pipelines.loading`` re-exports all of this for the Lightning side.)
"""
import queue
import re
import threading
import time
import weakref
from typing import Iterator, Optional

from ffcv.loader import Loader

from operations.errors import PureffcvError

#: seconds to wait for a stopping iterator thread (it finishes the batch it is computing)
JOIN_TIMEOUT_S = 30.0

_guarded = weakref.WeakKeyDictionary()  # started EpochIterator -> its error (None: none yet)
_lock = threading.Lock()  # start() registers a thread before its error hook may read it
_previous_hook = threading.excepthook


class LoaderError(PureffcvError, RuntimeError):
    """FFCV's loader thread stopped with an error; ``str()`` is one line: a pureffcv error's
    own (a kernel's, ``operations.kernel_errors``: it starts with the op's position), or
    what FFCV's thread died of."""

    def __init__(self, message: str, located: bool = False):
        super().__init__(message)
        self.located = located


class SafeLoader(Loader):
    """An ffcv Loader whose epochs are guarded: ``iter(loader)`` yields the batches of one
    epoch, raises LoaderError when FFCV's thread dies, and stops and joins the thread however
    iteration ends (the end of the epoch, ``break``, an exception, the iterator dropped). A new
    ``iter`` closes the previous epoch first. ``epoch_iterator()`` is FFCV's own iterator.

    With a ``clock`` (``CompiledPipeline.loader`` sets the pipeline's), ``iter`` also sets
    FFCV's epoch counter, which seeds its random orders, to the clock's epoch: starting the
    same epoch twice reads the samples in the same order, as the ops draw the same values."""

    _live = None  # the EpochIterator of the epoch being read
    clock = None  # an EpochClock, or None: FFCV counts epochs itself
    #: the batch's outputs in the order to yield them (None: FFCV's, which puts outputs named
    #: like a .beton field first, in the file's field order)
    outputs = None

    def epoch_iterator(self):
        """FFCV's EpochIterator for the next epoch (what ``ffcv.Loader.__iter__`` returns)."""
        return Loader.__iter__(self)

    def __iter__(self) -> Iterator:
        self.close_epoch()
        if self.clock is not None:
            self.next_epoch = self.clock.epoch
        iterator = start(self)
        self._live = iterator
        return self._read(iterator)

    def close_epoch(self) -> None:
        """Stop and join the epoch being read, if any (``iter`` does it first)."""
        iterator, self._live = self._live, None
        if iterator is not None and not getattr(iterator, "closed", False):
            close(iterator)

    def _read(self, iterator) -> Iterator:
        if getattr(iterator, "closed", False):  # a later iter() closed this epoch
            return
        try:
            yield from in_output_order(batches(iterator), self)
        finally:
            if self._live is iterator:
                self._live = None
            if not getattr(iterator, "closed", False):
                close(iterator)

    def _output_order(self):
        """Where each of ``outputs`` is in FFCV's batch tuple; None when already in order."""
        produced = list(self.pipeline_specs)
        if self.outputs is None or tuple(produced) == tuple(self.outputs):
            return None
        return [produced.index(name) for name in self.outputs]


def start(loader):
    """``iter(loader)``: the epoch's EpochIterator, whose thread's error ``batches`` raises."""
    _install_hook()
    with _lock:
        iterator = loader.epoch_iterator() if isinstance(loader, SafeLoader) else iter(loader)
        _guarded[iterator] = None
    return iterator


def batches(iterator) -> Iterator:
    """The batches of an EpochIterator from ``start``; LoaderError when its thread died."""
    q = iterator.output_queue
    while True:
        with q.not_empty:
            while not q._qsize():  # the unlocked size: this thread holds the queue's lock
                if not iterator.is_alive():
                    error = _guarded.get(iterator)
                    raise LoaderError(_message(error), getattr(error, "located", False)) \
                        from error
                q.not_empty.wait(timeout=1.0)
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield batch


def close(iterator) -> None:
    """Stop and join an EpochIterator's thread and release its batch buffers. The thread
    takes each batch's indices from ``iter_ixes``: emptied, its next batch is the end of
    the epoch, so it stops after the batch it is computing."""
    iterator.terminate_event.set()
    iterator.iter_ixes = iter(())
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while iterator.is_alive() and time.monotonic() < deadline:
        _drain(iterator.output_queue)
        iterator.join(timeout=0.05)
    iterator.close()
    iterator.closed = True  # FFCV's close() leaves this False and would exit twice


def epoch(loader) -> Iterator:
    """One whole epoch of ``loader``'s batches (a SafeLoader's in its ``outputs`` order), its
    thread joined however iteration ends."""
    iterator = start(loader)
    try:
        yield from in_output_order(batches(iterator), loader)
    finally:
        close(iterator)


def in_output_order(batches_of_epoch: Iterator, loader) -> Iterator:
    """The batches of ``loader``'s EpochIterator with their elements in the order of a
    SafeLoader's ``outputs`` (image or view copies, label, targets): FFCV puts the outputs
    named like a .beton field first, so a views split's copies would follow its label."""
    order = loader._output_order() if isinstance(loader, SafeLoader) else None
    if order is None:
        return batches_of_epoch
    return (tuple(batch[k] for k in order) for batch in batches_of_epoch)


def summary(error: BaseException) -> str:
    """``Type: reason`` in one line. Numba errors open with generic "Failed in ... pipeline"
    lines: the first other line is the reason, and the first ``File "...", line N`` (the
    kernel's source) is added."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    reasons = [line for line in lines if line and not line.startswith("Failed in ")]
    text = f"{type(error).__name__}: {reasons[0]}" if reasons else type(error).__name__
    where = next((m for m in map(re.compile(r'File "(.+)", line (\d+)').match, lines) if m), None)
    return text + (f" ({where[1]}, line {where[2]})" if where else "")


def _message(error: Optional[BaseException]) -> str:
    if error is None:
        return "FFCV's loader thread stopped before the end of the epoch"
    if isinstance(error, PureffcvError):
        return str(error)
    return f"FFCV's loader thread failed: {summary(error)}"


def _install_hook() -> None:
    """Make ``_hook`` the thread error hook, in front of whatever is there (others, a test
    runner say, may have replaced it since the last call)."""
    global _previous_hook
    if threading.excepthook is not _hook:
        _previous_hook, threading.excepthook = threading.excepthook, _hook


def _hook(args) -> None:
    """Keep (and do not print) the errors of guarded threads; others go to the previous hook."""
    with _lock:
        guarded = args.thread in _guarded
        if guarded:
            _guarded[args.thread] = args.exc_value
    if not guarded:
        _previous_hook(args)


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
