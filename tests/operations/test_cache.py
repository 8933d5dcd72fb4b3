"""operations/cache.py and cache_locator.py: the cache key follows everything that changes the
code, a changed parameter or source never reuses a stale build, only pureffcv's files use the
directory, and the cache can be measured and emptied."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from operations import cache, cache_locator
from pipelines.commands.cache import human

OPERATIONS = Path(cache.__file__).parent


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A source tree with a package ``lab`` that counts as pureffcv's, and a cache root."""
    (tmp_path / "lab").mkdir()
    monkeypatch.setattr(cache, "ROOT", tmp_path)
    monkeypatch.setattr(cache_locator, "PACKAGES", ("lab",))
    monkeypatch.setenv("PUREFFCV_CACHE_DIR", str(tmp_path / "cache"))
    cache.key_parts.cache_clear()
    yield tmp_path
    cache.key_parts.cache_clear()


def test_key_follows_the_source_and_the_toolchain(tree, monkeypatch):
    (tree / "lab" / "ops.py").write_text("A = 1\n")
    monkeypatch.setattr(cache, "SOURCE_PACKAGES", ("lab",))
    first = cache.cache_key()
    cache.key_parts.cache_clear()
    assert cache.cache_key() == first  # same tree, same key
    (tree / "lab" / "ops.py").write_text("A = 2\n")
    cache.key_parts.cache_clear()
    assert cache.cache_key() != first  # an edit of any source file: a new directory
    parts = cache.key_parts()
    assert {"numba", "llvmlite", "llvm", "python", "cpu", "cpu_features", "source"} <= set(parts)
    assert cache.cache_dir().parent == tree / "cache"


def test_only_pureffcv_files_use_the_locator(tree):
    locator = cache_locator.install_locator()
    assert cache_locator.install_locator() is locator  # idempotent
    ours = tree / "lab" / "k.py"
    ours.write_text("def f(x):\n    return x\n")
    namespace = {}
    exec(compile(ours.read_text(), str(ours), "exec"), namespace)
    found = locator.from_function(namespace["f"], str(ours))
    assert found is not None and Path(found.get_cache_path()).is_relative_to(cache.cache_dir())
    assert locator.from_function(test_only_pureffcv_files_use_the_locator, __file__) is None


KERNELS = """\
import sys, types
package = types.ModuleType("operations")  # the modules alone, without importing FFCV
package.__path__ = [{operations!r}]
sys.modules["operations"] = package
from operations import cache, cache_locator
cache.ROOT = __import__("pathlib").Path({root!r}); cache_locator.PACKAGES = ("lab",)
cache_locator.install_locator()
njit = __import__("numba").njit(cache=True)

OFFSET = {offset}  # a global Numba compiles in as a constant


@njit
def scaled(x, k):
    return x * k + OFFSET


def make(k):  # a closure over a parameter, as FFCV's batch loops are
    @njit
    def times(x):
        return x * k
    return times
"""

RUN = """\
import json, sys
sys.path.insert(0, {lab!r})
import kernels
out = {{"scaled": kernels.scaled(3.0, {k}), "closure": kernels.make({k})(3.0),
        "hits": sum(kernels.scaled.stats.cache_hits.values())}}
print(json.dumps(out))
"""


def run_kernels(tree, k: float, offset: float) -> dict:
    lab = tree / "lab"
    source = KERNELS.format(operations=str(OPERATIONS), root=str(tree), offset=offset)
    if not (lab / "kernels.py").exists() or (lab / "kernels.py").read_text() != source:
        (lab / "kernels.py").write_text(source)
    done = subprocess.run([sys.executable, "-c", RUN.format(lab=str(lab), k=k)],
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PUREFFCV_CACHE": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_changed_parameter_or_source_never_reuses_a_stale_build(tree):
    first = run_kernels(tree, k=2.0, offset=1.0)
    assert (first["scaled"], first["closure"], first["hits"]) == (7.0, 6.0, 0)
    assert any((tree / "cache").rglob("*.nbi"))  # written under our root
    again = run_kernels(tree, k=2.0, offset=1.0)
    assert (again["scaled"], again["hits"]) == (7.0, 1)  # a second process loads it
    other = run_kernels(tree, k=5.0, offset=1.0)  # a runtime parameter: same build, new value
    assert (other["scaled"], other["closure"]) == (16.0, 15.0)
    edited = run_kernels(tree, k=2.0, offset=4.0)  # the source changed: compiled again
    assert (edited["scaled"], edited["hits"]) == (10.0, 0)


def test_size_and_clear(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("PUREFFCV_CACHE_DIR", str(tmp_path / "root"))
    (tmp_path / "root" / "numba-x" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "numba-x" / "sub" / "f.nbc").write_bytes(b"x" * 1000)
    (tmp_path / "root" / "numba-y").mkdir()
    (tmp_path / "root" / "numba-y" / "g.nbi").write_bytes(b"y" * 24)
    assert cache.size() == (1024, 2)
    assert human(1024) == "1.0 KiB" and human(10) == "10 B"
    assert main(["cache"]) == 0
    assert "1.0 KiB in 2 files" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1.0 KiB in 2 files" in capsys.readouterr().out
    assert cache.size() == (0, 0) and not (tmp_path / "root").exists()


def test_doctor_shows_location_and_size(tmp_path, monkeypatch):
    from pipelines.doctor import check_numba_cache

    monkeypatch.setenv("PUREFFCV_CACHE_DIR", str(tmp_path))
    found = check_numba_cache()
    assert found.ok and not found.required and str(tmp_path) in found.detail
    assert "0 B in 0 files" in found.detail
    monkeypatch.setenv("PUREFFCV_CACHE", "0")
    assert not check_numba_cache().ok
