"""Spec errors are data: a file position and a message in the user's vocabulary.

Nothing else in pureffcv formats positions; the CLI prints ``str(error)``.
"""
from dataclasses import dataclass
from typing import Iterable, List, Optional

from operations.errors import PureffcvError


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column in a spec file (``<string>`` for text input)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(PureffcvError):
    """One user mistake in a spec: ``str()`` is ``FILE:LINE:COL: message`` on one line."""

    located = True

    def __init__(self, pos: Pos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.file, self.line, self.column = pos.file, pos.line, pos.column
        self.message = message

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}"


@dataclass(frozen=True)
class SpecWarning:
    """Something in a spec that works but should change (a deprecated op name): ``str()``
    is ``FILE:LINE:COL: warning: message``. ``pureffcv check`` prints it; it fails nothing."""

    pos: Pos
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: warning: {self.message}"


class SpecErrors(SpecError):
    """Every mistake found in a spec; ``str()`` is one line per error, in file order.

    Its own position and message are the first error's, so code that catches a single
    SpecError still gets a sensible one."""

    def __init__(self, errors: Iterable[SpecError]):
        unique = {(e.pos, e.message): e for e in errors}  # an anchor used twice reports once
        self.errors: List[SpecError] = sorted(unique.values(), key=lambda e: (e.line, e.column))
        first = self.errors[0]
        super().__init__(first.pos, first.message)

    def __str__(self) -> str:
        return "\n".join(f"{e.pos}: {e.message}" for e in self.errors)


class ErrorList:
    """Collects errors while a spec is checked so that a file reports all of them at once."""

    def __init__(self):
        self.errors: List[SpecError] = []

    def add(self, pos: Pos, message: str) -> None:
        self.errors.append(SpecError(pos, message))

    def extend(self, error: SpecError) -> None:
        self.errors.extend(getattr(error, "errors", [error]))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecErrors(self.errors)


def first_line(text: Optional[str]) -> str:
    """A message on one line (exception texts may span several)."""
    return " ".join(str(text).split())
