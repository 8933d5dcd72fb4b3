"""The conversion's one error type, the class-map check every scanner raises it from, and the
one-line reason a skipped file is listed with."""
from operations.errors import PureffcvError

from ..class_maps import ClassMapError, labels_for


class ConversionError(PureffcvError):
    """A mistake in the input or options; ``str()`` is one line for the user."""


def source_labels(names, classes, where: str) -> dict:
    """``class_maps.labels_for`` of a source's class ``names``, its refusal a ConversionError."""
    try:
        return labels_for(names, classes, where)
    except ClassMapError as exc:
        raise ConversionError(str(exc)) from None


def one_line(exc: BaseException) -> str:
    """Why a file could not be used, in one line: the exception's type and first line."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
