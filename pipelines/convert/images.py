"""Reading one image file as FFCV stores it, and checking a list of them in worker processes
(a file that fails here is left out of the conversion, and listed)."""
import multiprocessing
import os
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from ..worker_processes import init_worker
from .errors import one_line

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm",
                              ".tif", ".tiff", ".gif"})
MAX_SIDE = 65535  # FFCV stores width and height as uint16


def read_rgb(path: Union[str, Path]) -> np.ndarray:
    """Decode an image file completely into an RGB uint8 HWC array.

    Greyscale, palette, CMYK and RGBA images are converted by PIL's ``convert("RGB")``, as
    torchvision's ImageFolder loader does: alpha is dropped, not composited. EXIF orientation
    is not applied (also like torchvision). Raises whatever PIL raises for a bad file.
    """
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    if max(rgb.shape[:2]) > MAX_SIDE:
        raise ValueError(f"{rgb.shape[1]}x{rgb.shape[0]} pixels; FFCV stores at most "
                         f"{MAX_SIDE} per side")
    return rgb


def check_image(path: str) -> Tuple[int, Optional[str]]:
    """(bytes of its RGB pixels, None) if ``path`` decodes, else (0, a one-line reason)."""
    try:
        return read_rgb(path).nbytes, None
    except Exception as exc:  # any decode failure means: skip this file
        return 0, one_line(exc)


def check_all(paths: List[str], workers: int) -> List[Tuple[int, Optional[str]]]:
    """``check_image`` over every path (``run_checks``)."""
    return run_checks(check_image, paths, workers, "checking images", "img")


def run_checks(check: Callable, items: list, workers: int, desc: str, unit: str) -> list:
    """``check`` (picklable: a module function or a ``functools.partial`` of one) over every
    item, on ``workers`` processes, with a progress bar (``desc``, counting ``unit``s). The
    workers start with default signal handlers (``pipelines.worker_processes``): inside a
    Lightning run they would otherwise ignore the pool's SIGTERM and hang its shutdown."""
    from tqdm import tqdm

    bar = dict(total=len(items), desc=desc, unit=unit)
    if workers == 1:
        return [check(item) for item in tqdm(items, **bar)]
    chunk = max(1, min(64, len(items) // (4 * workers)))
    with multiprocessing.Pool(workers, initializer=init_worker, initargs=(os.getpid(),)) as pool:
        return list(tqdm(pool.imap(check, items, chunksize=chunk), **bar))


def readable(paths: List[str], labels: list, workers: int):
    """(paths, labels, skipped (path, reason) pairs, largest image's bytes): every image
    decoded once on ``workers`` processes and the unreadable ones left out."""
    checked = check_all(paths, min(workers, len(paths)))
    skipped = [(path, reason) for path, (_, reason) in zip(paths, checked) if reason]
    keep = [i for i, (_, reason) in enumerate(checked) if reason is None]
    largest = max((nbytes for nbytes, _ in checked), default=0)
    return [paths[i] for i in keep], [labels[i] for i in keep], skipped, largest
