"""The op registry: name -> the op's backends (one class per stage), from built-ins, imported
modules, entry points and dotted paths (``my_lab.augment:Posterize2``).

One name per op whatever the stage: an op with a CPU (Numba) and a device (torch) backend
registers both under one name, and the spec section it is written in picks one
(``get_op(name, stage)``). Old names stay as deprecated aliases (``deprecated_names``),
which resolve to the new name's backend and which ``pureffcv check`` reports."""
import difflib
import importlib
from importlib.metadata import entry_points
from typing import Dict, Iterable, List, NamedTuple, Optional

from .authoring import cpu_op
from .device.derived import derived_device_backend
from .errors import PureffcvError
from .ffcv_api import Operation

ENTRY_POINT_GROUP = "pureffcv.operations"

#: name -> {stage: backend class}, each op's backends in the order they were registered
_REGISTRY: Dict[str, Dict[str, type]] = {}
_loaded_entry_points = False
#: "distribution (entry point): error" of each plugin whose entry point failed to load
_entry_point_failures: List[str] = []


class UnknownOpError(PureffcvError, LookupError):
    """No op of that name; the message lists the closest names."""


class Alias(NamedTuple):
    """An old op name: the op it now spells (``name``) and, where the old name meant one
    backend of it, that backend's stage."""

    name: str
    stage: Optional[str] = None


#: old name -> the name to write instead (``deprecated_alias``)
_ALIASES: Dict[str, Alias] = {}


def register_op(name: str, *, stage: Optional[str] = None):
    """Register an op under ``name`` (decorator).

    Accepts a ``PureOperation`` subclass, a raw FFCV ``Operation`` subclass (give ``stage``
    when it is not a per-sample CPU op), or a per-sample kernel
    ``f(image_in, image_out, rng, **params)`` which is turned into an op by ``cpu_op``.
    Registering a class of another stage under a name adds that backend to the op (its
    parameters must be the first backend's: one declaration). A point map, channel map or
    matrix declaration gets its device backend derived (``device.derived``) unless one is
    written beside it.
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
        backends = _REGISTRY.setdefault(name, {})
        _check_same_parameters(name, op, backends.values())
        existing = backends.get(op.stage)
        if existing is not None and existing is not op and _origin(existing) != _origin(op) \
                and not getattr(existing, "derived", False):
            raise ValueError(f"op name '{name}' is already registered by {_origin(existing)}")
        backends[op.stage] = op
        op.op_name = name
        on_device = derived_device_backend(op) if op.stage == "cpu" else None
        if on_device is not None and getattr(backends.get("device"), "derived", True):
            backends["device"] = on_device
            on_device.op_name = name
        return op

    return decorate


def _check_same_parameters(name: str, op: type, others) -> None:
    """A second backend of an op takes the first one's parameters (one declaration)."""
    for other in others:
        if other.stage != op.stage and hasattr(other, "parameters") and hasattr(op, "parameters") \
                and set(other.parameters()) != set(op.parameters()):
            raise TypeError(f"register_op('{name}'): the {op.stage} backend's parameters "
                            f"({', '.join(op.parameters())}) are not the {other.stage} backend's "
                            f"({', '.join(other.parameters())})")


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


def register_alias(old: str, new: str, stage: Optional[str] = None) -> None:
    """Keep the old name ``old`` working as a deprecated spelling of ``new`` (of its
    ``stage`` backend when given)."""
    _ALIASES[old] = Alias(new, stage)


def deprecated_alias(name: str) -> Optional[Alias]:
    """The op an old, deprecated name now spells, or None for a current name."""
    return _ALIASES.get(name)


def deprecated_names() -> Dict[str, Alias]:
    """Every deprecated name and what it now spells."""
    return dict(_ALIASES)


def available_ops() -> List[str]:
    """All registered op names (current spellings, not deprecated aliases), sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def backends(name: str) -> Dict[str, type]:
    """The backends of op ``name``: stage -> class, in the order they were registered."""
    get_op(name)  # loads plugins; unknown names raise
    return dict(_REGISTRY[_ALIASES[name].name if name in _ALIASES else name])


def get_op(name: str, stage: Optional[str] = None) -> type:
    """The op class for ``name`` (or a dotted path ``package.module:Attribute``): its
    backend for ``stage`` (decoder, cpu, device, batch) when it has one, else the backend it
    registered first (the planner then says where the op belongs). A deprecated name gives
    the backend it used to mean."""
    if ":" in name:
        return _load_dotted(name)
    if name in _ALIASES:
        name, stage = _ALIASES[name].name, _ALIASES[name].stage or stage
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        found = _REGISTRY[name]
    except KeyError:
        failed = f" (plugins that failed to load: {'; '.join(_entry_point_failures)})" \
            if _entry_point_failures else ""
        raise UnknownOpError(f"unknown op '{name}'{did_you_mean(name, _REGISTRY)}{failed}") from None
    return found.get(stage) or next(iter(found.values()))


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
