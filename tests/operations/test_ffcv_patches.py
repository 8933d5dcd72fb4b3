"""operations.ffcv_patches: building FFCV Loaders leaves Numba's shared types untouched, so
dispatchers compiled before a Loader still compile new signatures after it."""
import numba as nb
import numpy as np
import pytest
from ffcv.fields.decoders import IntDecoder
from ffcv.loader import Loader, OrderOption

import operations  # noqa: F401  (applies the patches)
from operations import get_op


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
