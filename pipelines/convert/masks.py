"""Reading one segmentation mask file as FFCV stores it (a 2-D class map), checking image/mask
pairs in worker processes (a pair that fails here is left out of the conversion, and listed),
and shrinking a mask with its image."""
from functools import partial
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .errors import one_line
from .images import read_rgb, run_checks

#: PIL modes holding one value per pixel: 8-bit (L, P: the palette's indices, not its
#: colours; 1: bilevel) and 16-bit (I;16 and its byte orders; I, as older Pillows open 16-bit
#: PNGs)
SINGLE_CHANNEL = frozenset({"L", "P", "1", "I;16", "I;16L", "I;16B", "I"})
UINT16_MAX = 65535


def read_mask(path: Union[str, Path]) -> np.ndarray:
    """A mask file's class ids, a 2-D array: uint8 for modes L, P (the palette's indices) and 1,
    uint16 for I;16 and I (a PNG holds at most 16 bits). Raises ValueError for another mode
    (an RGB or RGBA mask: colours, not ids), whatever PIL raises for a bad file."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in SINGLE_CHANNEL:
            raise ValueError(f"mode {image.mode} is not a single-channel class map (save masks "
                             f"as L, P or I;16 PNGs)")
        ids = np.asarray(image)
    return ids.astype(np.uint8 if ids.dtype.itemsize == 1 else np.uint16)  # bool; I;16B; I


def mask_dtype(largest_id: int, num_classes: Optional[int], ignore_index: int) -> np.dtype:
    """uint8 when every id (the largest found, the largest class, the ignore index that warps
    fill uncovered pixels with) fits in it, else uint16."""
    largest = max(largest_id, ignore_index, (num_classes or 0) - 1)
    return np.dtype(np.uint8 if largest <= 255 else np.uint16)


def stored_size(height: int, width: int, max_resolution: Optional[int]) -> Tuple[int, int]:
    """The (height, width) FFCV's RGBImageField stores an image of this size at: the longer
    side shrunk to ``max_resolution``, both scaled by one ratio and truncated, as
    ``ffcv.fields.rgb_image.resizer`` computes it; never enlarged."""
    if max_resolution is None:
        return height, width
    original = np.array([width, height])
    ratio = max_resolution / original.max()
    if ratio >= 1:
        return height, width
    new_width, new_height = (ratio * original).astype(int)
    return int(new_height), int(new_width)


def resize_nearest(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """``ids`` at (height, width), each pixel the source pixel under its centre (PIL's
    NEAREST): class ids are never blended."""
    rows = ((np.arange(height) + 0.5) * (ids.shape[0] / height)).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * (ids.shape[1] / width)).astype(np.int64)
    return ids[rows[:, None], cols]


def check_pair(pair: Tuple[str, str], num_classes: Optional[int], ignore_index: int
               ) -> Tuple[int, int, Optional[str], Optional[str]]:
    """(bytes of the image's RGB pixels, the mask's largest id, None, None) if the image
    decodes and its mask is a class map of its size whose ids are below ``num_classes`` (or
    are ``ignore_index``); else (0, 0, the file at fault, a one-line reason)."""
    image_path, mask_path = pair
    try:
        image = read_rgb(image_path)
    except Exception as exc:  # any decode failure means: skip this pair
        return 0, 0, image_path, one_line(exc)
    try:
        ids = read_mask(mask_path)
    except Exception as exc:
        return 0, 0, mask_path, one_line(exc)
    if ids.shape != image.shape[:2]:
        return 0, 0, mask_path, (f"{ids.shape[1]}x{ids.shape[0]} pixels; its image "
                                 f"{image_path} has {image.shape[1]}x{image.shape[0]}")
    if num_classes is not None:
        wrong = np.unique(ids[(ids >= num_classes) & (ids != ignore_index)])
        if len(wrong):
            shown = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
            return 0, 0, mask_path, (f"class ids {shown} not below --num-classes {num_classes} "
                                     f"(nor the ignore index {ignore_index})")
    return image.nbytes, int(ids.max()), None, None


def usable_pairs(pairs: List[Tuple[str, str]], workers: int, num_classes: Optional[int],
                 ignore_index: int):
    """(pairs, skipped (path, reason) pairs, largest image's bytes, largest class id): every
    pair checked once (``check_pair``) on ``workers`` processes and the unusable ones left
    out."""
    check = partial(check_pair, num_classes=num_classes, ignore_index=ignore_index)
    checked = run_checks(check, pairs, max(1, min(workers, len(pairs))),
                         "checking images and masks", "pair")
    skipped = [(path, reason) for _, _, path, reason in checked if reason]
    keep = [pair for pair, (_, _, _, reason) in zip(pairs, checked) if reason is None]
    largest = max((nbytes for nbytes, _, _, _ in checked), default=0)
    return keep, skipped, largest, max((top for _, top, _, _ in checked), default=0)
