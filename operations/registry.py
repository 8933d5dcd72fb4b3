"""The op registry: name -> op class, from built-ins, imported modules, entry points and
dotted paths (``my_lab.augment:Posterize2``)."""
import difflib
import importlib
from importlib.metadata import entry_points
from typing import Dict, Iterable, List, Optional

from ffcv.pipeline.operation import Operation

from .authoring import cpu_op
from .errors import PureffcvError

ENTRY_POINT_GROUP = "pureffcv.operations"

_REGISTRY: Dict[str, type] = {}
_loaded_entry_points = False
#: "distribution (entry point): error" of each plugin whose entry point failed to load
_entry_point_failures: List[str] = []


class UnknownOpError(PureffcvError, LookupError):
    """No op of that name; the message lists the closest names."""


def register_op(name: str, *, stage: Optional[str] = None):
    """Register an op under ``name`` (decorator).

    Accepts a ``PureOperation`` subclass, a raw FFCV ``Operation`` subclass (give ``stage``
    when it is not a per-sample CPU op), or a per-sample kernel
    ``f(image_in, image_out, rng, **params)`` which is turned into an op by ``cpu_op``.
    """
    def decorate(obj):
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


def _load_entry_points() -> None:
    """Load every plugin once. A plugin that fails is remembered, not raised: the other
    plugins still load, and the failure is named when an op turns out to be unknown."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True  # before loading: a plugin that calls get_op must not recurse
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()  # a module that registers, or an op class to register as ep.name
            if isinstance(loaded, type) and ep.name not in _REGISTRY:
                register_op(ep.name)(loaded)
        except Exception as exc:
            plugin = f"{ep.dist.name} ({ep.name})" if ep.dist is not None else ep.name
            _entry_point_failures.append(f"{plugin}: {type(exc).__name__}: {exc}")


def available_ops() -> List[str]:
    """All registered op names, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_op(name: str) -> type:
    """The op class for ``name``, or for a dotted path ``package.module:Attribute``."""
    if ":" in name:
        return _load_dotted(name)
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        failed = f" (plugins that failed to load: {'; '.join(_entry_point_failures)})" \
            if _entry_point_failures else ""
        raise UnknownOpError(f"unknown op '{name}'{did_you_mean(name, _REGISTRY)}{failed}") from None


def did_you_mean(word: str, choices: Iterable[str], what: str = "") -> str:
    """``"; did you mean 'x'?"`` for the closest choices, else ``"; {what}: "`` and the list
    of choices (nothing when ``what`` is empty). Shared with the compiler's spec errors."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    if choices and what:
        return f"; {what}: {', '.join(choices)}"
    return ""


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
