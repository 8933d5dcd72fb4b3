"""Which Numba functions are cached in pureffcv's directory (``cache.cache_dir()``): a cache
locator, put first in Numba's list, that claims the functions defined in pureffcv's own
packages and ``FOREIGN_DISPATCHERS``; other Numba caches stay where Numba puts them."""
import importlib
import os
from pathlib import Path

from numba.core.caching import UserProvidedCacheLocator

from . import cache, numba_private

#: packages whose Numba functions are cached under ``cache.cache_dir()``
PACKAGES = ("operations", "compiler", "pipelines")
#: Numba's own dispatchers that importing FFCV compiles (its ``IMAGE_MODES = numba.typed.Dict()``:
#: 4-6 s in every process on 2 cores), by module
FOREIGN_DISPATCHERS = {"numba.typed.typeddict": ("_make_dict", "_setitem", "_getitem")}
_foreign_files = set()


class PureffcvCacheLocator(UserProvidedCacheLocator):
    """Numba's user-directory locator, pointed at ``cache.cache_dir()`` (or at
    ``cache.builtin_dir()`` for a function built there by ``make install``), for functions
    defined in pureffcv's packages only."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        subpath = self.get_suitable_cache_subpath(py_file)
        built_in = cache.builtin_dir() / subpath / numba_private.index_name(py_func, py_file)
        self._cache_path = os.path.join(
            str(cache.builtin_dir() if built_in.is_file() else cache.cache_dir()), subpath)

    @classmethod
    def from_function(cls, py_func, py_file):
        if not cache.enabled() or not ours(py_file):
            return None
        return super(UserProvidedCacheLocator, cls).from_function(py_func, py_file)


def ours(py_file: str) -> bool:
    """Whether ``py_file`` belongs to ``PACKAGES`` (under ``cache.ROOT``) or is foreign but
    claimed (``cache_foreign_dispatchers``)."""
    if Path(py_file).resolve() in _foreign_files:
        return True
    try:
        relative = Path(py_file).resolve().relative_to(cache.ROOT)
    except (ValueError, OSError):
        return False
    return bool(relative.parts[:1]) and relative.parts[0] in PACKAGES


_installed = False


def install_locator():
    """Put pureffcv's locator first in Numba's list (idempotent); returns its class."""
    global _installed
    if not _installed:
        numba_private.insert_locator(PureffcvCacheLocator)
        _installed = True
    return PureffcvCacheLocator


def cache_foreign_dispatchers() -> None:
    """Give ``FOREIGN_DISPATCHERS`` pureffcv's cache (this key's directory, emptied by
    ``cache.clear``) before FFCV is imported; idempotent, and nothing where caching is off."""
    if not cache.enabled() or _foreign_files:
        return
    install_locator()
    for name, functions in FOREIGN_DISPATCHERS.items():
        module = importlib.import_module(name)
        _foreign_files.add(Path(module.__file__).resolve())
        for function in functions:
            getattr(module, function).enable_caching()
