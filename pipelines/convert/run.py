"""``convert``: a source (an ImageFolder tree, a multi-label CSV or a ``.npz``) checked,
then written to ``OUT.beton`` with its class map and the list of skipped images beside it.

Why the checks come first: FFCV's ``DatasetWriter`` hangs on a sample its worker cannot
encode, so every image is fully decoded once before writing and unreadable ones are left out
and listed.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..class_maps import ClassMap, sidecar, write_class_map
from .arrays import load_arrays
from .errors import ConversionError
from .folders import scan_image_folder
from .images import readable
from .label_csv import load_label_csv
from .writer import ArraySamples, FileSamples, page_size_for, write_beton

WRITE_MODES = ("smart", "raw", "jpg", "proportion")


@dataclass
class ConversionResult:
    """What ``convert`` wrote: the output, the class mapping, and the skipped images."""
    output: Path
    written: int
    classes: Dict[str, int]
    classes_path: Path
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_path: Optional[Path] = None


def _read_source(src: Path, workers: int, classes: Optional[ClassMap]):
    """(samples to write, class mapping, skipped (path, reason) pairs, largest image bytes)."""
    if src.is_dir() or (src.is_file() and src.suffix.lower() == ".csv"):
        paths, labels, classes = scan_image_folder(src, classes) if src.is_dir() \
            else load_label_csv(src, classes)
        paths, labels, skipped, largest = readable(paths, labels, workers)
        return FileSamples(paths, labels), classes, skipped, largest
    if src.is_file():
        if classes is not None:
            raise ConversionError(f"{src}: a .npz carries its own 'classes'; --classes applies "
                                  f"to image folders and CSVs")
        images, labels, classes = load_arrays(src)
        return ArraySamples(images, labels), classes, [], images[0].nbytes
    raise ConversionError(f"{src}: no such file or directory")


def _validate_options(write_mode: str, max_resolution: Optional[int], jpeg_quality: int,
                      compress_probability: float,
                      workers: int) -> None:
    if write_mode not in WRITE_MODES:
        raise ConversionError(f"write mode '{write_mode}' is not one of {', '.join(WRITE_MODES)}")
    if max_resolution is not None and max_resolution < 1:
        raise ConversionError(f"max resolution must be at least 1; got {max_resolution}")
    if not 0.0 <= compress_probability <= 1.0:  # NaN fails too
        raise ConversionError(f"compress probability must lie in [0, 1]; got {compress_probability}")
    if compress_probability != 0.5 and write_mode != "proportion":
        raise ConversionError(f"--compress-probability applies to --write-mode proportion, "
                              f"not '{write_mode}'")
    if not 1 <= jpeg_quality <= 100:
        raise ConversionError(f"JPEG quality must lie in [1, 100]; got {jpeg_quality}")
    if workers < 1:
        raise ConversionError(f"workers must be at least 1; got {workers}")


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def convert(src: Union[str, Path], out: Union[str, Path], *, write_mode: str = "smart",
            max_resolution: Optional[int] = None, jpeg_quality: int = 90,
            compress_probability: float = 0.5, workers: Optional[int] = None, strict: bool = False,
            force: bool = False, classes: Optional[ClassMap] = None) -> ConversionResult:
    """Convert ``src`` (an ImageFolder directory, a multi-label CSV or a ``.npz``) into the
    ``.beton`` ``out``.

    - ``write_mode``: 'smart' (default: raw up to 128x128 pixels, JPEG above, see
      ``writer.SMART_THRESHOLD``), 'raw' (lossless, pixel-exact), 'jpg' (all JPEG),
      'proportion' (a ``compress_probability`` share of the images JPEG, the others raw,
      chosen per image index, so the same images every run).
    - ``max_resolution``: shrink images whose longer side exceeds it (OpenCV INTER_AREA,
      FFCV's resizer); default None keeps every image's size.
    - ``jpeg_quality``: 1-100, default 90 (used by 'smart', 'jpg', 'proportion').
    - ``compress_probability``: in [0, 1], default 0.5: the share of images 'proportion'
      stores as JPEG (ffcv-imagenet: 0.5 with ``max_resolution`` 256-512;
      docs/performance.md measures size against images/s).
    - ``workers``: processes for checking and writing; default all CPUs available.
    - ``strict``: any unreadable image is an error and nothing is written.
    - ``force``: overwrite an existing ``out``; otherwise that is an error.
    - ``classes``: the class map to label with (class name -> label; e.g. the train split's,
      ``class_maps.read_class_map("train.beton")``), which must name every class of ``src``;
      default: ``src``'s own classes, sorted. A val split converted with the train split's
      map has the same labels for the same names, whatever classes it lacks.

    Raises ``ConversionError`` (one-line message) for user mistakes.
    """
    src, out = Path(src), Path(out)
    workers = default_workers() if workers is None else workers
    _validate_options(write_mode, max_resolution, jpeg_quality, compress_probability, workers)
    if out.is_dir():
        raise ConversionError(f"{out} is a directory; give the output file, e.g. {out}/data.beton")
    if out.exists() and not force:
        raise ConversionError(f"{out} already exists (use --force to overwrite)")
    samples, classes, skipped, largest = _read_source(src, workers, classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped_path = sidecar(out, ".skipped.txt")
    if skipped:
        skipped_path.write_text("".join(f"{path}: {reason}\n" for path, reason in skipped))
    else:
        skipped_path.unlink(missing_ok=True)  # a report from an earlier run would mislead
    if strict and skipped:
        raise ConversionError(f"{len(skipped)} unreadable image(s), listed in {skipped_path}; "
                              f"nothing written (--strict)")
    if not len(samples):
        raise ConversionError(f"{src}: none of its {len(skipped)} images could be read "
                              f"(listed in {skipped_path})")
    write_beton(out, samples, write_mode=write_mode, max_resolution=max_resolution,
                jpeg_quality=jpeg_quality, workers=min(workers, len(samples)),
                page_size=page_size_for(largest), compress_probability=compress_probability)
    classes_path = write_class_map(out, classes)
    return ConversionResult(out, len(samples), classes, classes_path, skipped,
                            skipped_path if skipped else None)
