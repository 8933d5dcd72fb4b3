"""Where pureffcv's Numba builds are cached on disk, under which key, and how big the cache is.

Numba's own cache (``@njit(cache=True)``) indexes a build by the function's signature, its
bytecode, the file's modification stamp and the CPU (triple, name, features). It does not
index by the compile flags a callee *inherits* from the caller that first compiled it
(``fastmath``, ``error_model``: numba/core/cpu.py ``inherit_if_not_set``), and a caller's
entry does not notice a callee edited in another file. So a cached kernel keeps whichever
variant was compiled first, in whatever context, for every later process
(docs/performance.md, "Numba's on-disk cache"). pureffcv therefore caches only C entries
(``operations/pointers.py``), each compiled with fixed flags (``pointers.ENTRY_FLAGS``) and
indexed by ``function_digest`` of everything it runs, and the cache directory's name is a key
of everything else that changes the code: Numba, llvmlite and LLVM versions, Python, the CPU
name and features, and a digest of every source file of the ``operations`` package.

The location is ``$PUREFFCV_CACHE_DIR`` or ``~/.cache/pureffcv/numba`` (``$XDG_CACHE_HOME``
respected); ``PUREFFCV_CACHE=0`` turns caching off. Only functions defined in pureffcv's own
packages (and ``FOREIGN_DISPATCHERS``) go there (``install_locator``); other Numba caches stay
where Numba puts them. FFCV's per-batch closures are compiled by FFCV
(``Compiler.compile``) without ``cache``; they are cheap when the kernels they call are
loaded from this cache.
"""
import hashlib
import os
import platform
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

#: packages whose Numba functions are cached under ``cache_dir()``
PACKAGES = ("operations", "compiler", "pipelines")
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


def function_digest(function) -> str:
    """A digest of everything ``function`` (a Numba dispatcher or a Python function) runs:
    its bytecode and constants, its compile options, and recursively every function,
    dispatcher, array and value it reaches through its globals, closure and defaults. Two
    functions with one digest compile to the same code for the same argument types, in any
    process; an edit anywhere below changes it. Values it cannot describe stably (an
    arbitrary object) enter by type and ``repr``."""
    digest = hashlib.sha1()
    _digest_into(digest, function, set())
    return digest.hexdigest()


def _digest_into(digest, value, seen: set) -> None:
    import numpy as np

    py_func = getattr(value, "py_func", None)
    if py_func is not None:  # a Numba dispatcher: its options, then its Python function
        digest.update(repr(sorted(getattr(value, "targetoptions", {}).items())).encode())
        value = py_func
    code = getattr(value, "__code__", None)
    if code is None:
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(hashlib.sha1(np.ascontiguousarray(value).view(np.uint8)).digest())
        elif isinstance(value, (tuple, list)):
            digest.update(f"{type(value).__name__}{len(value)}".encode())
            for item in value:
                _digest_into(digest, item, seen)
        elif isinstance(value, type(np)):
            digest.update(f"module {value.__name__}".encode())
        else:
            kind = type(value)
            digest.update(f"{kind.__module__}.{kind.__qualname__}:{value!r}".encode())
        return
    if id(value) in seen:
        digest.update(b"seen " + value.__qualname__.encode())
        return
    seen.add(id(value))
    digest.update(f"{value.__module__}.{value.__qualname__}".encode())
    _digest_code(digest, code)
    namespace, names = getattr(value, "__globals__", {}), _names(code)
    for name in names:
        if name in namespace:
            digest.update(name.encode())
            _digest_into(digest, namespace[name], seen)
            if isinstance(namespace[name], type(np)):  # helpers called as module.helper
                for attribute in names:
                    helper = getattr(namespace[name], attribute, None)
                    if hasattr(helper, "py_func"):
                        _digest_into(digest, helper, seen)
    for cell in getattr(value, "__closure__", None) or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned after the function was made)
            contents = None
        _digest_into(digest, contents, seen)
    for default in getattr(value, "__defaults__", None) or ():
        _digest_into(digest, default, seen)


def _digest_code(digest, code) -> None:
    digest.update(code.co_code)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _digest_code(digest, const)
        else:
            digest.update(repr(const).encode())


def _names(code) -> list:
    """The global names ``code`` and its nested code objects use."""
    names = list(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names += _names(const)
    return names


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


def clear() -> Tuple[int, int]:
    """Remove every cached build (all keys); returns the (bytes, files) removed. Processes
    running now keep what they loaded; the next process compiles again."""
    removed = size()
    root = cache_root()
    if root.is_dir():
        shutil.rmtree(root)
    return removed


def human(nbytes: int) -> str:
    """``1.5 MiB``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _locator_class():
    from numba.core.caching import UserProvidedCacheLocator

    class PureffcvCacheLocator(UserProvidedCacheLocator):
        """Numba's user-directory locator, pointed at ``cache_dir()``, for functions defined
        in pureffcv's packages only."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(str(cache_dir()),
                                            self.get_suitable_cache_subpath(py_file))

        @classmethod
        def from_function(cls, py_func, py_file):
            if not enabled() or not _ours(py_file):
                return None
            return super(UserProvidedCacheLocator, cls).from_function(py_func, py_file)

    return PureffcvCacheLocator


def _ours(py_file: str) -> bool:
    if Path(py_file).resolve() in _foreign_files:
        return True
    try:
        relative = Path(py_file).resolve().relative_to(ROOT)
    except (ValueError, OSError):
        return False
    return relative.parts[:1] and relative.parts[0] in PACKAGES


#: Numba's own dispatchers that importing FFCV compiles (its ``IMAGE_MODES = numba.typed.Dict()``:
#: 4-6 s in every process on 2 cores), by module
FOREIGN_DISPATCHERS = {"numba.typed.typeddict": ("_make_dict", "_setitem", "_getitem")}
_foreign_files = set()


def cache_foreign_dispatchers() -> None:
    """Give ``FOREIGN_DISPATCHERS`` pureffcv's cache (this key's directory, emptied by
    ``clear``) before FFCV is imported; idempotent, and nothing where caching is off."""
    import importlib

    if not enabled() or _foreign_files:
        return
    install_locator()
    for name, functions in FOREIGN_DISPATCHERS.items():
        module = importlib.import_module(name)
        _foreign_files.add(Path(module.__file__).resolve())
        for function in functions:
            getattr(module, function).enable_caching()


_installed = None


def install_locator():
    """Put pureffcv's locator first in Numba's list (idempotent); returns its class."""
    global _installed
    if _installed is None:
        from numba.core.caching import CacheImpl

        _installed = _locator_class()
        CacheImpl._locator_classes.insert(0, _installed)
    return _installed

