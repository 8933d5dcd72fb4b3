"""Checking a .beton before FFCV reads it: one line naming the file for anything that would
otherwise be a traceback, a wrong answer or a hang in FFCV's loader thread.

FFCV 1.0.2 trusts the file: a .beton one byte short loses its last allocation-table entry, and
the Loader then reads the sample whose pointer is missing from nowhere (a hang, or garbage).
``check_beton`` reads the metadata only (header, field table, per-sample metadata, allocation
table; no image data) and checks that they agree with each other and with the file's size:

- the header: format version, at least one field, a page size that is a power of two, samples,
  an allocation table that starts after the metadata and ends exactly at the end of the file;
- the field table: every field type known to FFCV, names readable;
- every sample's data pointer is an allocation of the table, and every allocation (pointer and
  size) lies inside the data region of the file.

It costs a few vectorized NumPy passes over the metadata (milliseconds for a million samples).
"""
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from operations.errors import PureffcvError


class BetonError(PureffcvError, ValueError):
    """A .beton that cannot serve; ``str()`` is one line naming the file."""


def check_beton(path: Union[str, os.PathLike], fields: Sequence[str] = ()):
    """FFCV's ``Reader`` of ``path`` after checking the file's structure (see the module
    docstring), that it has every field in ``fields`` and that it holds samples; raise
    BetonError otherwise."""
    from ffcv.reader import Reader

    file = Path(path)
    if not file.is_file():
        raise BetonError(f"{path}: no such .beton file")
    if not os.access(file, os.R_OK):
        raise BetonError(f"{path}: cannot read this file (permission denied)")
    _check_structure(path, file.stat().st_size)
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
    return reader


def _check_structure(path, size: int) -> None:
    from ffcv.types import (ALLOC_TABLE_TYPE, CURRENT_VERSION, TYPE_ID_HANDLER, FieldDescType,
                            HeaderType, get_handlers, get_metadata_type)

    def bad(reason: str) -> BetonError:
        return BetonError(f"{path}: damaged or not a .beton file ({reason})")

    if size == 0:
        raise bad("the file is empty")
    if size < HeaderType.itemsize:
        raise bad(f"{size} bytes, shorter than the {HeaderType.itemsize}-byte header")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HeaderType.itemsize), dtype=HeaderType)[0]
        version, num_fields = int(header["version"]), int(header["num_fields"])
        page_size, samples = int(header["page_size"]), int(header["num_samples"])
        table_ptr = int(header["alloc_table_ptr"])
        if version != CURRENT_VERSION:
            raise bad(f"format version {version}; this FFCV reads version {CURRENT_VERSION}")
        if num_fields == 0:
            raise bad("the header declares no fields")
        if page_size == 0 or page_size & (page_size - 1):
            raise bad(f"page size {page_size} is not a power of two")
        if samples == 0:
            raise BetonError(f"{path}: the .beton holds no samples")
        fields_end = HeaderType.itemsize + num_fields * FieldDescType.itemsize
        if fields_end > size:
            raise bad(f"truncated: the {num_fields} field descriptions end at byte {fields_end:,} "
                      f"but the file has {size:,} bytes")
        descriptors = np.frombuffer(f.read(num_fields * FieldDescType.itemsize), dtype=FieldDescType)
        unknown = [int(t) for t in descriptors["type_id"] if int(t) not in TYPE_ID_HANDLER]
        if unknown:
            raise bad(f"unknown field type {unknown[0]} in the field table")
        try:
            metadata_type = get_metadata_type([h for h in get_handlers(descriptors) if h is not None])
        except Exception as exc:
            raise bad(f"unreadable field table: {type(exc).__name__}") from None
        metadata_end = fields_end + samples * metadata_type.itemsize
        if metadata_end > size:
            raise bad(f"truncated: the metadata of {samples:,} samples ends at byte "
                      f"{metadata_end:,} but the file has {size:,} bytes")
        if not metadata_end <= table_ptr <= size:
            raise bad(f"the allocation table pointer {table_ptr:,} lies outside the data region "
                      f"(bytes {metadata_end:,} to {size:,})")
        table_bytes = size - table_ptr
        if table_bytes % ALLOC_TABLE_TYPE.itemsize:
            raise bad(f"truncated or padded: the allocation table's {table_bytes:,} bytes are not "
                      f"a whole number of {ALLOC_TABLE_TYPE.itemsize}-byte entries")
        metadata = np.frombuffer(f.read(samples * metadata_type.itemsize), dtype=metadata_type)
        f.seek(table_ptr)
        table = np.frombuffer(f.read(table_bytes), dtype=ALLOC_TABLE_TYPE)
    ptrs, sizes = table["ptr"].astype(np.uint64), table["size"].astype(np.uint64)
    outside = (ptrs < np.uint64(metadata_end)) | (ptrs > np.uint64(table_ptr)) | \
        (sizes > np.uint64(table_ptr) - np.minimum(ptrs, np.uint64(table_ptr)))
    if outside.any():
        i = int(np.argmax(outside))
        raise bad(f"allocation {i} (bytes {int(ptrs[i]):,} + {int(sizes[i]):,}) lies outside the "
                  f"data region, which ends at byte {table_ptr:,}")
    known = np.sort(ptrs)
    for name in metadata.dtype.names or ():
        field = metadata[name]
        for pointer in ("data_ptr", "ptr"):
            if field.dtype.names and pointer in field.dtype.names:
                wanted = field[pointer].astype(np.uint64)
                found = np.searchsorted(known, wanted)
                missing = (found >= len(known)) | (known[np.minimum(found, len(known) - 1)] != wanted) \
                    if len(known) else np.ones(len(wanted), bool)
                if "size" in field.dtype.names:  # an empty sample (no boxes) stores nothing
                    missing &= field["size"] > 0
                if missing.any():
                    i = int(np.argmax(missing))
                    raise bad(f"truncated: sample {i}'s data (byte {int(wanted[i]):,}) is not in the "
                              f"allocation table")
