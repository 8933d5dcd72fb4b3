"""Reading a multi-label CSV (``path,labels`` rows) to convert into multi-hot targets."""
import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import ConversionError, source_labels


def load_label_csv(path: Path, classes: Optional[Dict[str, int]] = None
                   ) -> Tuple[List[str], List[np.ndarray], Dict[str, int]]:
    """A multi-label CSV: rows ``path,labels`` (an optional header ``path,labels``), the
    image path relative to the CSV's folder (or absolute), the labels class names separated by
    spaces or ``;`` (none: no class). Classes sorted by name get indices 0..C-1 (or those of
    ``classes``, another split's map, which must name them all); each sample's target is a
    multi-hot uint8 vector of C entries."""
    try:
        with open(path, newline="") as file:
            rows = [(number, row) for number, row in enumerate(csv.reader(file), start=1)
                    if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConversionError(f"{path}: cannot read this CSV ({type(exc).__name__}: {exc})"
                              .splitlines()[0]) from None
    if rows and [cell.strip().lower() for cell in rows[0][1][:2]] == ["path", "labels"]:
        rows = rows[1:]
    if not rows:
        raise ConversionError(f"{path}: no rows (expected path,labels lines)")
    entries = []
    for number, row in rows:
        if len(row) != 2 or not row[0].strip():
            raise ConversionError(f"{path}:{number}: expected 'path,labels' (2 columns), got "
                                  f"{len(row)} column(s)")
        names = [name for name in row[1].replace(";", " ").split() if name]
        entries.append((os.path.join(path.parent, row[0].strip()), names))
    found = {n for _, names in entries for n in names}
    if not found:
        raise ConversionError(f"{path}: no labels in any row")
    classes = source_labels(found, classes, str(path))
    targets = []
    for _, names in entries:
        target = np.zeros(len(classes), np.uint8)
        target[[classes[n] for n in names]] = 1
        targets.append(target)
    return [file for file, _ in entries], targets, classes
