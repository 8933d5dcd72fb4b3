"""operations.pointers: a kernel called through its cached C entry gives the direct call's
bytes for every kind of argument, and a changed parameter, closure value or callee never
reuses a stale build, in this process or a later one (operations.code_digest.function_digest)."""
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numba
import numpy as np
from numba import njit

from operations.code_digest import function_digest
from operations.pointers import by_pointer

ROOT = Path(__file__).resolve().parents[2]


@njit
def _shift_kernel(src, dst, offset, pair, table, mode):
    """dst = src + offset + pair[0] * pair[1] + table[channel], or a copy for mode "copy"."""
    if mode == "copy":
        dst[:] = src
        return
    for y in range(src.shape[0]):
        for x in range(src.shape[1]):
            for c in range(src.shape[2]):
                dst[y, x, c] = src[y, x, c] + offset + pair[0] * pair[1] + table[c]


def test_the_entry_gives_the_direct_calls_values_for_scalars_tuples_arrays_and_strings():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 100, (5, 7, 9, 3)).astype(np.float32)
    table = np.array([1.0, 2.0, 3.0], np.float32)
    call = by_pointer(_shift_kernel, {5: "add"})
    copy = by_pointer(_shift_kernel, {5: "copy"})
    loop = by_pointer(_shift_step, parallel=True)

    @njit
    def run(images, out, copied, looped):
        for i in range(images.shape[0]):
            call(images[i], out[i], 2.5, (2, 3.0), table, "add")
            copy(images[i], copied[i], 0.0, (0, 0.0), table, "copy")
        loop(images.shape[0], images, looped, 2.5)

    out, copied, looped = (np.zeros_like(images) for _ in range(3))
    run(images, out, copied, looped)
    assert np.array_equal(out, images + 2.5 + 6.0 + table)  # numpy's arithmetic, float32
    assert np.array_equal(copied, images)
    assert np.array_equal(looped, images * 2.5)
    # from Python (the per-batch glue): the same entries, through ctypes
    out, copied, looped = (np.zeros_like(images) for _ in range(3))
    for i in range(images.shape[0]):
        call(images[i], out[i], 2.5, (2, 3.0), table, "add")
        copy(images[i], copied[i], 0.0, (0, 0.0), table, "copy")
    assert loop(images.shape[0], images, looped, 2.5) == -1
    assert np.array_equal(out, images + 2.5 + 6.0 + table)
    assert np.array_equal(copied, images)
    assert np.array_equal(looped, images * 2.5)


@njit
def _shift_step(i, images, out, factor):
    out[i] = images[i] * factor


def _closure(value):
    @njit
    def kernel(src, dst):
        dst[:] = src + value
    return kernel


def test_the_digest_follows_closure_values_and_callees_but_not_identity():
    assert function_digest(_closure(3)) == function_digest(_closure(3))
    assert function_digest(_closure(3)) != function_digest(_closure(4))
    assert function_digest(_closure((1, 2))) != function_digest(_closure((1, 3)))
    assert function_digest(_closure(np.arange(3))) != function_digest(_closure(np.arange(1, 4)))

    def calls(helper):
        @njit
        def kernel(src, dst):
            helper(src, dst)
        return kernel

    assert function_digest(calls(_closure(1))) != function_digest(calls(_closure(2)))

    helpers = types.ModuleType("lab_helpers")  # a helper called as module.helper
    kernel = _module_caller(helpers)
    helpers.shift = _closure(1)
    before = function_digest(kernel)
    helpers.shift = _closure(2)
    assert function_digest(kernel) != before


def _module_caller(module):
    namespace = {"lab_helpers": module, "njit": njit}
    exec("@njit\ndef kernel(src, dst):\n    lab_helpers.shift(src, dst)\n", namespace)
    return namespace["kernel"]


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import njit
    from operations import pointers

    value = float(sys.argv[1])

    @njit
    def kernel(src, dst):
        dst[:] = src + value

    call = pointers.by_pointer(kernel)

    @njit
    def run(src, dst):
        call(src, dst)

    src, dst = np.arange(4.0), np.zeros(4)
    run(src, dst)
    hits = sum(entry.cache_hits for entry in pointers._entries.values())
    print(json.dumps({"out": dst.tolist(), "cache_hits": hits}))
""")


def test_a_later_process_loads_the_entry_and_a_changed_value_compiles_anew(tmp_path):
    env = dict(os.environ, PUREFFCV_CACHE_DIR=str(tmp_path / "cache"), PUREFFCV_CACHE="1",
               PYTHONPATH=str(ROOT))
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def child(value):
        done = subprocess.run([sys.executable, str(script), str(value)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, again, changed = child(3), child(3), child(5)
    assert first == {"out": [3.0, 4.0, 5.0, 6.0], "cache_hits": 0}
    assert again == {"out": [3.0, 4.0, 5.0, 6.0], "cache_hits": 1}  # loaded, not compiled
    assert changed == {"out": [5.0, 6.0, 7.0, 8.0], "cache_hits": 0}  # not the stale build


@njit
def _add_table(src, dst, table):
    for k in range(table.shape[0]):
        dst[k] = src[k] + table[k]


def test_an_argument_that_cannot_travel_warns_once_naming_it():
    import warnings

    from operations.pointers import SerialFallbackWarning

    call = by_pointer(_add_table, names=lambda k: f"op 'lab', parameter 'table' (argument {k})")

    @njit
    def run(src, dst, table):
        call(src, dst, table)

    src, dst, table = np.arange(3.0), np.zeros(3), np.arange(6.0)[::2]  # not contiguous
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(src, dst, table)
        assert np.array_equal(dst, src + table)  # the direct call ran
        other = np.arange(6, dtype=np.float32)[::2]
        run(src, dst, other)  # another type, the same argument: no second warning
    assert np.array_equal(dst, src + other)
    messages = [str(w.message) for w in caught if w.category is SerialFallbackWarning]
    assert len(messages) == 1
    assert messages[0].startswith("pureffcv: op 'lab', parameter 'table' (argument 2) is a "
                                  "array(float64, 1d, A)")
    assert "runs serially" in messages[0]


def test_the_python_callers_key_decides_numbas_type_of_an_argument():
    """From Python a caller picks its trampoline by ``_python_key`` (cheap), not by
    ``numba.typeof`` (slow): values with one key must have one Numba type."""
    from operations.pointers import _python_key

    readonly = np.zeros((2, 3), np.uint8)
    readonly.flags.writeable = False
    values = [np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.float32), readonly,
              np.zeros((3, 2), np.uint8).T, np.zeros((4, 4), np.uint8)[:, ::2],
              np.zeros(4, np.int64), np.zeros((1, 4), np.uint8), 0, -5, 2 ** 63, 2 ** 64 - 1,
              1.5, True, False, np.uint64(3), np.int64(3), np.float32(1.0), np.bool_(True),
              (1, 2.0), (1, (2.0, True)), (np.uint64(1), 2), "text", None]
    for a in values:
        for b in values:
            if _python_key(a) == _python_key(b):
                assert numba.typeof(a) == numba.typeof(b), (a, b)

