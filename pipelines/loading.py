"""Iterating FFCV Loaders safely (the Lightning side's name for ``compiler.safe_loader``): an
error in the loader thread becomes ``LoaderError`` in the consumer, and every epoch's thread
is stopped and joined (ffcv #345, #393).

- ``start(loader)`` starts an epoch whose thread's error is kept, not printed;
- ``batches(iterator)`` yields its batches and raises ``LoaderError`` instead of waiting on a
  dead thread;
- ``close(iterator)`` stops, drains and joins the thread and releases its buffers;
- ``epoch(loader)`` is the three together, for a consumer that reads whole epochs.

``CompiledPipeline.loader`` returns a ``SafeLoader``, whose plain ``iter`` does the same.
"""
from compiler.safe_loader import (JOIN_TIMEOUT_S, LoaderError, SafeLoader, batches, close,
                                  epoch, in_output_order, start, summary)

__all__ = ["JOIN_TIMEOUT_S", "LoaderError", "SafeLoader", "batches", "close", "epoch",
           "in_output_order", "start", "summary"]
