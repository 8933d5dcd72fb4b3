"""The per-batch function FFCV calls for a decoder (images or masks): each sample's address,
size and shape read serially (cheap), then the per-sample work (decode, crop, resize) in
parallel through a cached C entry (``pointers.by_pointer``); a sample whose step raised stops
the batch with one line naming the decoder and the sample (``kernel_errors``)."""
from typing import Callable

import numpy as np

from ..batch_loop import epoch_stream, no_stream, stream_arguments
from ..kernel_errors import check_failure, raise_replayed, reporter_token
from ..pointers import by_pointer, replay


def plain_decode_loop(op, read_samples: Callable, step: Callable) -> Callable:
    """FFCV's ``decode(batch_indices, destination, metadata, storage_state)`` running the
    njit ``step(i, samples, destination)`` for every sample (``samples``: ``read_samples``'
    rows)."""
    run = by_pointer(step, parallel=True)

    def report(i, arguments):  # arguments: the batch's indices, then run's
        raise_replayed(op, arguments[0][i], lambda: replay(step, i, arguments[1:]))

    def decode(batch_indices, destination, metadata, storage_state):
        samples = read_samples(batch_indices, metadata, storage_state)
        check_failure(run(len(batch_indices), samples, destination), token,
                      (batch_indices, len(batch_indices), samples, destination))
        return destination[:len(batch_indices)]

    token = reporter_token(report, decode)
    return decode


def keyed_decode_loop(op, read_samples: Callable, step: Callable, keyed: bool) -> Callable:
    """FFCV's ``decode(batch_indices, (destination, temp), metadata, storage_state)`` running
    the njit ``step(i, samples, indices, stream, temp, destination)`` for every sample, with
    ``op``'s stream for the epoch (0 when not ``keyed``: a crop without draws)."""
    batch_stream = epoch_stream if keyed else no_stream
    seed, clock_address, position = stream_arguments(op.clock, op.position)
    run = by_pointer(step, parallel=True)

    def report(i, arguments):  # arguments: run's (count, samples, indices, ...)
        raise_replayed(op, arguments[2][i], lambda: replay(step, i, arguments))

    def decode(batch_indices, my_storage, metadata, storage_state):
        destination, temp = my_storage
        samples = read_samples(batch_indices, metadata, storage_state)
        indices = batch_indices.astype(np.int64)
        stream = batch_stream(seed, clock_address, position)
        arguments = (len(batch_indices), samples, indices, stream, temp, destination)
        check_failure(run(*arguments), token, arguments)
        return destination[:len(batch_indices)]

    token = reporter_token(report, decode)
    return decode
