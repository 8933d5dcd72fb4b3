"""A stable digest of an op's definition, under which the studio keeps its compiled
instance: the same class, parameters, position, seed and input type give the same digest,
so an edit that leaves a step unchanged reuses its compiled batch loop."""
import hashlib
import types

import numpy as np


def fingerprint(value, depth: int = 0) -> str:
    """A stable digest of an op's definition: its class and every attribute except its
    binding's mutable parts (the clock object, compiled code, FFCV's memory fields)."""
    return hashlib.sha1(_describe(value, depth).encode()).hexdigest()


_SKIP = {"clock", "_applier", "metadata", "memory_read", "_epoch"}


def _describe(value, depth: int) -> str:
    if depth > 6:
        return "..."
    if isinstance(value, np.ndarray):
        return f"nd({value.dtype},{value.shape},{hashlib.sha1(value.tobytes()).hexdigest()})"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{','.join(_describe(v, depth + 1) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_describe(v, depth + 1)}" for k, v in sorted(
            value.items(), key=lambda kv: repr(kv[0]))) + "}"
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return repr(value)
    if hasattr(value, "py_func"):  # a Numba dispatcher: the function it compiles
        return "jit:" + _describe(value.py_func, depth + 1)
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        cells = getattr(value, "__closure__", None) or ()
        inner = [_describe(getattr(c, "cell_contents", None), depth + 1) for c in cells]
        return (f"fn:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
                f"[{','.join(inner)}]")
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        return f"{kind}:{value!r}"
    inner = {k: v for k, v in attributes.items() if k not in _SKIP}
    return f"{kind}({_describe(inner, depth + 1)})"
