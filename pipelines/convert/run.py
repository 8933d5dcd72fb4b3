"""``convert``: a source (an ImageFolder tree, a multi-label CSV, a ``.npz`` or a
segmentation folder) checked, then written to ``OUT.beton`` with its class map (none for
segmentation masks) and the list of skipped files beside it.

Why the checks come first: FFCV's ``DatasetWriter`` hangs on a sample its worker cannot
encode, so every image (and mask) is fully decoded once before writing and unusable ones are
left out and listed.
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
from .masks import UINT16_MAX, mask_dtype, usable_pairs
from .segmentation import is_segmentation_folder, scan_segmentation_folder
from .writer import ArraySamples, FileSamples, MaskSamples, page_size_for, write_beton

WRITE_MODES = ("smart", "raw", "jpg", "proportion")


@dataclass
class ConversionResult:
    """What ``convert`` wrote: the output, the class mapping (None for a segmentation folder:
    masks hold class ids, not names), and the skipped files."""
    output: Path
    written: int
    classes: Optional[Dict[str, int]]
    classes_path: Optional[Path]
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_path: Optional[Path] = None


def _read_source(src: Path, workers: int, classes: Optional[ClassMap],
                 num_classes: Optional[int], ignore_index: Optional[int],
                 max_resolution: Optional[int]):
    """(samples to write, class mapping (None: masks), skipped (path, reason) pairs, largest
    image bytes)."""
    if src.is_dir() and is_segmentation_folder(src):
        return _read_segmentation(src, workers, classes, num_classes, ignore_index,
                                  max_resolution)
    if num_classes is not None or ignore_index is not None:
        raise ConversionError(f"{src}: --num-classes and --ignore-index apply to segmentation "
                              f"folders (SRC/images beside SRC/masks)")
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


def _read_segmentation(src: Path, workers: int, classes: Optional[ClassMap],
                       num_classes: Optional[int], ignore_index: Optional[int],
                       max_resolution: Optional[int]):
    """``_read_source`` of a segmentation folder: its pairs checked, the masks' dtype the
    smallest that holds every id (``masks.mask_dtype``)."""
    if classes is not None:
        raise ConversionError(f"{src}: masks hold class ids, not names; --classes applies to "
                              f"image folders and CSVs")
    ignore_index = 255 if ignore_index is None else ignore_index
    pairs, skipped = scan_segmentation_folder(src)
    pairs, unusable, largest, top = usable_pairs(pairs, workers, num_classes, ignore_index)
    samples = MaskSamples(pairs, mask_dtype(top, num_classes, ignore_index), max_resolution)
    return samples, None, skipped + unusable, largest


def _validate_options(write_mode: str, max_resolution: Optional[int], jpeg_quality: int,
                      compress_probability: float, workers: int, num_classes: Optional[int],
                      ignore_index: Optional[int]) -> None:
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
    if num_classes is not None and not 1 <= num_classes <= UINT16_MAX + 1:
        raise ConversionError(f"num classes must lie in [1, {UINT16_MAX + 1}]; got {num_classes}")
    if ignore_index is not None and not 0 <= ignore_index <= UINT16_MAX:
        raise ConversionError(f"ignore index must lie in [0, {UINT16_MAX}]; got {ignore_index}")


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def convert(src: Union[str, Path], out: Union[str, Path], *, write_mode: str = "smart",
            max_resolution: Optional[int] = None, jpeg_quality: int = 90,
            compress_probability: float = 0.5, workers: Optional[int] = None, strict: bool = False,
            force: bool = False, classes: Optional[ClassMap] = None,
            num_classes: Optional[int] = None, ignore_index: Optional[int] = None
            ) -> ConversionResult:
    """Convert ``src`` (an ImageFolder directory, a multi-label CSV, a ``.npz``, or a
    segmentation folder: ``src/images`` beside ``src/masks``, see ``segmentation``) into the
    ``.beton`` ``out``: fields ``image`` and ``label``, or ``image`` and ``mask``.

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
    - ``num_classes``: segmentation only: mask ids must lie below it (or be ``ignore_index``);
      a mask with others is skipped. Default None: not checked.
    - ``ignore_index``: segmentation only: the id of unlabelled pixels, default 255. Masks
      are stored as uint8 when every id, ``num_classes - 1`` and this fit, else as uint16;
      images resized by ``max_resolution`` have their masks resized to the same size by
      nearest neighbour. Masks are PNGs of mode L, P (the palette's indices), I;16 or I.

    Raises ``ConversionError`` (one-line message) for user mistakes.
    """
    src, out = Path(src), Path(out)
    workers = default_workers() if workers is None else workers
    _validate_options(write_mode, max_resolution, jpeg_quality, compress_probability, workers,
                      num_classes, ignore_index)
    if out.is_dir():
        raise ConversionError(f"{out} is a directory; give the output file, e.g. {out}/data.beton")
    if out.exists() and not force:
        raise ConversionError(f"{out} already exists (use --force to overwrite)")
    samples, classes, skipped, largest = _read_source(src, workers, classes, num_classes,
                                                      ignore_index, max_resolution)
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped_path = sidecar(out, ".skipped.txt")
    if skipped:
        skipped_path.write_text("".join(f"{path}: {reason}\n" for path, reason in skipped))
    else:
        skipped_path.unlink(missing_ok=True)  # a report from an earlier run would mislead
    masks = classes is None
    if strict and skipped:
        files = "skipped image or mask file(s)" if masks else "unreadable image(s)"
        raise ConversionError(f"{len(skipped)} {files}, listed in {skipped_path}; "
                              f"nothing written (--strict)")
    if not len(samples):
        found = f"no image with a usable mask; {len(skipped)} files skipped" if masks \
            else f"none of its {len(skipped)} images could be read"
        raise ConversionError(f"{src}: {found} (listed in {skipped_path})")
    write_beton(out, samples, write_mode=write_mode, max_resolution=max_resolution,
                jpeg_quality=jpeg_quality, workers=min(workers, len(samples)),
                page_size=page_size_for(largest), compress_probability=compress_probability)
    if masks:
        sidecar(out, ".classes.json").unlink(missing_ok=True)  # an earlier run's would mislead
    classes_path = None if masks else write_class_map(out, classes)
    return ConversionResult(out, len(samples), classes, classes_path, skipped,
                            skipped_path if skipped else None)
