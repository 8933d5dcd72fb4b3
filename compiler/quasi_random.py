"""A distributed quasi-random order: FFCV's ``QUASI_RANDOM`` idea (read a data set larger than
RAM page by page, ``os_cache: false``) sharded over DDP ranks. FFCV 1.0.2's QuasiRandom raises
NotImplementedError with ``distributed=True`` (libffcv/ffcv #92); ``CompiledPipeline.loader``
hands FFCV this order instead.

Each epoch, on every rank alike:

1. the .beton's pages are shuffled with the epoch's seed and the samples laid out page by page
   in that order (a sample belongs to the page holding its first byte);
2. as FFCV's distributed mode pads (torch's DistributedSampler), the layout is extended with
   its own first samples to a multiple of the world size, so every rank reads
   ``ceil(N / world_size)`` samples and fewer than ``world_size`` are read twice; rank ``r``
   takes the ``r``-th contiguous share: its own run of pages (a page at a share's edge is split
   between two neighbouring ranks, and the padding re-reads the epoch's first samples);
3. each rank reads its share through a buffer of ``buffer_pages`` pages: its pages in turn,
   ``buffer_pages`` at a time, the samples of those pages shuffled together, so a rank holds
   at most that many pages of its own at once (FFCV's QuasiRandom: ``2 * batch_size``).

The order is a pure function of (seed, epoch, rank, world size) and the file's layout.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch.distributed as dist
from ffcv.traversal_order.base import TraversalOrder

from operations.errors import PureffcvError


class OrderError(PureffcvError, RuntimeError):
    """The distributed order cannot tell this process's rank; ``str()`` is one line."""


def home_pages(reader) -> np.ndarray:
    """Each sample's page in the .beton read by FFCV's ``reader`` (the page of its first
    allocated byte); a sample with no bytes in any page gets a page of its own (negative)."""
    table = reader.alloc_table
    pages = np.full(reader.num_samples, np.iinfo(np.int64).max, dtype=np.int64)
    shift = int(np.log2(reader.page_size))
    np.minimum.at(pages, table["sample_id"].astype(np.int64),
                  (table["ptr"] >> np.uint64(shift)).astype(np.int64))
    alone = pages == np.iinfo(np.int64).max
    pages[alone] = -1 - np.flatnonzero(alone)
    return pages


def quasi_random_shard(samples: np.ndarray, pages: np.ndarray, seed: int, epoch: int,
                       rank: int, world_size: int, buffer_pages: int) -> np.ndarray:
    """The samples rank ``rank`` of ``world_size`` reads in epoch ``epoch``, in order
    (``ceil(len(samples) / world_size)`` of them); ``pages[i]`` is ``samples[i]``'s page.
    The module docstring gives the rule."""
    samples, pages = np.asarray(samples), np.asarray(pages, dtype=np.int64)
    page_ids, page_of = np.unique(pages, return_inverse=True)
    shuffled = np.empty(len(page_ids), dtype=np.int64)
    shuffled[np.random.default_rng([seed, epoch]).permutation(len(page_ids))] = \
        np.arange(len(page_ids))
    layout = np.argsort(shuffled[page_of], kind="stable")  # page by page, file order within
    per_rank = -(-len(samples) // world_size)
    padded = np.resize(layout, per_rank * world_size)  # DistributedSampler's padding
    share = padded[rank * per_rank:(rank + 1) * per_rank]
    share_pages, first_seen, page_in_share = np.unique(page_of[share], return_index=True,
                                                      return_inverse=True)
    turn = np.empty(len(share_pages), dtype=np.int64)
    turn[np.argsort(first_seen)] = np.arange(len(share_pages))  # pages in the share's order
    window = turn[page_in_share] // buffer_pages
    draws = np.random.default_rng([seed, epoch, world_size, rank]).random(len(share))
    return samples[share[np.lexsort((draws, window))]]


class DistributedQuasiRandom(TraversalOrder):
    """FFCV's traversal order for ``order: quasi_random`` with ``distributed=True`` (the
    module docstring says how it orders).

    ``rank`` and ``world_size`` default to torch.distributed's process group (as FFCV's
    DistributedSampler reads them); ``buffer_pages`` to twice the batch size, FFCV's
    QuasiRandom buffer. FFCV 1.0.2 takes a custom order as an *instance* of TraversalOrder and
    calls it with the Loader (``ffcv/loader/loader.py``: ``isinstance(order, TraversalOrder)``
    then ``order(self)``): an instance made here describes the order, and calling it with the
    Loader returns the order bound to that Loader. tests/compiler/test_quasi_random.py reads
    a real Loader through it, so a change of that contract fails there."""

    def __init__(self, rank: Optional[int] = None, world_size: Optional[int] = None,
                 buffer_pages: Optional[int] = None):
        # no TraversalOrder.__init__ here: it needs the Loader, which FFCV hands to __call__
        self.rank, self.world_size, self.buffer_pages = rank, world_size, buffer_pages
        self.loader = None

    def __call__(self, loader) -> "DistributedQuasiRandom":
        rank, world_size = self.placement()
        bound = DistributedQuasiRandom(rank, world_size,
                                       self.buffer_pages or 2 * loader.batch_size)
        TraversalOrder.__init__(bound, loader)
        bound.pages = home_pages(loader.reader)[bound.indices.astype(np.int64)]
        return bound

    def placement(self) -> Tuple[int, int]:
        """(rank, world size): the given ones, else the process group's."""
        if self.rank is not None and self.world_size is not None:
            rank, world_size = self.rank, self.world_size
        elif dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            raise OrderError("order quasi_random with distributed: no torch.distributed process "
                             "group to read this process's rank from; initialise one first "
                             "(Lightning does before its *_dataloader hooks)")
        if not 0 <= rank < world_size:
            raise OrderError(f"order quasi_random with distributed: rank {rank} is not in "
                             f"[0, {world_size})")
        return rank, world_size

    def sample_order(self, epoch: int) -> Sequence[int]:
        return quasi_random_shard(self.indices, self.pages, self.seed, epoch, self.rank,
                                  self.world_size, self.buffer_pages)
