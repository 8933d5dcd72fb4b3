"""The distributed quasi-random order (compiler/quasi_random.py): every sample once per epoch
across ranks but for DistributedSampler's padding, equal shares, determinism, and each rank
reading its own pages through a bounded buffer, on made-up layouts and through FFCV's Loader."""
from collections import Counter

import numpy as np
import pytest
from ffcv.fields import IntField, NDArrayField
from ffcv.fields.decoders import IntDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.writer import MIN_PAGE_SIZE, DatasetWriter
from hypothesis import given, settings, strategies as st

from compiler import compile_spec
from compiler.quasi_random import DistributedQuasiRandom, OrderError, quasi_random_shard

SPEC = """version: 1
splits:
  train:
    image: {decode: decode}
    label: int
    loader: {batch_size: 4, order: quasi_random, os_cache: false}
"""


def layout(page_sizes, rng):
    """Sample ids (a shuffled subset of a larger file, as ``indices`` give) and their pages."""
    pages = np.repeat(np.arange(len(page_sizes)), page_sizes)
    samples = np.sort(rng.choice(10 * len(pages), len(pages), replace=False))
    return samples, pages


def open_pages_at_most(order, page_of) -> int:
    """The most pages open at once while reading ``order``: read from, with samples left."""
    pages = [page_of[s] for s in order]
    last = {page: i for i, page in enumerate(pages)}
    opened, most = set(), 0
    for i, page in enumerate(pages):
        opened.add(page)
        most = max(most, len(opened))
        if last[page] == i:
            opened.discard(page)
    return most


@settings(max_examples=150, deadline=None)
@given(page_sizes=st.lists(st.integers(1, 7), min_size=1, max_size=12),
       world=st.integers(1, 4), buffer=st.integers(1, 3), seed=st.integers(0, 2 ** 31 - 1),
       epoch=st.integers(0, 50), layout_seed=st.integers(0, 1000))
def test_every_sample_once_but_the_padding_in_equal_shares_from_own_pages(
        page_sizes, world, buffer, seed, epoch, layout_seed):
    samples, pages = layout(page_sizes, np.random.default_rng(layout_seed))
    page_of = dict(zip(samples.tolist(), pages.tolist()))
    shares = [quasi_random_shard(samples, pages, seed, epoch, rank, world, buffer).tolist()
              for rank in range(world)]
    n, per_rank = len(samples), -(-len(samples) // world)
    assert [len(share) for share in shares] == [per_rank] * world
    counts = Counter(s for share in shares for s in share)
    assert set(counts) == set(samples.tolist())  # every sample, nothing else
    padding = per_rank * world - n  # DistributedSampler's: fewer than world_size repeats
    assert sum(counts.values()) - n == padding < world
    if n >= world:
        assert max(counts.values()) <= 2
    # each rank reads its own run of pages: only share edges and the padding are shared
    touched = sum(len({page_of[s] for s in share}) for share in shares)
    assert touched <= len(page_sizes) + 2 * (world - 1)
    for share in shares:
        assert open_pages_at_most(share, page_of) <= buffer


def test_a_pure_function_of_seed_epoch_rank_and_world_size():
    samples, pages = layout([5] * 40, np.random.default_rng(0))
    order = lambda seed, epoch, rank, world: quasi_random_shard(  # noqa: E731
        samples, pages, seed, epoch, rank, world, 4).tolist()
    assert order(7, 3, 1, 2) == order(7, 3, 1, 2)
    assert order(7, 3, 1, 2) != order(7, 4, 1, 2)  # a new epoch, a new order
    assert order(7, 3, 1, 2) != order(8, 3, 1, 2)
    assert set(order(7, 3, 0, 2)).isdisjoint(order(7, 3, 1, 2))  # 200 samples: no padding
    # pages are dealt, and shuffled within a rank's buffer, not read in file order
    assert order(7, 3, 0, 1) != sorted(order(7, 3, 0, 1))


@pytest.fixture(scope="module")
def paged_beton(tmp_path_factory):
    """45 samples of 300 kB in 2 MiB pages (about 6 per page); label = sample index."""
    path = tmp_path_factory.mktemp("quasi") / "paged.beton"

    class Samples:
        def __len__(self):
            return 45

        def __getitem__(self, i):
            return np.full(300_000, i, np.uint8), i

    writer = DatasetWriter(str(path), {"data": NDArrayField(np.dtype("uint8"), (300_000,)),
                                       "label": IntField()},
                           page_size=MIN_PAGE_SIZE, num_workers=1)
    writer.from_indexed_dataset(Samples(), chunksize=8)
    return path


def read_labels(path, order, epoch):
    loader = Loader(str(path), batch_size=4, num_workers=1, order=order, distributed=True,
                    seed=11, os_cache=False, drop_last=False,
                    pipelines={"data": None, "label": [IntDecoder()]})
    loader.next_epoch = epoch
    labels = [int(x) for (batch,) in loader for x in batch.reshape(-1)]
    return labels, loader.reader


def test_ffcv_loaders_of_two_ranks_read_disjoint_shares_of_their_own_pages(paged_beton):
    orders = {}
    for epoch in (0, 1):
        (first, reader), (second, _) = (
            read_labels(paged_beton, DistributedQuasiRandom(rank, 2), epoch) for rank in (0, 1))
        orders[epoch] = first
        assert len(first) == len(second) == 23
        assert sorted(set(first) | set(second)) == list(range(45))
        assert len(set(first) & set(second)) == 1  # the one sample of padding
        table = reader.alloc_table
        data = table[table["size"] >= 300_000]  # the arrays' allocations, one per sample
        page = dict(zip(data["sample_id"].tolist(), (data["ptr"] // reader.page_size).tolist()))
        assert len(set(page.values())) >= 7
        # FFCV's random order would have each rank read nearly every page; here only the page
        # split between the two shares and the padding's page can be common
        assert len({page[s] for s in first} & {page[s] for s in second}) <= 2
    assert orders[0] != orders[1]
    assert read_labels(paged_beton, DistributedQuasiRandom(0, 2), 0)[0] == orders[0]


def test_the_compiled_loader_takes_it_under_ddp_and_needs_a_process_group(paged_beton, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    compiled = compile_spec(spec, device="cpu")
    assert isinstance(compiled.loader_options(distributed=True)["order"], DistributedQuasiRandom)
    assert compiled.loader_options()["order"] is OrderOption.QUASI_RANDOM  # FFCV's own
    with pytest.raises(OrderError, match=r"^order quasi_random with distributed: no "
                                         r"torch.distributed process group"):
        read_labels(paged_beton, DistributedQuasiRandom(), 0)
    with pytest.raises(OrderError, match=r"rank 2 is not in \[0, 2\)"):
        read_labels(paged_beton, DistributedQuasiRandom(2, 2), 0)
