"""Splits given as image folders whose .beton does not exist yet: converted once before
training (on global rank 0 only; the other ranks wait for the file), or read through the
image-folder fallback, which runs in one process only.

Every folder of one run is labelled with one class map: the map of a .beton that already
exists beside the run (the train split's, say), else the union of the folders' class names
(``pipelines.class_maps``), so train and val agree however many classes each folder has.
"""
import os
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

from . import class_maps
from .convert import convert
from .convert.folders import class_folders
from .convert.segmentation import is_segmentation_folder
from .data_checks import DataError
from .fallback import use_fallback

#: (split, .beton or None, image folder or None) of each source a run reads
Source = Tuple[str, Optional[str], Optional[str]]


def launcher_rank() -> int:
    """This process's global rank as the launcher set it (torchrun's RANK, SLURM_PROCID,
    Lightning's LOCAL_RANK for its own children), 0 when none is set."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def shared_class_map(sources: Sequence[Source]) -> Optional[class_maps.ClassMap]:
    """The one class map of a run's folder splits: an existing .beton's (they must all agree,
    ``class_maps.check_agree``), which must name every folder's classes, else the union of the
    folders' class names; None when no source is a folder. ClassMapError otherwise."""
    folders = [folder for _, path, folder in sources if use_fallback(path, folder)
               and not is_segmentation_folder(Path(folder))]  # masks hold ids, not names
    if not folders:
        return None
    existing = [(split, path) for split, path, _ in sources
                if path is not None and Path(path).is_file()]
    class_maps.check_agree(existing)
    names = {folder: class_folders(Path(folder)) for folder in folders}
    mapping = next((m for m in map(class_maps.beside, (p for _, p in existing)) if m), None)
    if mapping is None:
        return class_maps.union(*names.values())
    for folder, found in names.items():
        class_maps.labels_for(found, mapping, folder)
    return mapping


def convert_missing(sources: Sequence[Source], rank: Optional[int] = None,
                    timeout_s: float = 24 * 3600) -> None:
    """Convert each image folder whose .beton is missing into that .beton, all with
    ``shared_class_map``. Only global rank 0 (``rank``; default ``launcher_rank()``) converts;
    the others wait until the file appears (``convert`` renames a finished file into place, so
    its existence means done). Skipped images are reported on the console as by ``pureffcv
    convert``."""
    rank = launcher_rank() if rank is None else rank
    classes = shared_class_map(sources) if rank == 0 else None
    for split, path, folder in sources:
        if path is None or not use_fallback(path, folder):
            continue
        if rank == 0:
            print(f"{split}: converting {folder} -> {path}", flush=True)
            segmentation = is_segmentation_folder(Path(folder))
            result = convert(folder, path, classes=None if segmentation else classes)
            if result.skipped:
                print(f"{split}: {len(result.skipped)} unreadable image(s) skipped, listed in "
                      f"{result.skipped_path}", flush=True)
            continue
        deadline = time.monotonic() + timeout_s
        while not Path(path).is_file():
            if time.monotonic() > deadline:
                raise DataError(f"{path}: rank {rank} waited {timeout_s:.0f} s for rank 0 "
                                f"to convert {folder}")
            time.sleep(1.0)
