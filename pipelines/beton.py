"""Opening a .beton for its metadata, with one-line errors for the user's mistakes (a missing,
unreadable, foreign, truncated or damaged file, a missing field, no samples) instead of FFCV's
tracebacks or hangs. The checks themselves are ``compiler.beton_check`` (the compiler's
``CompiledPipeline.loader`` runs them too)."""
import os
from typing import Sequence, Union

from compiler.beton_check import BetonError, check_beton

__all__ = ["BetonError", "open_beton"]


def open_beton(path: Union[str, os.PathLike], fields: Sequence[str] = ("label",)):
    """FFCV's ``Reader`` of ``path`` (metadata only, nothing decoded), after checking that the
    file exists, is readable, is a whole .beton (header, field table, every sample's data
    inside the file), has every field in ``fields`` and holds samples."""
    return check_beton(path, fields)
