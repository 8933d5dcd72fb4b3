"""operations.compile_flags: what an entry runs is compiled with the flags chosen for it, not
with those of whichever caller compiled a helper first. A helper without flags of its own is
called first from a fastmath=False function and then from an entry, or the other way round,
each in a fresh process: the entry's bytes are the same, and they are the fastmath ones."""
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
from numba import njit

from operations.compile_flags import CompileFlagsWarning, pin

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import njit
    from operations.pointers import ENTRY_FLAGS, by_pointer

    @njit
    def helper(row):  # no flags of its own: a float32 sum fastmath vectorizes (reorders)
        total = np.float32(0.0)
        for k in range(row.shape[0]):  # indexed: Numba's array iterator does not vectorize
            total += row[k] * np.float32(1.1)
        return total

    @njit(fastmath=False)
    def exact(rows, out):
        for i in range(rows.shape[0]):
            out[i] = helper(rows[i])

    @njit(**ENTRY_FLAGS)
    def step(i, rows, out):
        out[i] = helper(rows[i])

    run = by_pointer(step, parallel=True)

    @njit
    def apply(rows, out):
        run(rows.shape[0], rows, out)

    rows = np.random.default_rng(0).random((4, 4099)).astype(np.float32)
    entry, direct = np.zeros(4, np.float32), np.zeros(4, np.float32)
    if sys.argv[1] == "helper-first":
        exact(rows, direct)
        apply(rows, entry)
    else:
        apply(rows, entry)
        exact(rows, direct)
    print(json.dumps({"entry": entry.tobytes().hex(), "direct": direct.tobytes().hex(),
                      "flags": [helper.targetoptions.get(k) for k in ("fastmath", "error_model")]}))
""")


def _child(tmp_path, order):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PUREFFCV_CACHE="0", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(script), order], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_helper_runs_with_the_entrys_flags_whoever_called_it_first(tmp_path):
    helper_first, entry_first = _child(tmp_path, "helper-first"), _child(tmp_path, "entry-first")
    assert helper_first["entry"] == entry_first["entry"]
    assert helper_first["flags"] == entry_first["flags"] == [True, "numpy"]
    # the flags matter here: the fastmath=False caller compiled its own (exact) sum
    assert helper_first["direct"] != helper_first["entry"]


def test_a_helper_reached_under_two_flag_sets_warns_and_keeps_the_first():
    @njit
    def helper(x):
        return x + 1.0

    @njit(fastmath=False)
    def exact(x):
        return helper(x)

    pin(helper, {"fastmath": True, "error_model": "numpy"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pin(exact, {"fastmath": True, "error_model": "numpy"})
    assert [type(w.message) for w in caught] == [CompileFlagsWarning]
    assert "helper sets no compile flags" in str(caught[0].message)
    assert helper.targetoptions["fastmath"] is True
    assert exact.targetoptions["fastmath"] is False  # its own, kept
    assert exact(np.float64(1.0)) == 2.0
