"""Opening a .beton for its metadata, with one-line errors for the user's mistakes (a missing,
unreadable or foreign file, a missing field, no samples) instead of FFCV's tracebacks."""
import os
from pathlib import Path
from typing import Sequence, Union

from operations.errors import PureffcvError


class BetonError(PureffcvError, ValueError):
    """A .beton that cannot serve; ``str()`` is one line naming the file."""


def open_beton(path: Union[str, os.PathLike], fields: Sequence[str] = ("label",)):
    """FFCV's ``Reader`` of ``path`` (metadata only, nothing decoded), after checking that the
    file exists, is readable, parses, has every field in ``fields`` and holds samples."""
    from ffcv.reader import Reader

    file = Path(path)
    if not file.is_file():
        raise BetonError(f"{path}: no such .beton file")
    if not os.access(file, os.R_OK):
        raise BetonError(f"{path}: cannot read this file (permission denied)")
    try:
        reader = Reader(str(file))
    except Exception as exc:  # FFCV raises assorted errors for a file it cannot parse
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise BetonError(f"{path}: not a readable .beton file ({type(exc).__name__}: {reason})"
                         ) from None
    missing = [name for name in fields if name not in reader.field_names]
    if missing:
        raise BetonError(f"{path}: the .beton has no '{missing[0]}' field "
                         f"(fields: {', '.join(reader.field_names)})")
    if reader.num_samples == 0:
        raise BetonError(f"{path}: the .beton holds no samples")
    return reader
