"""The per-batch function FFCV calls for a decoder (images, masks, boxes), run from Python as
it is (``ffcv_api.uncompiled``): each sample's address, size and shape read with numpy
(``locate_samples``), then the per-sample work (decode, crop, resize) in parallel through a
cached C entry (``pointers.by_pointer``); a sample whose step raised stops the batch with one
line naming the decoder and the sample (``kernel_errors``)."""
from typing import Callable, Tuple

import numpy as np

from ..batch_loop import epoch_stream
from ..ffcv_api import uncompiled
from ..kernel_errors import check_failure, raise_replayed
from ..pointers import by_pointer, replay


def locate_samples(memory_read: Callable, pointers, storage_state) -> Tuple[np.ndarray,
                                                                             np.ndarray]:
    """What FFCV's ``memory_read(pointer, storage_state)`` reads, for a batch of pointers at
    once: int64 addresses and sizes, with numpy (the reader's ``locate``, which
    ``ffcv_patches`` gives both of FFCV's readers). A reader without one is called sample by
    sample."""
    locate = getattr(memory_read, "locate", None)
    if locate is not None:
        return locate(np.asarray(pointers), storage_state)
    views = [memory_read(pointer, storage_state) for pointer in pointers]
    return (np.array([view.ctypes.data for view in views], np.int64),
            np.array([view.size for view in views], np.int64))


def sample_rows(*columns) -> np.ndarray:
    """The int64 (samples, len(columns)) table a decode step reads its samples from."""
    rows = np.empty((len(columns[0]), len(columns)), np.int64)
    for k, column in enumerate(columns):
        rows[:, k] = column
    return rows


def plain_decode_loop(op, read_samples: Callable, step: Callable) -> Callable:
    """FFCV's ``decode(batch_indices, destination, metadata, storage_state)`` running the
    njit ``step(i, samples, destination)`` for every sample (``samples``: ``read_samples``'
    rows)."""
    run = by_pointer(step, parallel=True)

    def report(i, arguments):  # arguments: the batch's indices, then run's
        raise_replayed(op, arguments[0][i], lambda: replay(step, i, arguments[1:]))

    def decode(batch_indices, destination, metadata, storage_state):
        samples = read_samples(batch_indices, metadata, storage_state)
        check_failure(run(len(batch_indices), samples, destination), report,
                      (batch_indices, len(batch_indices), samples, destination))
        return destination[:len(batch_indices)]

    return uncompiled(decode)


def keyed_decode_loop(op, read_samples: Callable, step: Callable, keyed: bool) -> Callable:
    """FFCV's ``decode(batch_indices, (destination, temp), metadata, storage_state)`` running
    the njit ``step(i, samples, indices, stream, temp, destination)`` for every sample, with
    ``op``'s stream for the epoch (0 when not ``keyed``: a crop without draws)."""
    run = by_pointer(step, parallel=True)

    def report(i, arguments):  # arguments: run's (count, samples, indices, ...)
        raise_replayed(op, arguments[2][i], lambda: replay(step, i, arguments))

    def decode(batch_indices, my_storage, metadata, storage_state):
        destination, temp = my_storage
        samples = read_samples(batch_indices, metadata, storage_state)
        indices = batch_indices.astype(np.int64)
        stream = epoch_stream(op.clock, op.position) if keyed else np.uint64(0)
        arguments = (len(batch_indices), samples, indices, stream, temp, destination)
        check_failure(run(*arguments), report, arguments)
        return destination[:len(batch_indices)]

    return uncompiled(decode)
