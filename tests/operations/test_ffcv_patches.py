"""operations.ffcv_patches: building FFCV Loaders leaves Numba's shared types untouched, so
dispatchers compiled before a Loader still compile new signatures after it."""
import numba as nb
import numpy as np
import pytest
from ffcv.fields.decoders import IntDecoder
from ffcv.loader import Loader, OrderOption

from operations import ffcv_patches, get_op


@pytest.mark.parametrize("os_cache", [True, False])
def test_loaders_leave_numba_types_and_dispatchers_intact(small_beton, os_cache):
    @nb.njit
    def total(values):
        return values.sum()

    total(np.arange(4, dtype=np.uint8))  # an overload keyed by the shared uint8[::1] type
    shared = [nb.uint8[::1], nb.uint8[:, ::1], nb.uint64[::1], nb.uint32[::1]]
    hashes = [hash(t) for t in shared]

    loader = Loader(str(small_beton), batch_size=8, num_workers=1, os_cache=os_cache,
                    order=OrderOption.SEQUENTIAL, drop_last=False,
                    pipelines={"image": [get_op("center_crop")(size=16, ratio=1.0)],
                               "label": [IntDecoder()]})
    images = np.concatenate([batch for batch, _ in loader])
    assert images.shape == (40, 16, 16, 3)

    assert all(t.mutable for t in shared)  # FFCV 1.0.2 sets these False: shared objects
    assert [hash(t) for t in shared] == hashes
    # a second signature: with FFCV's mutation this raised KeyError from overloads.values()
    assert total(np.arange(4, dtype=np.float32)) == 6.0


def _loader(beton):
    return Loader(str(beton), batch_size=8, num_workers=1, order=OrderOption.SEQUENTIAL,
                  drop_last=False, pipelines={"image": [get_op("center_crop")(size=16, ratio=1.0)],
                                              "label": [IntDecoder()]})


def _images(batches):
    return np.concatenate([np.array(images) for images, _ in batches])  # copies


def test_an_epoch_reuses_the_buffers_of_the_finished_one(small_beton):
    from pipelines import loading

    loader = _loader(small_beton)
    reference = _images(_loader(small_beton))
    first = loading.start(loader)
    assert np.array_equal(_images(loading.batches(first)), reference)
    loading.close(first)
    second = loading.start(loader)
    assert second.memory_allocations is first.memory_allocations  # no new page faults
    assert np.array_equal(_images(loading.batches(second)), reference)
    loading.close(second)


def test_an_epoch_started_while_another_runs_gets_its_own_buffers(small_beton):
    from pipelines import loading

    loader = _loader(small_beton)
    reference = _images(_loader(small_beton))
    first = loading.start(loader)
    head = _images([next(first)])
    second = loading.start(loader)  # the first still runs and holds its batches
    assert second.memory_allocations is not first.memory_allocations
    both = list(zip(loading.batches(first), loading.batches(second)))  # interleaved
    assert np.array_equal(np.concatenate([head, _images(b for b, _ in both)]), reference)
    third = loading.start(loader)  # the second has not given its last batch yet
    assert third.memory_allocations is not second.memory_allocations
    for iterator in (first, second, third):
        loading.close(iterator)


def test_apply_is_explicit_and_idempotent():
    """Importing operations patches nothing (tests/conftest.py applies them); ``apply`` twice
    installs each correction once."""
    from ffcv.pipeline.graph import Graph

    ffcv_patches.apply()
    patched = Graph.allocate_memory
    ffcv_patches.apply()
    assert Graph.allocate_memory is patched is ffcv_patches._allocate_memory


def test_importing_operations_patches_nothing_and_filters_no_warnings():
    import subprocess
    import sys

    code = ("import warnings, torch, numba, ffcv.loader, ffcv.fields, llvmlite.binding; "
            "from ffcv.pipeline.graph import Graph; "
            "before = list(warnings.filters); import operations, compiler; "
            "print(getattr(Graph, '_pureffcv_patched', False), warnings.filters != before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


def test_every_loader_shares_one_os_cache_reader_that_reads_a_samples_bytes():
    """The reader is compiled once per process (not per Loader) and returns the sample at
    ``address``: ``size`` bytes, the size found by the address's place among the sorted
    sample pointers; read-only, like FFCV's."""
    from ffcv.memory_managers.os_cache import OSCacheManager
    from ffcv.pipeline.compiler import Compiler

    ffcv_patches.apply()
    data = np.arange(40, dtype=np.uint8)
    data.flags.writeable = False
    pointers, sizes = np.array([0, 10, 25], np.uint64), np.array([10, 15, 5], np.uint64)
    read = OSCacheManager.compile_reader(None)
    assert OSCacheManager.compile_reader(None) is read
    for address, size in zip(pointers, sizes):
        sample = read(address, (data, pointers, sizes))
        assert sample.tolist() == list(range(int(address), int(address + size)))
        assert not sample.flags.writeable
    Compiler.set_enabled(False)
    try:
        assert OSCacheManager.compile_reader(None) is ffcv_patches._read_os_cache
    finally:
        Compiler.set_enabled(True)


@pytest.mark.parametrize("os_cache", [True, False])
def test_a_batchs_sample_locations_are_where_ffcvs_reader_reads(small_beton, os_cache):
    """``locate_samples`` (numpy, a whole batch) gives the address and size of the view
    FFCV's reader returns for each sample, for both memory managers; a reader without a
    ``locate`` (not patched) is called per sample, with the same result."""
    from operations.cpu.decode_loop import locate_samples

    ffcv_patches.apply()
    loader = Loader(str(small_beton), batch_size=8, num_workers=1, os_cache=os_cache,
                    order=OrderOption.SEQUENTIAL, drop_last=False,
                    pipelines={"image": [get_op("center_crop")(size=16, ratio=1.0)],
                               "label": [IntDecoder()]})
    manager, metadata = loader.memory_manager, loader.reader.metadata["f0"]
    read = manager.compile_reader()
    assert hasattr(read, "locate")
    indices = np.random.default_rng(0).permutation(len(metadata))
    context = manager.schedule_epoch([indices])
    with context:
        context.start_batch(0)
        state = context.state
        pointers = metadata["data_ptr"][indices]
        addresses, sizes = locate_samples(read, pointers, state)
        views = [read(pointer, state) for pointer in pointers]
        assert addresses.tolist() == [view.ctypes.data for view in views]
        assert sizes.tolist() == [view.size for view in views] == [32 * 40 * 3] * len(views)
        unpatched = locate_samples(lambda pointer, s: read(pointer, s), pointers, state)
        assert [column.tolist() for column in unpatched] == [addresses.tolist(),
                                                             sizes.tolist()]


def test_a_new_pipeline_compiles_nothing_of_pureffcvs_for_its_first_batch(small_beton):
    """Every per-batch function of pureffcv's ops runs as it is (``ffcv_api.uncompiled``):
    once the kernels' entries exist, a new pipeline (other parameters, another seed) reaches
    its first batch without Numba compiling anything but FFCV's own label decoder."""
    from numba.core.dispatcher import Dispatcher

    from compiler import compile_spec

    def spec(seed, size):
        return f"""
version: 1
seed: {seed}
splits:
  train:
    image:
      decode: {{random_resized_crop: {{size: {size}}}}}
      cpu: [{{trivial_augment_wide: {{}}}}]
      device:
        dtype: float32
        ops: [{{horizontal_flip: {{}}}}, {{normalize: {{mean: imagenet, std: imagenet}}}},
              {{random_erasing: {{p: 0.5}}}}]
    label: {{num_classes: 4}}
    batch: [{{mixup_cutmix: {{}}}}]
    loader: {{batch_size: 8, num_workers: 1, order: random, drop_last: true}}
"""

    def first_batch(seed, size):
        compiled = compile_spec(spec(seed, size), device="cpu")
        for images, labels in compiled.loader(small_beton):
            for op in compiled.batch_ops:
                images, labels = op(images, labels)
            return images

    first_batch(0, 16)  # the entries: built, or loaded from the cache
    compiled_names, compile = [], Dispatcher.compile

    def recording(self, signature):
        compiled_names.append(f"{self.py_func.__module__}.{self.py_func.__qualname__}")
        return compile(self, signature)

    Dispatcher.compile = recording
    try:
        images = first_batch(1, 20)
    finally:
        Dispatcher.compile = compile
    assert tuple(images.shape) == (8, 3, 20, 20)
    assert [name for name in compiled_names if not name.startswith("ffcv.")] == []
