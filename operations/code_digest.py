"""A digest of the code a Numba function runs, for indexing its C entry on disk.

Numba's own cache indexes a build by the function's bytecode and its file's stamp; it does not
see a callee edited in another file, the values a closure holds or the flags a callee
inherits. ``function_digest`` follows all of them.
"""
import hashlib
from typing import Iterator

import numpy as np

from . import numba_private

MODULE = type(np)


def function_digest(function) -> str:
    """A digest of everything ``function`` (a Numba dispatcher or a Python function) runs:
    its bytecode and constants, its compile options, and recursively every function,
    dispatcher, ``@overload`` / ``@intrinsic`` implementation, array and value it reaches
    through its globals, closure and defaults. Two functions with one digest compile to the
    same code for the same argument types, in any process; an edit anywhere below changes
    it. Values it cannot describe stably (an arbitrary object) enter by type and ``repr``."""
    digest = hashlib.sha1()
    _digest_into(digest, function, set())
    return digest.hexdigest()


def python_function(value):
    """The Python function behind ``value`` (a dispatcher's ``py_func``, an intrinsic's
    definition), ``value`` itself if it is one, else None."""
    value = getattr(value, "py_func", None) or numba_private.intrinsic_definition(value) or value
    return value if getattr(value, "__code__", None) is not None else None


def reached(function) -> Iterator:
    """What the Python function ``function`` reaches, one level down: the globals its code
    names (and ``module.helper`` dispatchers), its closure's values, its defaults and the
    ``@overload`` implementations registered for it, with their jit options."""
    code = function.__code__
    namespace, names = getattr(function, "__globals__", {}), _names(code)
    for name in names:
        if name in namespace:
            yield name, namespace[name]
            if isinstance(namespace[name], MODULE):  # helpers called as module.helper
                for attribute in names:
                    helper = getattr(namespace[name], attribute, None)
                    if hasattr(helper, "py_func"):
                        yield attribute, helper
    for cell in getattr(function, "__closure__", None) or ():
        try:
            yield "", cell.cell_contents
        except ValueError:  # an empty cell (a name assigned after the function was made)
            yield "", None
    for default in getattr(function, "__defaults__", None) or ():
        yield "", default
    for implementation, options in numba_private.overload_implementations(function):
        yield repr(sorted(options.items())), implementation


def _digest_into(digest, value, seen: set) -> None:
    options = getattr(value, "targetoptions", None)
    if options is not None:  # a Numba dispatcher: its options, then its Python function
        digest.update(repr(sorted(options.items())).encode())
    function = python_function(value)
    if function is None:
        if isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(hashlib.sha1(np.ascontiguousarray(value).view(np.uint8)).digest())
        elif isinstance(value, (tuple, list)):
            digest.update(f"{type(value).__name__}{len(value)}".encode())
            for item in value:
                _digest_into(digest, item, seen)
        elif isinstance(value, MODULE):
            digest.update(f"module {value.__name__}".encode())
        else:
            kind = type(value)
            digest.update(f"{kind.__module__}.{kind.__qualname__}:{value!r}".encode())
        return
    if id(function) in seen:
        digest.update(b"seen " + function.__qualname__.encode())
        return
    seen.add(id(function))
    digest.update(f"{function.__module__}.{function.__qualname__}".encode())
    _digest_code(digest, function.__code__)
    for name, item in reached(function):
        digest.update(name.encode())
        _digest_into(digest, item, seen)


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
