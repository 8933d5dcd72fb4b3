"""The op registry: name -> op class, from built-ins, imported modules, entry points and
dotted paths (``my_lab.augment:Posterize2``)."""
import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable, Dict, List, Optional, Type

from ffcv.pipeline.operation import Operation

ENTRY_POINT_GROUP = "pureffcv.operations"

_REGISTRY: Dict[str, type] = {}
_loaded_entry_points = False


class UnknownOpError(LookupError):
    """No op of that name; the message lists the closest names."""


def register_op(name: str, *, stage: Optional[str] = None):
    """Register an op under ``name`` (decorator).

    Accepts a ``PureOperation`` subclass, a raw FFCV ``Operation`` subclass (give ``stage``
    when it is not a per-sample CPU op), or a per-sample kernel
    ``f(image_in, image_out, rng, **params)`` which is turned into an op by ``cpu_op``.
    """
    def decorate(obj):
        from .authoring import cpu_op

        op = obj if isinstance(obj, type) else cpu_op(obj)
        if not issubclass(op, Operation) and not hasattr(op, "stage"):
            raise TypeError(f"register_op('{name}'): {obj!r} is neither an FFCV Operation, "
                            f"a batch op nor a kernel function")
        if stage is not None:
            op.stage = stage
        elif not hasattr(op, "stage"):
            op.stage = "cpu"
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not op and _origin(existing) != _origin(op):
            raise ValueError(f"op name '{name}' is already registered by {_origin(existing)}")
        _REGISTRY[name] = op
        op.op_name = name
        return op

    return decorate


def _origin(op) -> str:
    return f"{op.__module__}.{op.__qualname__}"


def _load_builtins() -> None:
    from . import builtins  # noqa: F401  (registers on import)


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()  # a module that registers, or an op class to register under ep.name
        if isinstance(loaded, type) and ep.name not in _REGISTRY:
            register_op(ep.name)(loaded)


def available_ops() -> List[str]:
    """All registered op names, sorted."""
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


def get_op(name: str) -> type:
    """The op class for ``name``, or for a dotted path ``package.module:Attribute``."""
    if ":" in name:
        return _load_dotted(name)
    _load_builtins()
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownOpError(f"unknown op '{name}'{hint}") from None


def _load_dotted(path: str) -> type:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)  # ImportError is the caller's to report
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise UnknownOpError(f"module '{module_name}' has no attribute '{attr}'") from None
    if getattr(obj, "op_name", None) is None:
        obj = register_op(path)(obj)
    return obj
