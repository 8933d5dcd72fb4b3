"""Opening a .beton for its metadata, with one-line errors for the user's mistakes (a missing,
unreadable, foreign, truncated or damaged file, a missing field, no samples) instead of FFCV's
tracebacks or hangs. The checks themselves are ``compiler.beton_check`` (the compiler's
``CompiledPipeline.loader`` runs them too)."""
import os
from typing import Sequence, Union

import numpy as np

from compiler.beton_check import BetonError, check_beton

__all__ = ["BetonError", "open_beton", "stored_labels"]


def open_beton(path: Union[str, os.PathLike], fields: Sequence[str] = ("label",)):
    """FFCV's ``Reader`` of ``path`` (metadata only, nothing decoded), after checking that the
    file exists, is readable, is a whole .beton (header, field table, every sample's data
    inside the file), has every field in ``fields`` and holds samples."""
    return check_beton(path, fields)


def stored_labels(path: Union[str, os.PathLike], label_field: str = "label",
                  image_field: str = "image") -> np.ndarray:
    """Every sample's integer label from the .beton's ``label_field`` (an IntField, read from
    its metadata, nothing decoded) as int64 (N,), after ``open_beton``'s checks of both fields;
    BetonError when the field holds no integers. The field names are a compiled split's
    (``CompiledPipeline.image_field`` / ``label_field``), never assumed."""
    from ffcv.fields import IntField

    reader = open_beton(path, (image_field, label_field))
    handler = reader.handlers[label_field]
    if not isinstance(handler, IntField):
        raise BetonError(f"{path}: field '{label_field}' is a {type(handler).__name__}, not an "
                         f"IntField; for vector targets write label: {{field: {label_field}, "
                         f"type: multi_hot (or float), num_classes: N}} in the spec")
    column = reader.metadata[f"f{reader.field_names.index(label_field)}"]
    return np.asarray(column).astype(np.int64).reshape(-1)
