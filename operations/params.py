"""Constraints an op attaches to its parameters with ``typing.Annotated``.

The compiler validates a spec's values against an op's signature: the base type from the
annotation (int, float, bool, str, Literal, tuple, Union) and these markers for ranges and
relations. A custom op gets the same checks as a built-in by annotating its parameters::

    def kernel(image_in, image_out, rng, threshold: Annotated[int, Range(0, 256)] = 128): ...

Rules every parameter gets without a marker (the validator applies them): a float is finite
(NaN and infinity are refused unless the annotation carries ``NonFinite()``); an int fits in a
signed 64-bit integer unless a ``Range`` with both bounds says otherwise (``seed`` goes to
2**64 - 1). The aliases below add sane maxima for sizes, counts and class numbers, so a typo
of a few zeros is an error that names the limit, not a hang or an allocation of terabytes.
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
                return f"must be {self.describe()}, got {_number(v)}"
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


@dataclass(frozen=True)
class NonFinite(Constraint):
    """The float parameter may be NaN or infinite (without it the validator refuses both)."""

    def violation(self, value):
        return None


@dataclass(frozen=True)
class PixelUnits(Constraint):
    """Per-channel statistics in 0-255 pixel units: values that all look like 0-1 units
    (``[0.485, 0.456, 0.406]``) are refused with a hint. ``strict``: a value of exactly 1
    counts as 0-1 units too (a mean of ones is a 0-1 mistake; a std of ones means "none")."""

    strict: bool = False

    def violation(self, value):
        if isinstance(value, str) or not isinstance(value, (tuple, list)) or not value:
            return None
        small = all(0 <= v < 1 or (self.strict and v == 1) for v in value)
        if small and any(v > 0 for v in value):
            shown = ", ".join(f"{v:g}" for v in value)
            scaled = ", ".join(f"{v * 255:g}" for v in value)
            return (f"[{shown}]: these look like 0-1 units; pixel units are x255: "
                    f"[{scaled}] (or a name such as imagenet)")
        return None


#: the largest image side (pixels) a size may ask for
MAX_SIDE = 16384
#: the most classes a label may have (one-hot targets are batch x num_classes floats)
MAX_CLASSES = 1_000_000
#: the most repetitions of a per-image loop (erasing boxes, policy ops, magnitude bins)
MAX_COUNT = 1024

Probability = Annotated[float, Range(0.0, 1.0)]
PositiveInt = Annotated[int, Range(1)]
#: a count of per-image repetitions, 1..MAX_COUNT
Count = Annotated[int, Range(1, MAX_COUNT)]
#: a number of classes, 1..MAX_CLASSES
NumClasses = Annotated[int, Range(1, MAX_CLASSES)]
NonNegativeFloat = Annotated[float, Range(0.0)]
#: an image size: one int (square) or [height, width]
Size = Annotated[Tuple[int, int] | int, Range(1, MAX_SIDE)]
#: a [min, max] range of floats
FloatRange = Annotated[Tuple[float, float], Ascending()]
#: a [min, max] range of fractions of the image area, in (0, 1]
AreaRange = Annotated[Tuple[float, float], Ascending(), Range(0.0, 1.0, low_open=True)]
#: a [min, max] range of aspect ratios (width / height), each > 0
AspectRange = Annotated[Tuple[float, float], Ascending(), Range(0.0, None, low_open=True)]


def _number(value: Any) -> str:
    """A number for a message (an integer of hundreds of digits by its length)."""
    if isinstance(value, int) and abs(value) >= 10 ** 20:
        return f"an integer of {len(str(abs(value)))} digits"
    return str(value)


def constraints_of(annotation) -> tuple:
    """The Constraint markers of an ``Annotated`` type (empty for a plain type)."""
    return tuple(m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Constraint))
