"""Converting an Ultralytics YOLO folder (``pureffcv convert SRC OUT.beton --yolo``) into a
.beton with fields ``image``, ``boxes`` and, for pose data, ``keypoints``.

- Layout: images under ``SRC/images`` (sub-folders mirrored, ImageFolder order), the labels
  of ``SRC/images/a/b.jpg`` in ``SRC/labels/a/b.txt``. An image without a label file has no
  boxes (Ultralytics' rule: a background image); a label file without an image is skipped.
- A label line is ``class cx cy w h``, the centre and size normalised to [0, 1] of the
  image's width and height; blank lines are ignored. With ``kpt_shape: [K, D]`` in
  ``data.yaml`` (pose data) each line carries K keypoints of D values after the box: x y
  (D = 2; a point at (0, 0) is not labelled, the others visible) or x y visibility (D = 3;
  0, 1, 2 as COCO's).
- Class names: ``SRC/data.yaml``'s ``names`` (a list, or a map 0..C-1 -> name), else
  ``SRC/classes.txt`` (one name per line), else "0".."C-1" for the largest class found. The
  map goes to ``OUT.categories.json`` (label = category_id = the YOLO class; ``flip_idx``
  from data.yaml when given).

Damage: a line with the wrong number of fields, a value that is not a number, a class that is
not an integer or out of range, and the box checks of ``detection`` skip the line, listed as
``labels/x.txt:LINE``; a data.yaml or classes.txt that cannot be read is an error (YAML's at
its line and column), and so is a label file that is not UTF-8 text.
"""
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .detection import (AnnotationError, Categories, DetectionResult, ImageRecord, Instance,
                        Tally, options, write_detection)
from .errors import ConversionError
from .folders import files_under
from .images import IMAGE_EXTENSIONS


def convert_yolo(src: Union[str, Path], out: Union[str, Path], **writing) -> DetectionResult:
    """Convert the YOLO folder ``src`` into ``out`` (module doc). ``writing``:
    ``run.convert``'s write_mode, max_resolution, jpeg_quality, compress_probability,
    workers, strict, force. Raises ``ConversionError`` (one line)."""
    out = Path(out)
    checked = options(out, **writing)
    records, categories, skipped, tally = read_yolo(src)
    return write_detection(out, records, categories, skipped, tally, **checked)


def read_yolo(src: Union[str, Path]) -> Tuple[List[ImageRecord], Categories,
                                              List[Tuple[str, str]], Tally]:
    """(image records, the category map, skipped (path, reason) pairs, the tally) of a YOLO
    folder, every line checked that can be without its image."""
    src = Path(src)
    images_dir, labels_dir = src / "images", src / "labels"
    for folder, what in ((images_dir, "the images"), (labels_dir, "the label .txt files")):
        if not folder.is_dir():
            raise ConversionError(f"{folder}: no such directory ({what} of a YOLO folder: "
                                  f"SRC/images/<path>.jpg beside SRC/labels/<path>.txt)")
    settings, yaml_path = dataset_yaml(src)
    names = class_names(src, settings, yaml_path)
    kpt_shape = _kpt_shape(settings, yaml_path)
    images = [p for p in files_under(images_dir, (set(), set()))
              if Path(p).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ConversionError(f"{images_dir}: no image files ({extensions})")
    skipped: List[Tuple[str, str]] = []
    labelled = set()
    records = []
    for image in images:
        label_file = labels_dir / Path(os.path.relpath(image, images_dir)).with_suffix(".txt")
        record = ImageRecord(image, normalised=True)
        if label_file.is_file():
            labelled.add(str(label_file))
            record.instances = _read_labels(label_file, kpt_shape, skipped)
        records.append(record)
    skipped += [(path, "no image for this label file (SRC/images/<same path>.<jpg|png|...>)")
                for path in files_under(labels_dir, (set(), set()))
                if path.endswith(".txt") and path not in labelled]
    if names is None:  # no names given: the classes found, numbered
        top = max((i.label for r in records for i in r.instances), default=0)
        names = [str(k) for k in range(top + 1)]
    _drop_unknown_classes(records, names, skipped)
    categories = Categories([{"label": k, "category_id": k, "name": name}
                             for k, name in enumerate(names)], source="yolo")
    if kpt_shape is not None:
        categories.num_keypoints = kpt_shape[0]
        flip = settings.get("flip_idx")
        if flip is not None:
            if not (isinstance(flip, list) and sorted(flip) == list(range(kpt_shape[0]))):
                raise ConversionError(f"{yaml_path}: 'flip_idx' must list each of the "
                                      f"{kpt_shape[0]} keypoints once; got {flip!r}")
            categories.flip_idx = flip
    return records, categories, skipped, Tally()


def dataset_yaml(src: Path) -> Tuple[dict, Optional[Path]]:
    """(``SRC/data.yaml`` (or ``data.yml``) parsed, its path), ({}, None) when there is none;
    YAML that cannot be read is an ``AnnotationError`` at its line and column."""
    import yaml

    for name in ("data.yaml", "data.yml"):
        path = src / name
        if path.is_file():
            break
    else:
        return {}, None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise AnnotationError(path, mark.line + 1, mark.column + 1,
                              f"malformed YAML: {exc.problem or exc.context}") from None
    if data is None:
        return {}, path
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: a YOLO data.yaml is a mapping (names: ..., nc: ...); "
                              f"got {type(data).__name__}")
    return data, path


def class_names(src: Path, settings: dict, path: Optional[Path]) -> Optional[List[str]]:
    """The class names by class id: data.yaml's (at ``path``) ``names`` (checked against
    ``nc``), else ``SRC/classes.txt``'s lines, else None."""
    names = settings.get("names")
    if names is not None:
        if isinstance(names, dict):
            if sorted(names) != list(range(len(names))):
                raise ConversionError(f"{path}: 'names' must map the class ids 0..C-1 to names; "
                                      f"got ids {sorted(names, key=str)[:10]}")
            names = [names[k] for k in range(len(names))]
        if not isinstance(names, list) or not names:
            raise ConversionError(f"{path}: 'names' must be a list of class names (or a map "
                                  f"0..C-1 -> name)")
        names = [str(name) for name in names]
        nc = settings.get("nc")
        if nc is not None and nc != len(names):
            raise ConversionError(f"{path}: 'nc' is {nc} but 'names' lists {len(names)} classes")
        return names
    if "nc" in settings:
        nc = settings["nc"]
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            raise ConversionError(f"{path}: 'nc' must be a positive integer; got {nc!r}")
        return [str(k) for k in range(nc)]
    classes = src / "classes.txt"
    if not classes.is_file():
        return None
    lines = _text(classes).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise AnnotationError(classes, number, None, "an empty class name (one name per "
                                                        "line, class 0 first)")
    if not lines:
        raise ConversionError(f"{classes}: no class names")
    return [line.strip() for line in lines]


def _kpt_shape(settings: dict, path: Optional[Path]) -> Optional[Tuple[int, int]]:
    shape = settings.get("kpt_shape")
    if shape is None:
        return None
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
            and shape[0] >= 1 and shape[1] in (2, 3)):
        raise ConversionError(f"{path}: 'kpt_shape' must be [K, 2] or [K, 3] "
                              f"(K keypoints of x, y[, visibility]); got {shape!r}")
    return shape[0], shape[1]


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_labels(path: Path, kpt_shape: Optional[Tuple[int, int]],
                 skipped: List[Tuple[str, str]]) -> List[Instance]:
    """The instances of one label file; lines that cannot be read are skipped."""
    k, d = kpt_shape or (0, 0)
    expected = 5 + k * d
    layout = "class cx cy w h" + (f" then {k} keypoints of {d} values (kpt_shape)" if k else "")
    instances = []
    for number, line in enumerate(_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != expected:
            skipped.append((where, f"{len(fields)} fields; a YOLO line has {expected}: {layout}"))
            continue
        try:
            label = int(fields[0])
        except ValueError:
            skipped.append((where, f"class {fields[0]!r} is not an integer"))
            continue
        bad = next((f for f in fields[1:] if not _is_number(f)), None)
        if bad is not None:
            skipped.append((where, f"{bad!r} is not a number"))
            continue
        cx, cy, w, h = (float(f) for f in fields[1:5])
        points = None
        if k:
            values = np.array([float(f) for f in fields[5:]], np.float64).reshape(k, d)
            problem, points = _points(values)
            if problem is not None:
                skipped.append((where, problem))
                continue
        instances.append(Instance((where, ""), f"box {' '.join(fields[1:5])}", label,
                                  (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), points))
    return instances


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _points(values: np.ndarray) -> Tuple[Optional[str], Optional[np.ndarray]]:
    """(None, (K, 3) keypoints) from a line's (K, D) values, or (why not, None)."""
    if not np.isfinite(values).all():
        return "a keypoint is not a finite number", None
    if values.shape[1] == 2:
        labelled = (values != 0).any(axis=1)
        return None, np.column_stack([values, np.where(labelled, 2.0, 0.0)])
    wrong = np.flatnonzero(~np.isin(values[:, 2], (0, 1, 2)))
    if len(wrong):
        return (f"keypoint {wrong[0]} has visibility {values[wrong[0], 2]:g}; use 0 (not "
                f"labelled), 1 (not visible) or 2 (visible)"), None
    return None, values


def _drop_unknown_classes(records: List[ImageRecord], names: List[str],
                          skipped: List[Tuple[str, str]]) -> None:
    for record in records:
        keep = []
        for instance in record.instances:
            if 0 <= instance.label < len(names):
                keep.append(instance)
            else:
                skipped.append((instance.where[0], f"class {instance.label} is out of range: "
                                                   f"{len(names)} classes (0..{len(names) - 1})"))
        record.instances = keep

