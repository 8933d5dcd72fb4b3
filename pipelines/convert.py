"""Convert an ImageFolder tree or a ``.npz`` of arrays into an FFCV ``.beton``.

The ``.beton`` has two fields, ``image`` (``RGBImageField``) and ``label`` (``IntField``; for
a multi-label CSV source, an ``NDArrayField`` of multi-hot uint8 vectors), in that order. Beside ``OUT.beton`` go ``OUT.classes.json`` (class name -> label) and, when some
images could not be read, ``OUT.skipped.txt`` (one ``path: reason`` line each).

Why the checks come first: FFCV's ``DatasetWriter`` encodes samples in worker processes and
its parent waits for a sample count that a crashed worker never reports, so one corrupt file
hangs the conversion. Every image is therefore fully decoded once before writing, and
unreadable ones are left out and listed. The ``.beton`` is written to a hidden
``.OUT.beton.<pid>.partial`` file in the same directory and renamed at the end, so an
interrupted or failed conversion never leaves a half-written file under the final name.

Crash safety (a conversion killed with SIGKILL runs no cleanup of its own): every worker
process asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``) and exits at
once if the parent is already gone; the name of FFCV's shared-memory segment is noted beside
the ``.partial`` (``.partial.shm``); and each run first removes the ``.partial`` files, notes
and segments of conversions to the same output whose process is dead. Folder scans follow
symbolic links but never into a directory already visited (no symlink loops), and each real
file is stored once however many links lead to it.
"""
import ctypes
import json
import multiprocessing
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from operations.errors import PureffcvError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm",
                              ".tif", ".tiff", ".gif"})
WRITE_MODES = ("smart", "raw", "jpg", "proportion")
# 'smart' stores an image raw while its pixels take at most this many bytes (up to 128x128
# RGB: CIFAR-like images stay lossless and cost no decode) and as JPEG above it (ImageNet-like
# images: ~10x smaller files). FFCV's own 'smart' has no threshold by default and then
# stores everything raw.
SMART_THRESHOLD = 128 * 128 * 3
MAX_SIDE = 65535  # FFCV stores width and height as uint16


class ConversionError(PureffcvError):
    """A mistake in the input or options; ``str()`` is one line for the user."""


@dataclass
class ConversionResult:
    """What ``convert`` wrote: the output, the class mapping, and the skipped images."""
    output: Path
    written: int
    classes: Dict[str, int]
    classes_path: Path
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_path: Optional[Path] = None


def sidecar(out: Path, suffix: str) -> Path:
    """``OUT.beton`` -> ``OUT<suffix>`` (``.classes.json``, ``.skipped.txt``)."""
    stem = out.name[:-len(".beton")] if out.name.endswith(".beton") else out.name
    return out.with_name(stem + suffix)


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
        return 0, f"{type(exc).__name__}: {exc}".splitlines()[0]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _ignore_sigint(parent: Optional[int] = None) -> None:
    """In worker processes: leave Ctrl-C to the parent, which stops them and cleans up, and
    die with the parent (``parent``: its pid) even when it is killed and cleans up nothing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _die_with_parent(parent: Optional[int]) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup still runs
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class _Samples:
    """What FFCV's writer workers index: sample ``i`` -> (RGB uint8 HWC array, label)."""

    def __init__(self, labels: Sequence[int]):
        # class indices, or multi-hot uint8 vectors (a CSV source: multi-label)
        self.labels = [label if isinstance(label, np.ndarray) else int(label) for label in labels]
        self.failed = multiprocessing.Value("b", 0)  # set by a worker that could not decode
        self._parent = os.getpid()
        self._quiet = False

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        if not self._quiet and os.getpid() != self._parent:
            _ignore_sigint(self._parent)
            self._quiet = True
        np.random.seed(i)  # FFCV's 'proportion' mode draws np.random: same choice every run
        return self.image(i), self.labels[i]

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError


class _FileSamples(_Samples):
    def __init__(self, paths: Sequence[str], labels: Sequence[int]):
        super().__init__(labels)
        self.paths = list(paths)

    def image(self, i: int) -> np.ndarray:
        try:
            return read_rgb(self.paths[i])
        except Exception:  # a worker must not die (FFCV would hang): flag it, write a stub
            self.failed.value = 1
            return np.zeros((1, 1, 3), np.uint8)


class _ArraySamples(_Samples):
    def __init__(self, images: np.ndarray, labels: Sequence[int]):
        super().__init__(labels)
        self.images = images

    def image(self, i: int) -> np.ndarray:
        return self.images[i]


def scan_image_folder(root: Path) -> Tuple[List[str], List[int], Dict[str, int]]:
    """ImageFolder layout: sorted class sub-folders -> labels 0..C-1; image files found
    recursively (sorted, by extension, hidden files ignored) in each."""
    classes = sorted(entry.name for entry in os.scandir(root)
                     if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ConversionError(f"{root}: no class sub-folders (expected SRC/<class>/<image>)")
    paths, labels = [], []
    seen_dirs, seen_files = set(), set()  # (device, inode): each real directory and file once
    for label, name in enumerate(classes):
        walk = []
        for folder, dirs, files in os.walk(root / name, followlinks=True):
            if _first_visit(folder, seen_dirs):
                dirs[:] = [d for d in dirs if not d.startswith(".")
                           and _unvisited(os.path.join(folder, d), seen_dirs)]
            else:  # reached again through a link: already scanned
                dirs[:], files = [], []
            walk.append((folder, [f for f in files if _first_visit(os.path.join(folder, f),
                                                                   seen_files)]))
        for folder, files in sorted(walk):  # torchvision's ImageFolder order
            for file in sorted(files):
                if not file.startswith(".") and Path(file).suffix.lower() in IMAGE_EXTENSIONS:
                    paths.append(os.path.join(folder, file))
                    labels.append(label)
    if not paths:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ConversionError(f"{root}: no image files in its class sub-folders ({extensions})")
    return paths, labels, {name: label for label, name in enumerate(classes)}


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


def load_arrays(path: Path) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """A ``.npz`` with ``images`` (N,H,W,3 uint8), ``labels`` (N integers) and optionally
    ``classes`` (names, label i = classes[i]); without ``classes`` each label names itself."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # not a zip, a damaged zip, pickled objects...
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ConversionError(f"{path}: not a readable .npz ({reason})") from None
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


def _check_all(paths: List[str], workers: int) -> List[Tuple[int, Optional[str]]]:
    """``check_image`` over every path, on ``workers`` processes, with a progress bar."""
    from tqdm import tqdm

    bar = dict(total=len(paths), desc="checking images", unit="img")
    if workers == 1:
        return [check_image(path) for path in tqdm(paths, **bar)]
    chunk = max(1, min(64, len(paths) // (4 * workers)))
    with multiprocessing.Pool(workers, initializer=_ignore_sigint, initargs=(os.getpid(),)) as pool:
        return list(tqdm(pool.imap(check_image, paths, chunksize=chunk), **bar))


def _read_source(src: Path, workers: int):
    """(samples to write, class mapping, skipped (path, reason) pairs, largest image bytes)."""
    if src.is_dir():
        paths, labels, classes = scan_image_folder(src)
        checked = _check_all(paths, min(workers, len(paths)))
        skipped = [(path, reason) for path, (_, reason) in zip(paths, checked) if reason]
        keep = [i for i, (_, reason) in enumerate(checked) if reason is None]
        samples = _FileSamples([paths[i] for i in keep], [labels[i] for i in keep])
        return samples, classes, skipped, max(nbytes for nbytes, _ in checked)
    if src.is_file() and src.suffix.lower() == ".csv":
        paths, labels, classes = load_label_csv(src)
        checked = _check_all(paths, min(workers, len(paths)))
        skipped = [(path, reason) for path, (_, reason) in zip(paths, checked) if reason]
        keep = [i for i, (_, reason) in enumerate(checked) if reason is None]
        samples = _FileSamples([paths[i] for i in keep], [labels[i] for i in keep])
        return samples, classes, skipped, max(nbytes for nbytes, _ in checked)
    if src.is_file():
        images, labels, classes = load_arrays(src)
        return _ArraySamples(images, labels), classes, [], images[0].nbytes
    raise ConversionError(f"{src}: no such file or directory")


def load_label_csv(path: Path) -> Tuple[List[str], List[np.ndarray], Dict[str, int]]:
    """A multi-label CSV: rows ``path,labels`` (an optional header ``path,labels``), the
    image path relative to the CSV's folder (or absolute), the labels class names separated by
    spaces or ``;`` (none: no class). Classes sorted by name get indices 0..C-1; each sample's
    target is a multi-hot uint8 vector of C entries."""
    import csv

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
    classes = {name: i for i, name in enumerate(sorted({n for _, names in entries
                                                        for n in names}))}
    if not classes:
        raise ConversionError(f"{path}: no labels in any row")
    targets = []
    for _, names in entries:
        target = np.zeros(len(classes), np.uint8)
        target[[classes[n] for n in names]] = 1
        targets.append(target)
    return [file for file, _ in entries], targets, classes


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


def page_size_for(largest_image: int) -> int:
    """FFCV's default page (8 MiB), doubled until twice the largest image's raw pixels fit:
    a sample larger than a page kills the writer's worker, and FFCV then waits forever. Twice,
    because a JPEG of a small noisy image at high quality can outgrow its raw pixels."""
    from ffcv.writer import MIN_PAGE_SIZE

    size = 4 * MIN_PAGE_SIZE
    while size < 2 * largest_image:
        size *= 2
    return size


def write_beton(out: Path, samples: _Samples, *, write_mode: str, max_resolution: Optional[int],
                jpeg_quality: int, workers: int, page_size: int,
                compress_probability: float = 0.5) -> None:
    """Write ``samples`` to ``out`` through a temporary file that is renamed only on success;
    on any failure or interruption the temporary file and the writer's workers are removed."""
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import DatasetWriter

    vector = bool(samples.labels) and isinstance(samples.labels[0], np.ndarray)
    fields = {"image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution,
                                     smart_threshold=SMART_THRESHOLD, jpeg_quality=jpeg_quality,
                                     compress_probability=compress_probability),
              "label": NDArrayField(np.dtype("uint8"), samples.labels[0].shape) if vector
              else IntField()}
    remove_stale_partials(out)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    note = partial.with_name(partial.name + ".shm")

    class NotingWriter(DatasetWriter):
        def prepare(self):  # FFCV creates its shared-memory segment here: note its name
            super().prepare()
            note.write_text(self.metadata_sm.name)

    before = set(multiprocessing.active_children())
    writer = NotingWriter(str(partial), fields, page_size=page_size, num_workers=workers)
    try:
        chunk = max(1, min(100, len(samples) // (4 * workers)))  # >= 4 chunks per worker
        writer.from_indexed_dataset(samples, chunksize=chunk)
        if samples.failed.value:
            raise ConversionError("an image became unreadable while writing (was SRC modified "
                                  "during the conversion?); nothing written")
        os.replace(partial, out)
        note.unlink(missing_ok=True)
    except BaseException:
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
            process.join()
        _release_shared_memory(writer)
        partial.unlink(missing_ok=True)
        note.unlink(missing_ok=True)
        raise


_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial(?:\.shm)?$")


def remove_stale_partials(out: Path) -> List[Path]:
    """Remove what conversions to ``out`` that were killed left behind: their ``.partial``
    files, shared-memory notes and segments, when the process that wrote them is dead (a live
    one, another conversion running, is left alone). Returns the files removed."""
    removed = []
    for path in sorted(out.parent.glob(f".{out.name}.*.partial*")):
        match = _PARTIAL.match(path.name)
        if not match or match["name"] != out.name or _alive(int(match["pid"])):
            continue
        if path.name.endswith(".shm"):
            _unlink_segment(path)
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a zombie is dead for this purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def _unlink_segment(note: Path) -> None:
    """Unlink the shared-memory segment named in ``note`` (nothing if it is gone)."""
    try:
        name = note.read_text().strip()
    except OSError:
        return
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return  # not a name FFCV wrote: touch nothing
    try:
        from multiprocessing import shared_memory

        segment = shared_memory.SharedMemory(name=name)
    except (FileNotFoundError, ValueError, OSError):
        return
    segment.close()
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


def _release_shared_memory(writer) -> None:
    """FFCV's writer unlinks its metadata segment only on success; do it on failure too."""
    memory = getattr(writer, "metadata_sm", None)
    if memory is None or isinstance(memory, int):  # prepare() sets an int placeholder first
        return
    memory.close()
    try:
        memory.unlink()
    except FileNotFoundError:  # already unlinked: the failure came after FFCV finished
        pass


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def convert(src: Union[str, Path], out: Union[str, Path], *, write_mode: str = "smart",
            max_resolution: Optional[int] = None, jpeg_quality: int = 90,
            compress_probability: float = 0.5, workers: Optional[int] = None, strict: bool = False,
            force: bool = False) -> ConversionResult:
    """Convert ``src`` (an ImageFolder directory or a ``.npz``) into the ``.beton`` ``out``.

    - ``write_mode``: 'smart' (default: raw up to 128x128 pixels, JPEG above, see
      ``SMART_THRESHOLD``), 'raw' (lossless, pixel-exact), 'jpg' (all JPEG), 'proportion'
      (a ``compress_probability`` share of the images JPEG, the others raw, chosen per image
      index, so the same images every run).
    - ``max_resolution``: shrink images whose longer side exceeds it (OpenCV INTER_AREA,
      FFCV's resizer); default None keeps every image's size.
    - ``jpeg_quality``: 1-100, default 90 (used by 'smart', 'jpg', 'proportion').
    - ``compress_probability``: in [0, 1], default 0.5: the share of images 'proportion'
      stores as JPEG (ffcv-imagenet: 0.5 with ``max_resolution`` 256-512;
      docs/performance.md measures size against images/s).
    - ``workers``: processes for checking and writing; default all CPUs available.
    - ``strict``: any unreadable image is an error and nothing is written.
    - ``force``: overwrite an existing ``out``; otherwise that is an error.

    Raises ``ConversionError`` (one-line message) for user mistakes.
    """
    src, out = Path(src), Path(out)
    workers = default_workers() if workers is None else workers
    _validate_options(write_mode, max_resolution, jpeg_quality, compress_probability, workers)
    if out.is_dir():
        raise ConversionError(f"{out} is a directory; give the output file, e.g. {out}/data.beton")
    if out.exists() and not force:
        raise ConversionError(f"{out} already exists (use --force to overwrite)")
    samples, classes, skipped, largest = _read_source(src, workers)
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
    classes_path = sidecar(out, ".classes.json")
    classes_path.write_text(json.dumps(classes, indent=1) + "\n")
    return ConversionResult(out, len(samples), classes, classes_path, skipped,
                            skipped_path if skipped else None)
