"""How many FFCV worker threads a loader gets on this machine (read by the loader and by
``explain``)."""
import warnings

import numba


class WorkersWarning(UserWarning):
    """A loader asked for more worker threads than this machine runs."""


def thread_limit() -> int:
    """The most FFCV worker threads this machine runs (``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def usable_workers(requested: int) -> int:
    """``requested`` FFCV worker threads, at most the threads Numba runs here
    (``NUMBA_NUM_THREADS``: the machine's cores unless set). FFCV hands the number to
    ``numba.set_num_threads``, which refuses more, so a spec written for a 16-core server
    would not open its data on a laptop; a larger request warns and uses every thread."""
    limit = thread_limit()
    if requested > limit:
        warnings.warn(WorkersWarning(
            f"pureffcv: num_workers {requested} is more than the {limit} threads this machine "
            f"runs; using {limit}"), stacklevel=3)
        return limit
    return requested
