"""The compile flags of everything a C entry runs, made explicit before it compiles.

Numba compiles a dispatcher that sets no ``fastmath`` / ``error_model`` with the flags of
whichever caller compiles it first (numba/core/cpu.py, ``inherit_if_not_set``), and keeps
that build for every later caller: a helper a test or a notebook called first (no fastmath,
error_model ``python``) would run so inside the loader too. ``pin(function, flags)`` walks
everything ``function`` reaches (``code_digest.reached``) and writes each dispatcher's flags
into its options: its own where it sets them, else its caller's, as Numba would have done had
the entry compiled it first; a dispatcher already compiled before is compiled again with them.
So an entry's code does not depend on what ran before it, and its digest (which reads the
options) includes the flags. Functions inlined at the IR level (``inline='always'``) take
their caller's flags by construction and are walked through.

A helper that two entries reach under different flags keeps the first entry's and warns
(``CompileFlagsWarning``): give it its own flags (``@njit(fastmath=...)``).
"""
import warnings
import weakref

from .code_digest import python_function, reached

#: the flags a callee inherits from its caller when it does not set them
INHERITED = ("fastmath", "error_model")

#: dispatcher -> (the INHERITED flags it set itself, the flags ``pin`` gave it)
_pinned = weakref.WeakKeyDictionary()


class CompileFlagsWarning(UserWarning):
    """A helper without its own flags is reached under two different flag sets."""


def pin(function, flags: dict) -> None:
    """Give every dispatcher ``function`` reaches explicit ``INHERITED`` flags, ``flags``
    being those of the context that calls ``function`` (the entry's)."""
    _pin(function, {name: flags[name] for name in INHERITED}, set())


def _pin(value, inherited: dict, seen: set) -> None:
    function = python_function(value)
    if function is None:
        if isinstance(value, (tuple, list)):
            for item in value:
                _pin(item, inherited, seen)
        return
    options = getattr(value, "targetoptions", None)
    flags = inherited
    if options is not None and options.get("inline", "never") != "always":
        declared, before = _pinned.get(value, (None, None))
        if declared is None:
            declared = {name: options[name] for name in INHERITED if name in options}
        flags = _set(value, options, {**inherited, **declared}, declared, before)
    key = (id(function), tuple(sorted(flags.items())))
    if key in seen:
        return
    seen.add(key)
    for _, item in reached(function):
        _pin(item, flags, seen)


def _set(dispatcher, options: dict, flags: dict, declared: dict, before) -> dict:
    """Write ``flags`` into a dispatcher's options (recompiling what it built without them)
    unless an earlier entry did; returns the flags it compiles with."""
    if before is not None:
        if before != flags:
            warnings.warn(CompileFlagsWarning(
                f"pureffcv: {dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__} "
                f"sets no compile flags and is reached with {flags} here but {before} by an "
                f"earlier entry, whose flags it keeps; give it its own "
                f"(@njit(fastmath=..., error_model=...))"), stacklevel=4)
        return before
    options.update(flags)
    _pinned[dispatcher] = (declared, flags)
    if len(declared) < len(INHERITED) and dispatcher.overloads:  # built with its first
        dispatcher.recompile()                                    # caller's flags
    return flags
