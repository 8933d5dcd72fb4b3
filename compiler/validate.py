"""Check YAML values against Python type hints: an op's ``__init__`` signature or a spec
section's dataclass. One mechanism for both, so a custom op gets the same validation as a
built-in and the spec's own keys get the same messages as op parameters.

Supported hints: int, float (int accepted), bool, str, None, Literal, Tuple[...] / List[...]
(YAML lists), Union / Optional / ``X | Y``, Annotated with the Constraint markers of
``operations.params`` (Named conversion first, then Range, Ascending, ...), and any class
(isinstance). A parameter without a hint accepts any value.

Rules for every value, whatever its annotation: a float is finite (unless ``NonFinite()``);
an int fits in 64 signed bits unless a ``Range`` with both bounds declares its own limits.
"""
import contextvars
import dataclasses
import inspect
import math
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Dict, Literal, Union

from operations.params import Named, NonFinite, Range, constraints_of
from operations.registry import did_you_mean

from .errors import Pos
from .yaml_positions import Node

REQUIRED = inspect.Parameter.empty
ANY = inspect.Parameter.empty
#: the integers a parameter holds unless a Range with both bounds says otherwise
INT_MIN, INT_MAX = -2 ** 63, 2 ** 63 - 1
#: what the Annotated hint being checked declares: {"nonfinite", "int_bounds"}
_DECLARED = contextvars.ContextVar("pureffcv_declared", default=frozenset())


@dataclass(frozen=True)
class Param:
    """One settable key: its type hint (ANY when unannotated) and default (REQUIRED if none)."""

    name: str
    hint: Any = ANY
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class ValueProblem(Exception):
    """A value does not fit its hint; ``pos`` is the offending node (a list element, say)."""

    def __init__(self, pos: Pos, message: str):
        super().__init__(message)
        self.pos = pos
        self.message = message


class MeaninglessValue(ValueProblem):
    """The value has the right type but no meaning (NaN, infinity, an integer past 64 bits):
    a Union reports this problem rather than "must be A or B"."""


# --- where the hints come from -----------------------------------------------------------

def op_params(op_class: type) -> Dict[str, Param]:
    """The parameters a spec may set on ``op_class``: keyword args of its ``__init__``."""
    if hasattr(op_class, "parameters"):
        signature_params = op_class.parameters()
    else:  # a raw FFCV Operation
        signature_params = {n: p for n, p in inspect.signature(op_class.__init__).parameters.items()
                            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    hints = _resolved_hints(op_class)
    return {name: Param(name, hints.get(name, p.annotation), p.default)
            for name, p in signature_params.items()}


def dataclass_params(cls: type) -> Dict[str, Param]:
    """The keys of a spec section written as a dataclass (defaults from its fields)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    params = {}
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else REQUIRED
        params[f.name] = Param(f.name, hints[f.name], default)
    return params


def _resolved_hints(op_class: type) -> dict:
    """Type hints of the op's signature with string annotations evaluated (``from __future__
    import annotations`` in a custom op's module); declared ops' signatures included."""
    init = op_class.__init__
    try:
        hints = typing.get_type_hints(init, include_extras=True)
    except Exception:
        hints = {}
    module_globals = vars(sys.modules.get(op_class.__module__, typing))
    signature = op_class.signature() if hasattr(op_class, "signature") else inspect.signature(init)
    for name, p in signature.parameters.items():
        if name not in hints and isinstance(p.annotation, str):
            try:
                hints[name] = eval(p.annotation, module_globals)  # noqa: S307 (the op's own code)
            except Exception:
                hints[name] = ANY
        elif name not in hints:
            hints[name] = p.annotation
    return hints


# --- checking a mapping of values --------------------------------------------------------

def check_mapping(node: Node, params: Dict[str, Param], errors, what: str,
                  fill_defaults: bool = True) -> Dict[str, Any]:
    """Validate ``node`` (a mapping) against ``params``; report every problem to ``errors``.

    Returns name -> converted value for the keys that passed (plus defaults when
    ``fill_defaults``). ``what`` names the owner in messages ("'rotate'", "loader")."""
    values = {}
    for key, value in node.value.items():
        if key not in params:
            hint = did_you_mean(key, params, "its keys are") if params else \
                f"; {what} takes no parameters"
            errors.add(node.key_pos[key], f"unknown key '{key}' in {what}{hint}")
            continue
        try:
            values[key] = coerce(value, params[key].hint)
        except ValueProblem as problem:
            errors.add(problem.pos, f"{key} of {what}: {problem.message}")
    for name, param in params.items():
        if name in node.value:
            continue
        if param.required:
            errors.add(node.pos, f"{what} needs '{name}' ({describe(param.hint)})")
        elif fill_defaults:
            values[name] = param.default
    return values


def coerce(node: Node, hint: Any) -> Any:
    """The value of ``node`` as ``hint`` describes it (YAML lists -> tuples for Tuple hints,
    ints -> floats for float, names -> table values for Named); raise ValueProblem."""
    value = node.value
    if hint is ANY or hint is Any:
        return node.plain()
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _coerce_annotated(node, hint)
    if origin in (Union, types.UnionType):
        return _coerce_union(node, hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        hint_text = did_you_mean(value, [c for c in choices if isinstance(c, str)]) \
            if isinstance(value, str) else ""
        raise ValueProblem(node.pos, f"must be {describe(hint)}, got {show(node.plain())}{hint_text}")
    if origin in (tuple, list) or hint in (tuple, list):
        return _coerce_sequence(node, hint)
    if hint is type(None) or hint is None:
        if value is None:
            return None
        raise ValueProblem(node.pos, f"must be null, got {show(node.plain())}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if "int_bounds" not in _DECLARED.get() and not INT_MIN <= value <= INT_MAX:
                raise MeaninglessValue(node.pos, f"must fit in a 64-bit integer "
                                       f"(at most {INT_MAX}), got {show(value)}")
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number) and "nonfinite" not in _DECLARED.get():
                raise MeaninglessValue(node.pos, f"must be a finite number, got {show(value)}")
            return number
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint in (dict, typing.Dict) or origin is dict:
        if node.is_mapping:
            return node.plain()
    elif isinstance(hint, type):
        plain = node.plain()
        if isinstance(plain, hint):
            return plain
    else:  # a hint we do not understand (TypeVar, Callable, ...): accept what YAML gives
        return node.plain()
    raise ValueProblem(node.pos, f"must be {describe(hint)}, got {show(node.plain())}")


def _coerce_annotated(node: Node, hint: Any) -> Any:
    base = typing.get_args(hint)[0]
    markers = constraints_of(hint)
    token = _DECLARED.set(_declared_by(markers))
    try:
        return _coerce_marked(node, base, markers)
    finally:
        _DECLARED.reset(token)


def _declared_by(markers: tuple) -> frozenset:
    """What an Annotated hint's markers declare (see ``_DECLARED``), added to the outer ones."""
    declared = set(_DECLARED.get())
    if any(isinstance(m, NonFinite) for m in markers):
        declared.add("nonfinite")
    if any(isinstance(m, Range) and m.low is not None and m.high is not None for m in markers):
        declared.add("int_bounds")
    return frozenset(declared)


def _coerce_marked(node: Node, base: Any, markers: tuple) -> Any:
    value_node = node
    for named in (m for m in markers if isinstance(m, Named)):
        problem = named.violation(node.value)
        if problem:
            raise ValueProblem(node.pos, problem)
        if isinstance(node.value, str):  # a table entry stands for its value
            converted = named.convert(node.value)
            value_node = Node(list(converted) if isinstance(converted, tuple) else converted, node.pos)
            value_node = _as_nodes(value_node)
    value = coerce(value_node, base)
    for marker in markers:
        if isinstance(marker, Named):
            continue
        try:
            problem = marker.violation(value)
        except (TypeError, ValueError):  # the marker does not apply to this form of the value
            problem = None
        if problem:
            raise ValueProblem(node.pos, problem)
    return value


def _as_nodes(node: Node) -> Node:
    """Wrap the elements of a converted list in Nodes (at the position of the name)."""
    if isinstance(node.value, list):
        return Node([_as_nodes(Node(v, node.pos)) for v in node.value], node.pos)
    return node


def _coerce_union(node: Node, hint: Any) -> Any:
    arms = typing.get_args(hint)
    problems = []
    for arm in arms:
        try:
            return coerce(node, arm)
        except ValueProblem as problem:
            problems.append((arm, problem))
    # Report the one arm whose base type fits (its constraint failed), or the one list arm
    # for a list; otherwise list what would be right.
    meaningless = [p for arm, p in problems if isinstance(p, MeaninglessValue)]
    if meaningless:
        raise meaningless[0]
    fitting = [p for arm, p in problems if _base_fits(node, arm)]
    list_arms = [p for arm, p in problems if _is_sequence_hint(arm)]
    if len(fitting) == 1:
        raise fitting[0]
    if node.is_list and len(list_arms) == 1:
        raise list_arms[0]
    names = [c for arm in arms if typing.get_origin(arm) is Literal
             for c in typing.get_args(arm) if isinstance(c, str)]
    hint_text = did_you_mean(node.value, names) if isinstance(node.value, str) else ""
    raise ValueProblem(node.pos, f"must be {describe(hint)}, got {show(node.plain())}{hint_text}")


def _base_fits(node: Node, hint: Any) -> bool:
    """Whether ``node`` has the type of an Annotated hint (its markers aside)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return False
    token = _DECLARED.set(_declared_by(constraints_of(hint)))
    try:
        coerce(node, typing.get_args(hint)[0])
        return True
    except ValueProblem:
        return False
    finally:
        _DECLARED.reset(token)


def _is_sequence_hint(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        return _is_sequence_hint(typing.get_args(hint)[0])
    return typing.get_origin(hint) in (tuple, list) or hint in (tuple, list)


def _coerce_sequence(node: Node, hint: Any) -> Any:
    origin = typing.get_origin(hint) or hint
    if not node.is_list:
        raise ValueProblem(node.pos, f"must be {describe(hint)}, got {show(node.plain())}")
    args = typing.get_args(hint)
    items = node.value
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise ValueProblem(node.pos, f"must be {describe(hint)}, got a list of {len(items)}")
        return tuple(coerce(item, arm) for item, arm in zip(items, args))
    element = args[0] if args else ANY
    converted = [coerce(item, element) for item in items]
    return tuple(converted) if origin is tuple else converted


# --- words for types and values ----------------------------------------------------------

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          type(None): "null", dict: "a mapping"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: ``Tuple[int, int]`` -> "a list of 2 integers"."""
    if hint is ANY or hint is Any:
        return "values" if plural else "any value"
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base = typing.get_args(hint)[0]
        text = describe(base, plural)
        extras = [m.describe() for m in constraints_of(hint) if hasattr(m, "describe")]
        names = [n for m in constraints_of(hint) if isinstance(m, Named) for n in sorted(m.table)]
        if names:
            text = describe(_without_str(base), plural) + f" or a name ({', '.join(names)})"
        return text + (f" {', '.join(extras)}" if extras else "")
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arm, plural) for arm in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(show(c) for c in typing.get_args(hint))
    if origin in (tuple, list) or hint in (tuple, list):
        args = typing.get_args(hint)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(set(args)) == 1:
                return f"a list of {len(args)} {describe(args[0], plural=True)}"
            return f"a list [{', '.join(describe(a) for a in args)}]"
        return f"a list of {describe(args[0], plural=True)}" if args else "a list"
    if plural and hint in _PLURALS:
        return _PLURALS[hint]
    if hint in _NAMES:
        return _NAMES[hint]
    return getattr(hint, "__name__", str(hint))


def _without_str(hint: Any) -> Any:
    """A Union without its ``str`` arm (the names a Named marker accepts are listed apart)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        arms = tuple(a for a in typing.get_args(hint) if a is not str)
        return arms[0] if len(arms) == 1 else Union[arms]
    return hint


def show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int) and abs(value) >= 10 ** 20:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)

