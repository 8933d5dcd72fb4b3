"""Converting a COCO instances or person-keypoints JSON file and its image folder
(``pureffcv convert IMAGES_DIR OUT.beton --coco ANNOTATIONS.json``) into a .beton with fields
``image``, ``boxes``, ``keypoints`` (when a category declares keypoints or annotations carry
them) and ``mask`` (with ``polygon_masks``).

- Images: each ``images`` entry's ``file_name`` under IMAGES_DIR, in the file's order
  (images without annotations are written with no boxes; files the JSON does not name are
  ignored). A file that is missing, unreadable, or of another size than the entry's
  ``width`` x ``height`` is skipped.
- Labels: category ids in ascending order become labels 0..C-1; the map is written to
  ``OUT.categories.json`` (``detection.read_categories`` gives its form).
- Boxes: ``bbox`` [x, y, w, h] in pixels becomes (x, y, x + w, y + h).
- ``iscrowd`` annotations are left out and counted (``keep_crowd`` keeps them).
- Keypoints: one count K for the file (COCO's ``keypoints`` names of the categories; several
  counts are an error); an instance of a category without keypoints gets K unlabelled
  (0, 0, 0) points.
- ``polygon_masks``: a semantic class map per image, 0 = background, label + 1 where an
  instance lies (a later annotation paints over an earlier one). Polygons are filled by the
  pixel-centre rule (a pixel belongs to the object when its centre (x + 0.5, y + 0.5) lies
  inside, even-odd; ``polygon_mask``), rather than PIL's ``ImageDraw.polygon``, which rounds
  vertices to whole pixels and adds the outline (a box from x = 2 to 10 fills 9 columns);
  RLE segmentations (crowd annotations; uncompressed counts or COCO's compressed strings)
  are decoded as pycocotools does. uint8 masks up to 254 categories, uint16 above.

Damage: malformed JSON is an error at its line and column; a top level, categories or image
ids that cannot be read as COCO are one-line errors; a bad image entry or annotation is
skipped with its reason (``detection`` lists what else is checked).
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .detection import (AnnotationError, Categories, DetectionResult, ImageRecord, Instance,
                        Tally, number, options, shown_numbers, write_detection)
from .errors import ConversionError


def convert_coco(annotations: Union[str, Path], images_dir: Union[str, Path],
                 out: Union[str, Path], *, polygon_masks: bool = False,
                 keep_crowd: bool = False, **writing) -> DetectionResult:
    """Convert the COCO file ``annotations`` and the images under ``images_dir`` into
    ``out`` (module doc). ``writing``: ``run.convert``'s write_mode, max_resolution,
    jpeg_quality, compress_probability, workers, strict, force. Raises ``ConversionError``
    (one line; ``AnnotationError`` for malformed JSON)."""
    out, images_dir = Path(out), Path(images_dir)
    checked = options(out, **writing)
    if not images_dir.is_dir():
        raise ConversionError(f"{images_dir}: no such directory (the COCO images)")
    records, categories, skipped, tally = read_coco(annotations, images_dir, keep_crowd,
                                                    polygon_masks)
    return write_detection(out, records, categories, skipped, tally,
                           painter=paint_mask if polygon_masks else None, **checked)


def load_json(path: Path):
    """The parsed JSON of ``path``; malformed JSON is an ``AnnotationError`` at json's line
    and column."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, exc.lineno, exc.colno, f"malformed JSON: {exc.msg}") \
            from None
    except RecursionError:
        raise ConversionError(f"{path}: JSON nested too deeply") from None


def kind(value) -> str:
    """A JSON value's kind, in JSON's words."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def read_coco(annotations: Union[str, Path], images_dir: Path, keep_crowd: bool = False,
              masks: bool = False) -> Tuple[List[ImageRecord], Categories,
                                            List[Tuple[str, str]], Tally]:
    """(image records in the file's order, the category map, skipped (path, reason) pairs,
    the tally) of a COCO file, every annotation checked that can be without its image."""
    path = Path(annotations)
    data = load_json(path)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: a COCO file is an object with 'images', 'annotations' "
                              f"and 'categories'; got {kind(data)}")
    for key in ("images", "categories", "annotations"):
        if key == "annotations" and key not in data:
            continue  # an image-info file (COCO's test sets): images without boxes
        if not isinstance(data.get(key), list):
            got = "nothing" if key not in data else kind(data[key])
            raise ConversionError(f"{path}: '{key}' must be an array; got {got}")
    categories, label_of, declares = _categories(path, data["categories"])
    skipped: List[Tuple[str, str]] = []
    records, left_out = _images(path, data["images"], images_dir, skipped)
    tally = Tally()
    reader = _Annotations(path, records, left_out, label_of, declares, categories, keep_crowd,
                          masks, tally, skipped)
    for i, entry in enumerate(data.get("annotations", [])):
        reader.read(i, entry)
    return list(records.values()), categories, skipped, tally


def _categories(path: Path, entries: list) -> Tuple[Categories, Dict[int, int], Dict[int, str]]:
    """(the category map, category id -> label, category id -> name of those that declare
    keypoints); a category that cannot be read is an error: every label depends on all."""
    if not entries:
        raise ConversionError(f"{path}: 'categories' is empty; boxes need at least one")
    found: Dict[int, dict] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: categories[{i}]"
        if not isinstance(entry, dict):
            raise ConversionError(f"{where} is {kind(entry)}; expected an object with 'id' and "
                                  f"'name'")
        cid, name = entry.get("id"), entry.get("name")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise ConversionError(f"{where}: 'id' must be an integer; got {cid!r}")
        if not isinstance(name, str):
            raise ConversionError(f"{where}: 'name' must be a string; got {name!r}")
        if cid in found:
            raise ConversionError(f"{where}: id {cid} appears twice")
        keypoints = entry.get("keypoints")
        if keypoints is not None and (not isinstance(keypoints, list) or
                                      not all(isinstance(k, str) for k in keypoints)):
            raise ConversionError(f"{where}: 'keypoints' must be an array of names")
        found[cid] = entry
    declares = {cid: e["name"] for cid, e in found.items() if e.get("keypoints")}
    counts = sorted({len(found[cid]["keypoints"]) for cid in declares})
    if len(counts) > 1:
        raise ConversionError(f"{path}: categories declare {' and '.join(map(str, counts))} "
                              f"keypoints; a .beton's keypoints field has one count")
    label_of = {cid: label for label, cid in enumerate(sorted(found))}
    labels = [{"label": label_of[cid], "category_id": cid, "name": found[cid]["name"]}
              for cid in sorted(found)]
    for row in labels:
        if "supercategory" in found[row["category_id"]]:
            row["supercategory"] = found[row["category_id"]]["supercategory"]
    categories = Categories(labels, source="coco")
    if declares:
        first = found[min(declares)]
        categories.num_keypoints = counts[0]
        categories.keypoints = list(first["keypoints"])
        categories.skeleton = first.get("skeleton")
    return categories, label_of, declares


def _images(path: Path, entries: list, images_dir: Path, skipped: list
            ) -> Tuple[Dict[int, ImageRecord], set]:
    """(image id -> record, ids of entries skipped: their annotations go with them)."""
    records: Dict[int, ImageRecord] = {}
    left_out, seen = set(), set()
    for i, entry in enumerate(entries):
        where = f"images[{i}]"
        image_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(image_id, int) and not isinstance(image_id, bool):
            if image_id in seen:
                raise ConversionError(f"{path}: {where}: image id {image_id} appears twice")
            seen.add(image_id)
        problem = _image_problem(entry)
        if problem is not None:
            skipped.append((str(path), f"{where}: {problem}"))
            if isinstance(image_id, int):
                left_out.add(image_id)
            continue
        file = images_dir / entry["file_name"]
        named_by = f"image id {image_id} of {path.name}"
        if not file.is_file():
            skipped.append((str(file), f"no such file (named by {named_by})"))
            left_out.add(image_id)
            continue
        declared = (entry["height"], entry["width"]) if "height" in entry else None
        records[image_id] = ImageRecord(str(file), declared=declared, named_by=named_by)
    return records, left_out


def _image_problem(entry) -> Optional[str]:
    if not isinstance(entry, dict):
        return f"{kind(entry)}; expected an object with 'id' and 'file_name'"
    if not isinstance(entry.get("id"), int) or isinstance(entry.get("id"), bool):
        return f"'id' must be an integer; got {entry.get('id')!r}"
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        return f"'file_name' must be a file name; got {entry.get('file_name')!r}"
    if ("width" in entry) != ("height" in entry):
        return "give both 'width' and 'height', or neither"
    for key in ("width", "height"):
        value = entry.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"'{key}' must be a positive integer; got {value!r}"
    return None


class _Annotations:
    """Reads annotations into their images' records, skipping (and listing) bad ones."""

    def __init__(self, path, records, left_out, label_of, declares, categories, keep_crowd,
                 masks, tally, skipped):
        self.path, self.records, self.left_out = path, records, left_out
        self.label_of, self.declares, self.categories = label_of, declares, categories
        self.keep_crowd, self.masks, self.tally, self.skipped = keep_crowd, masks, tally, skipped
        self.ids = ", ".join(map(str, sorted(label_of)[:10])) + (", ..." if len(label_of) > 10
                                                                else "")

    def read(self, i: int, entry) -> None:
        name = f"annotations[{i}]"
        if isinstance(entry, dict) and "id" in entry:
            name += f" (id {entry['id']})"
        if not isinstance(entry, dict):
            return self.skip(name, f"{kind(entry)}; expected an object")
        image_id = entry.get("image_id")
        if image_id in self.left_out:
            return  # its image is listed as skipped
        record = self.records.get(image_id) if isinstance(image_id, int) else None
        if record is None:
            return self.skip(name, f"image_id {image_id!r} is not among the images")
        name += f" of {Path(record.path).name}"
        cid = entry.get("category_id")
        label = self.label_of.get(cid) if isinstance(cid, int) and not isinstance(cid, bool) \
            else None
        if label is None:
            return self.skip(name, f"category_id {cid!r} is not among the categories "
                                   f"({self.ids})")
        if entry.get("iscrowd") and not self.keep_crowd:
            self.tally.crowd += 1
            return None
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(number, bbox)):
            return self.skip(name, f"'bbox' must be 4 numbers [x, y, width, height]; got "
                                   f"{json.dumps(bbox)}")
        points, problem = self.keypoints(entry.get("keypoints"), cid)
        if problem is None and self.masks:
            shape, problem = segmentation(entry.get("segmentation"), record.declared)
        else:
            shape = None
        if problem is not None:
            return self.skip(name, problem)
        x, y, w, h = (float(v) for v in bbox)
        record.instances.append(Instance((str(self.path), name + ": "),
                                         f"bbox {shown_numbers(bbox)}", label,
                                         (x, y, x + w, y + h), points, shape))
        return None

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append((str(self.path), f"{name}: {reason}"))

    def keypoints(self, values, cid) -> Tuple[Optional[np.ndarray], Optional[str]]:
        """(K x 3 keypoints or None when the annotation has none, None) or (None, why they
        cannot be used). The first annotation with keypoints sets K when no category
        declares them."""
        if values is None or values == []:
            return None, None
        if not isinstance(values, list) or not all(map(number, values)) or len(values) % 3:
            return None, "'keypoints' must be numbers x, y, visibility per keypoint"
        k = self.categories.num_keypoints
        if k is None:
            k = self.categories.num_keypoints = len(values) // 3
        if len(values) != 3 * k:
            owner = f"category {self.declares[cid]!r} declares" if cid in self.declares \
                else "the file's keypoints have"
            return None, f"{len(values) // 3} keypoints; {owner} {k}"
        points = np.array(values, np.float64).reshape(k, 3)
        if not np.isfinite(points).all():
            return None, "a keypoint is not a finite number"
        wrong = np.flatnonzero(~np.isin(points[:, 2], (0, 1, 2)))
        if len(wrong):
            return None, (f"keypoint {wrong[0]} has visibility {points[wrong[0], 2]:g}; "
                          f"COCO's are 0 (not labelled), 1 (not visible), 2 (visible)")
        return points, None


# -- segmentations -----------------------------------------------------------------------------

def segmentation(value, declared: Optional[Tuple[int, int]]) -> Tuple[object, Optional[str]]:
    """(a paintable shape, None) or (None, why not) of an annotation's ``segmentation``:
    ("polygons", [(V, 2) arrays]) or ("rle", run lengths, (height, width))."""
    if isinstance(value, list):
        if not value or not all(isinstance(p, list) for p in value):
            return None, "'segmentation' must be polygons (arrays of x, y numbers) or RLE"
        polygons = []
        for p in value:
            if len(p) < 6 or len(p) % 2 or not all(map(number, p)):
                return None, (f"a polygon must be 3 or more x, y pairs of numbers; got "
                              f"{len(p)} values")
            polygon = np.array(p, np.float64).reshape(-1, 2)
            if not np.isfinite(polygon).all():
                return None, "a polygon has a value that is not a finite number"
            polygons.append(polygon)
        return ("polygons", polygons), None
    if isinstance(value, dict) and "counts" in value:
        return _rle(value, declared)
    if value is None:
        return None, "no 'segmentation' (--polygon-masks draws every annotation's)"
    return None, f"'segmentation' must be polygons or RLE; got {json.dumps(value)[:40]}"


def _rle(value: dict, declared: Optional[Tuple[int, int]]) -> Tuple[object, Optional[str]]:
    size, counts = value.get("size"), value["counts"]
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        return None, f"RLE 'size' must be [height, width]; got {json.dumps(size)}"
    if declared is None:
        return None, "RLE needs the image's 'width' and 'height' in its images entry"
    if tuple(size) != declared:
        return None, (f"RLE of {size[1]}x{size[0]} pixels; its image is "
                      f"{declared[1]}x{declared[0]}")
    if isinstance(counts, str):
        try:
            runs = rle_from_string(counts)
        except (IndexError, ValueError):
            return None, "RLE 'counts' is not a COCO compressed string"
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool)
                                          for c in counts):
        runs = np.array(counts, np.int64)
    else:
        return None, "RLE 'counts' must be integers or a compressed string"
    if (runs < 0).any() or runs.sum() != size[0] * size[1]:
        return None, (f"RLE counts add up to {int(runs.sum())} pixels (or one is negative); "
                      f"the image has {size[0] * size[1]}")
    return ("rle", runs, tuple(size)), None


def rle_from_string(text: str) -> np.ndarray:
    """Run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``: 5 bits
    per character from '0', a continuation bit, a sign bit on the last, each count from the
    third on stored as the difference to the one two before)."""
    counts: List[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return np.array(counts, np.int64)


def polygon_mask(polygons: List[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool (height, width): the pixels whose centre (x + 0.5, y + 0.5) lies inside any of
    ``polygons`` ((V, 2) x, y vertices in pixels), each filled by the even-odd rule. A centre
    exactly on a left or top edge is inside, on a right or bottom edge outside (the grid's
    half-open pixels)."""
    inside = np.zeros((height, width), bool)
    for polygon in polygons:
        x0, y0 = polygon[:, 0], polygon[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        rows = np.arange(max(0, int(np.floor(y0.min()))), min(height, int(np.ceil(y0.max()))))
        if not len(rows):
            continue
        centre = rows[:, None] + 0.5
        crosses = (y0 <= centre) != (y1 <= centre)  # half-open: a vertex counts once
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = x0 + (centre - y0) * (x1 - x0) / (y1 - y0)
        xs = np.sort(np.where(crosses, xs, np.inf), axis=1)  # pairs, then (inf, inf)
        first = np.clip(np.ceil(xs[:, 0::2] - 0.5), 0, width)
        last = np.clip(np.ceil(xs[:, 1::2] - 0.5), 0, width)
        first = np.nan_to_num(first, posinf=width).astype(np.int64)
        last = np.nan_to_num(last, posinf=width).astype(np.int64)
        edges = np.zeros((len(rows), width + 1), np.int64)
        row = np.broadcast_to(np.arange(len(rows))[:, None], first.shape)
        np.add.at(edges, (row, first), 1)
        np.add.at(edges, (row, last), -1)
        inside[rows] |= np.cumsum(edges, axis=1)[:, :width] > 0
    return inside


def rle_mask(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (height, width) of COCO run lengths: alternating background and object runs,
    background first, down the columns (column-major)."""
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T


def paint_mask(shapes: list, height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """The class map of an image's (label, shape) pairs: 0 background, label + 1 inside an
    instance, later instances over earlier ones."""
    ids = np.zeros((height, width), dtype)
    for label, shape in shapes:
        if shape is None:
            continue
        inside = polygon_mask(shape[1], height, width) if shape[0] == "polygons" \
            else rle_mask(shape[1], height, width)
        ids[inside] = label + 1
    return ids
