"""Constraints an op attaches to its parameters with ``typing.Annotated``.

The compiler validates a spec's values against an op's signature: the base type from the
annotation (int, float, bool, str, Literal, tuple, Union) and these markers for ranges and
relations. A custom op gets the same checks as a built-in by annotating its parameters::

    def kernel(image_in, image_out, rng, threshold: Annotated[int, Range(0, 256)] = 128): ...
"""
from dataclasses import dataclass
from typing import Annotated, Any, Mapping, Optional, Tuple


class Constraint:
    """A check on a parameter value; ``violation`` returns what is wrong, or None."""

    def violation(self, value: Any) -> Optional[str]:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """The value handed to the op (a named constant resolved, say)."""
        return value


@dataclass(frozen=True)
class Range(Constraint):
    """low <= value <= high (either bound may be None); each element of a sequence too."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def violation(self, value):
        for v in value if isinstance(value, (tuple, list)) else (value,):
            too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
            too_high = self.high is not None and (v >= self.high if self.high_open else v > self.high)
            if too_low or too_high:
                return f"must be {self.describe()}, got {v}"
        return None

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return (f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}")


@dataclass(frozen=True)
class Ascending(Constraint):
    """A (min, max) pair with min <= max."""

    def violation(self, value):
        if len(value) == 2 and value[0] > value[1]:
            return f"must be [min, max] with min <= max, got [{value[0]}, {value[1]}]"
        return None


@dataclass(frozen=True)
class Named(Constraint):
    """The value may also be one of the names in ``table`` (e.g. ``mean: imagenet``)."""

    table: Mapping[str, Any]

    def violation(self, value):
        if isinstance(value, str) and value not in self.table:
            return f"unknown name '{value}'; known names: {', '.join(sorted(self.table))}"
        return None

    def convert(self, value):
        return self.table[value] if isinstance(value, str) else value


Probability = Annotated[float, Range(0.0, 1.0)]
PositiveInt = Annotated[int, Range(1)]
NonNegativeFloat = Annotated[float, Range(0.0)]
#: an image size: one int (square) or [height, width]
Size = Annotated[Tuple[int, int] | int, Range(1)]
#: a [min, max] range of floats
FloatRange = Annotated[Tuple[float, float], Ascending()]


def constraints_of(annotation) -> tuple:
    """The Constraint markers of an ``Annotated`` type (empty for a plain type)."""
    return tuple(m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Constraint))
