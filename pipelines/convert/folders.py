"""Scanning an ImageFolder tree (``SRC/<class>/<image>``) into paths and labels.

Scans follow symbolic links but never into a directory already visited (no symlink loops),
and each real file is stored once however many links lead to it.
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import ConversionError, source_labels
from .images import IMAGE_EXTENSIONS


def class_folders(root: Path) -> List[str]:
    """The class sub-folders' names of ``root``, sorted (hidden ones ignored)."""
    return sorted(entry.name for entry in os.scandir(root)
                  if entry.is_dir() and not entry.name.startswith("."))


def scan_image_folder(root: Path, classes: Optional[Dict[str, int]] = None
                      ) -> Tuple[List[str], List[int], Dict[str, int]]:
    """ImageFolder layout: sorted class sub-folders -> labels 0..C-1, or the labels of
    ``classes`` (another split's class map, which every sub-folder must be in); image files
    found recursively (sorted, by extension, hidden files ignored) in each. Returns (paths,
    labels, class map)."""
    names = class_folders(root)
    if not names:
        raise ConversionError(f"{root}: no class sub-folders (expected SRC/<class>/<image>)")
    classes = source_labels(names, classes, str(root))
    paths, labels = [], []
    seen = set(), set()  # (device, inode): each real directory and file once
    for name in names:
        for path in files_under(root / name, seen):
            if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
                labels.append(classes[name])
    if not paths:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ConversionError(f"{root}: no image files in its class sub-folders ({extensions})")
    return paths, labels, classes


def files_under(top: Path, seen: Tuple[set, set]) -> List[str]:
    """The visible files under ``top``, recursively, in torchvision's ImageFolder order
    (folders sorted, then files sorted in each), skipping the directories and files of
    ``seen`` (their (device, inode)s: directories, files), which it adds to."""
    seen_dirs, seen_files = seen
    walk = []
    for folder, dirs, files in os.walk(top, followlinks=True):
        if _first_visit(folder, seen_dirs):
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and _unvisited(os.path.join(folder, d), seen_dirs)]
        else:  # reached again through a link: already scanned
            dirs[:], files = [], []
        walk.append((folder, [f for f in files if _first_visit(os.path.join(folder, f),
                                                               seen_files)]))
    return [os.path.join(folder, file) for folder, files in sorted(walk)
            for file in sorted(files) if not file.startswith(".")]


def _identity(path: str):
    try:
        info = os.stat(path)
    except OSError:  # a broken link: kept, and then reported as unreadable
        return None
    return info.st_dev, info.st_ino


def _first_visit(path: str, seen: set) -> bool:
    """Whether ``path``'s real file or directory is new to ``seen`` (and remember it)."""
    key = _identity(path)
    if key is None:
        return True
    if key in seen:
        return False
    seen.add(key)
    return True


def _unvisited(path: str, seen: set) -> bool:
    key = _identity(path)
    return key is None or key not in seen
