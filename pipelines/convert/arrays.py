"""Reading a ``.npz`` of arrays (``images``, ``labels``, optionally ``classes``) to convert."""
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from .errors import ConversionError, one_line
from .images import MAX_SIDE


def load_arrays(path: Path) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """A ``.npz`` with ``images`` (N,H,W,3 uint8), ``labels`` (N integers) and optionally
    ``classes`` (names, label i = classes[i]); without ``classes`` each label names itself."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # not a zip, a damaged zip, pickled objects...
        raise ConversionError(f"{path}: not a readable .npz ({one_line(exc)})") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise ConversionError(f"{path}: no '{key}' array (found: "
                                  f"{', '.join(sorted(arrays)) or 'nothing'})")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or images.shape[3] != 3 or 0 in images.shape:
        raise ConversionError(f"{path}: 'images' must have shape (N, H, W, 3) with N, H, W > 0; "
                              f"got {images.shape}")
    if images.dtype != np.uint8:
        raise ConversionError(f"{path}: 'images' must be uint8; got {images.dtype}")
    if max(images.shape[1:3]) > MAX_SIDE:
        raise ConversionError(f"{path}: images of {images.shape[2]}x{images.shape[1]} pixels; "
                              f"FFCV stores at most {MAX_SIDE} per side")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ConversionError(f"{path}: 'labels' must be {len(images)} integers, shape "
                              f"({len(images)},); got {labels.dtype} {labels.shape}")
    if "classes" in arrays:
        names = [str(name) for name in arrays["classes"].reshape(-1)]
        if labels.min() < 0 or labels.max() >= len(names):
            raise ConversionError(f"{path}: labels must lie in [0, {len(names) - 1}] to index "
                                  f"'classes'; got [{labels.min()}, {labels.max()}]")
        classes = {name: index for index, name in enumerate(names)}
    else:
        classes = {str(label): int(label) for label in np.unique(labels)}
    return images, labels, classes
