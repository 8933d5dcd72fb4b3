"""Scanning a segmentation folder (``SRC/images/<stem>.<jpg|png|...>`` beside
``SRC/masks/<stem>.png``, sub-folders mirrored under both: VOC, ADE20K and Cityscapes as
prepared for training) into (image, mask) pairs, paired by path and stem. Files that pair
with nothing are listed as skipped, as unreadable images are."""
import os
from pathlib import Path
from typing import Dict, List, Tuple

from .errors import ConversionError
from .folders import files_under
from .images import IMAGE_EXTENSIONS


def is_segmentation_folder(root: Path) -> bool:
    """Whether ``root`` has the layout: ``images/`` and ``masks/`` sub-folders. (A class folder
    tree whose classes include ``images`` and ``masks`` reads as one too.)"""
    return (root / "images").is_dir() and (root / "masks").is_dir()


def scan_segmentation_folder(root: Path) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """(image/mask path pairs in image order, skipped (path, reason) pairs): each image of
    ``root/images`` with the mask of the same relative path and stem in ``root/masks``;
    images without a mask, masks without an image, masks that are not PNGs (lossy formats
    change ids) and the files of a stem that names several images or masks are skipped. Raises ``ConversionError`` when a
    folder holds no images or no PNG masks."""
    images_dir, masks_dir = root / "images", root / "masks"
    images = _by_stem(images_dir)
    if not images:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ConversionError(f"{images_dir}: no image files ({extensions})")
    skipped, masks = [], {}
    for stem, paths in _by_stem(masks_dir).items():
        skipped += [(path, "not a .png mask (masks must be lossless PNGs)")
                    for path in paths if Path(path).suffix.lower() != ".png"]
        masks[stem] = [path for path in paths if Path(path).suffix.lower() == ".png"]
    if not any(masks.values()):
        raise ConversionError(f"{masks_dir}: no .png masks")
    pairs = []
    for stem, paths in images.items():
        found = masks.pop(stem, [])
        if len(paths) > 1 or len(found) > 1:
            both = paths + found
            names = ", ".join(os.path.relpath(path, root) for path in both)
            skipped += [(path, f"the stem {stem} names several files ({names}); keep one "
                               f"image and one mask per stem") for path in both]
        elif found:
            pairs.append((paths[0], found[0]))
        else:
            skipped.append((paths[0], f"no mask {masks_dir / stem}.png"))
    skipped += [(path, f"no image {images_dir / stem}.* for this mask")
                for stem, paths in masks.items() for path in paths]
    return pairs, skipped


def _by_stem(top: Path) -> Dict[str, List[str]]:
    """The image files under ``top`` (``folders.files_under``'s order), grouped by their path
    relative to ``top`` without the extension."""
    groups: Dict[str, List[str]] = {}
    for path in files_under(top, (set(), set())):
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            stem = os.path.splitext(os.path.relpath(path, top))[0]
            groups.setdefault(stem, []).append(path)
    return groups
