"""Where pureffcv's Numba builds are cached on disk, under which key, and how big the cache is.

Numba's own cache (``@njit(cache=True)``) indexes a build by the function's signature, its
bytecode, the file's modification stamp and the CPU. It does not see a callee edited in
another file, nor the flags a callee inherits from the caller that first compiled it
(docs/performance.md, "Numba's on-disk cache"). pureffcv therefore caches only C entries
(``pointers``), each indexed by ``code_digest.function_digest`` of everything it runs and
its flags (and, through Numba's cache, FFCV's OS-cache reader, which calls nothing and is
compiled with explicit flags: ``ffcv_patches``), and the cache directory's name
(``cache_key``) is a key of everything else that changes the code: Numba, llvmlite and LLVM
versions, Python, the CPU name and features, and a digest of every source file of the
``operations`` package. ``cache_locator`` says which functions go there.

The location is ``$PUREFFCV_CACHE_DIR`` or ``~/.cache/pureffcv/numba`` (``$XDG_CACHE_HOME``
respected); ``PUREFFCV_CACHE=0`` turns caching off. The built-in entries that ``make
install`` compiles (``builtin_root``) are read from beside it. The ops' per-batch functions
are not compiled at all: Python glue calling the entries (``ffcv_api.uncompiled``).
"""
import fcntl
import hashlib
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

#: packages whose sources the key digests (the kernels and every helper they call)
SOURCE_PACKAGES = ("operations",)
ROOT = Path(__file__).resolve().parent.parent


def enabled() -> bool:
    """False when ``PUREFFCV_CACHE`` is ``0``, ``off`` or ``false``."""
    return os.environ.get("PUREFFCV_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_root() -> Path:
    """The folder that holds every key's cache directory."""
    if os.environ.get("PUREFFCV_CACHE_DIR"):
        return Path(os.environ["PUREFFCV_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pureffcv" / "numba"


@lru_cache(maxsize=1)
def key_parts() -> Dict[str, str]:
    """Everything the directory name stands for, readable (doctor prints it)."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    import numpy

    try:
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
    except Exception:  # an llvmlite without host queries: the machine's description
        cpu, features = platform.machine(), platform.processor()
    return {
        "numba": numba.__version__, "llvmlite": llvmlite.__version__,
        "llvm": ".".join(map(str, llvm.llvm_version_info)),
        "python": "%d.%d" % sys.version_info[:2], "numpy": numpy.__version__, "cpu": cpu,
        "cpu_features": hashlib.sha1(features.encode()).hexdigest()[:12],
        "source": source_digest(SOURCE_PACKAGES),
    }


def source_digest(packages: Tuple[str, ...] = SOURCE_PACKAGES) -> str:
    """A digest of every ``.py`` file of ``packages`` (paths and contents)."""
    digest = hashlib.sha1()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key() -> str:
    """The cache directory's name: ``numba-0.68.1-py3.11-<cpu>-<digest>``."""
    parts = key_parts()
    digest = hashlib.sha1(repr(sorted(parts.items())).encode()).hexdigest()[:16]
    return f"numba-{parts['numba']}-py{parts['python']}-{parts['cpu']}-{digest}"


def cache_dir() -> Path:
    """This machine's and this source tree's cache directory."""
    return cache_root() / cache_key()


def size(path: Path = None) -> Tuple[int, int]:
    """(bytes, files) under ``path`` (default: the cache root, every key)."""
    path = cache_root() if path is None else path
    total = files = 0
    if path.is_dir():
        for item in path.rglob("*"):
            if item.is_file():
                files += 1
                total += item.stat().st_size
    return total, files


def builtin_root() -> Path:
    """The folder that holds the built-in entries of every key: the builds ``make install``
    compiles once (``pureffcv cache build``) and keeps with the installation,
    ``$PUREFFCV_BUILTIN_CACHE_DIR`` or ``<sys.prefix>/share/pureffcv/numba``. ``clear``
    leaves them; ``cache_locator`` reads a function's build from there when it has one."""
    if os.environ.get("PUREFFCV_BUILTIN_CACHE_DIR"):
        return Path(os.environ["PUREFFCV_BUILTIN_CACHE_DIR"]).expanduser()
    return Path(sys.prefix) / "share" / "pureffcv" / "numba"


def builtin_dir() -> Path:
    """This machine's and this source tree's built-in entries (the key of ``cache_dir``)."""
    return builtin_root() / cache_key()


@contextmanager
def build_lock(name: str):
    """Hold this cache's lock for the build ``name`` (an entry): of several processes that
    start together on one cache (DDP ranks, jobs on one node), one compiles it while the
    others wait, then find it in the cache and load it (no duplicate compiles; Numba writes
    every file through a rename, so none reads a half-written one)."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clear() -> Tuple[int, int]:
    """Remove every cached build (all keys) except the built-in entries (``builtin_root``);
    returns the (bytes, files) removed. Processes running now keep what they loaded; the
    next process compiles again what is not built in."""
    removed = size()
    root = cache_root()
    if root.is_dir():
        shutil.rmtree(root)
    return removed
