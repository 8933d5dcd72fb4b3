"""What the COCO (``coco``) and YOLO (``yolo``) conversions share: the annotations of one
image as read from either format, their checks against the decoded image, the category map
written beside the .beton (``OUT.categories.json``), and the writing of fields ``image``,
``boxes`` (``operations.cpu.instances_field.BoxesField``), ``keypoints`` (``KeypointsField``,
when the source has keypoints) and ``mask`` (``MaskField``, COCO ``--polygon-masks``).

Never silent: an annotation that cannot be used is skipped and listed with its reason in
``OUT.skipped.txt`` (``--strict``: an error, nothing written); a file that cannot be read as
its format is a one-line error (``AnnotationError`` where a line and column are known). Boxes
partly outside their image are clipped to it and counted (``Tally.clipped``); labelled
keypoints outside it become not labelled (0, 0, 0) and are counted (``Tally.hidden_keypoints``).

Coordinates are pixels, top-left origin, continuous (pixel (x, y) covers [x, x+1)), so COCO's
``[x, y, w, h]`` is the box (x, y, x + w, y + h). ``--max-resolution`` shrinks an image as
FFCV's ``RGBImageField`` does (``masks.stored_size``): boxes and keypoints are scaled by the
same per-axis factors (stored width / width, stored height / height), masks resized by nearest
neighbour.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..class_maps import sidecar
from .errors import ConversionError, one_line
from .images import read_rgb, run_checks
from .masks import resize_nearest, stored_size
from .run import ConversionResult, _validate_options, default_workers
from .writer import Samples, page_size_for, write_beton

#: the most instances one image may hold (``instances_field.MAX_INSTANCES``)
MAX_INSTANCES = 65535


class AnnotationError(ConversionError):
    """An annotation file that cannot be read as its format, at a known place: ``str()`` is
    ``FILE:LINE:COL: message`` (``FILE:LINE: message`` without a column)."""

    located = True

    def __init__(self, file: Union[str, Path], line: int, column: Optional[int], message: str):
        self.file, self.line, self.column, self.message = str(file), line, column, message
        where = f"{file}:{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass
class Instance:
    """One object as its annotation gives it, before the image is decoded."""
    #: (the path a skip is listed under, the reason's prefix): ("ann.json", "annotation 7
    #: (a.jpg): ") for COCO, ("labels/a.txt:3", "") for YOLO
    where: Tuple[str, str]
    #: the box as written in the source, for messages ("bbox [1, 2, -3, 4]")
    shown: str
    label: int
    #: x1, y1, x2, y2 in pixels, or in [0, 1] of the image's size when its record is
    #: ``normalised``
    box: Tuple[float, float, float, float]
    #: (K, 3) x, y, visibility in the box's units, or None (not labelled: zeros)
    points: Optional[np.ndarray] = None
    #: what the mask painter draws for it (a COCO segmentation), or None
    shape: object = None


@dataclass
class ImageRecord:
    """One image and its annotated objects."""
    path: str
    instances: List[Instance] = field(default_factory=list)
    #: (height, width) the annotations say the image has (COCO), checked against the file
    declared: Optional[Tuple[int, int]] = None
    #: coordinates in [0, 1] of the image's width and height (YOLO)
    normalised: bool = False
    #: who names the image, for the reason of a skip ("image id 3 of ann.json")
    named_by: str = ""


@dataclass
class Detection:
    """One image ready to write: its annotations checked against its decoded size, in
    pixels of the original image."""
    path: str
    height: int
    width: int
    boxes: np.ndarray  # float64 (n, 4) x1, y1, x2, y2
    labels: np.ndarray  # int64 (n,)
    points: Optional[np.ndarray]  # float64 (n, K, 3), or None: no keypoints field
    shapes: list  # (label, shape) of the instances, for the mask painter


@dataclass
class Tally:
    """What the conversion changed without skipping, counted for the summary."""
    boxes: int = 0  # boxes written
    clipped: int = 0  # boxes partly outside their image, clipped to it
    crowd: int = 0  # COCO iscrowd annotations left out (--keep-crowd keeps them)
    hidden_keypoints: int = 0  # labelled keypoints outside their image, made not labelled
    empty_images: int = 0  # images written without any box

    def lines(self) -> List[str]:
        """The summary's lines about annotations."""
        lines = [f"{self.boxes} boxes written ({self.empty_images} images without boxes)"]
        if self.clipped:
            lines.append(f"{self.clipped} boxes partly outside their image clipped to it")
        if self.crowd:
            lines.append(f"{self.crowd} crowd annotations left out (--keep-crowd keeps them)")
        if self.hidden_keypoints:
            lines.append(f"{self.hidden_keypoints} labelled keypoints outside their image "
                         f"marked not labelled")
        return lines


@dataclass
class Categories:
    """The label map written beside the .beton: ``labels`` (dicts of label, category_id,
    name, in label order), and for keypoints their ``keypoints`` names, COCO's
    ``skeleton`` (1-based pairs, as COCO writes it) and YOLO's ``flip_idx``."""
    labels: List[dict]
    num_keypoints: Optional[int] = None
    keypoints: Optional[List[str]] = None
    skeleton: Optional[list] = None
    flip_idx: Optional[List[int]] = None
    source: str = ""

    def as_json(self, mask: bool) -> dict:
        data = {"source": self.source, "labels": self.labels}
        if self.num_keypoints is not None:
            data["num_keypoints"] = self.num_keypoints
        for key in ("keypoints", "skeleton", "flip_idx"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if mask:
            data["mask"] = {"background": 0, "offset": 1}
        return data


@dataclass
class DetectionResult(ConversionResult):
    """``ConversionResult`` of a detection conversion: ``classes`` is None, the label map is
    in ``categories_path`` (``OUT.categories.json``), ``tally`` counts what was clipped,
    hidden or left out without being a skip."""
    categories: Optional[Categories] = None
    categories_path: Optional[Path] = None
    tally: Tally = field(default_factory=Tally)


def categories_path(beton: Union[str, Path]) -> Path:
    """Where a detection conversion writes ``beton``'s label map."""
    return sidecar(beton, ".categories.json")


def read_categories(beton: Union[str, Path]) -> dict:
    """The label map beside ``beton`` (or at the ``.categories.json`` path given): ``{"labels":
    [{"label": 0, "category_id": 1, "name": "person"}, ...], "num_keypoints": K, "keypoints":
    [names], "skeleton": [[a, b], ...], "flip_idx": [...], "mask": {"background": 0,
    "offset": 1}}`` (keys after ``labels`` only when they apply)."""
    path = Path(beton)
    path = categories_path(path) if path.suffix == ".beton" else path
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read the categories ({exc.strerror or exc})") \
            from None
    except ValueError:
        raise ConversionError(f"{path}: not a categories file (JSON)") from None


def number(value) -> bool:
    """Whether a parsed JSON/YAML value is a number (bools are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shown_numbers(values) -> str:
    """``[1, 2.5, nan]``: numbers as a user wrote them (integral floats without .0)."""
    def one(v):
        return str(int(v)) if number(v) and math.isfinite(v) and float(v).is_integer() \
            else str(v)
    return "[" + ", ".join(one(v) for v in values) + "]"


# -- checking annotations against the decoded image --------------------------------------------

def image_size(path: str) -> Tuple[int, int, int, Optional[str]]:
    """(bytes of its RGB pixels, height, width, None) if ``path`` decodes, else (0, 0, 0, a
    one-line reason)."""
    try:
        rgb = read_rgb(path)
    except Exception as exc:  # any decode failure means: skip this image
        return 0, 0, 0, one_line(exc)
    return rgb.nbytes, rgb.shape[0], rgb.shape[1], None


def place(record: ImageRecord, height: int, width: int, num_keypoints: Optional[int],
          tally: Tally) -> Tuple[Detection, List[Tuple[str, str]]]:
    """``record``'s instances checked against its decoded size: boxes in pixels, clipped to
    the image (counted); skipped (path, reason) pairs for boxes that are not finite, of
    negative or zero size, or entirely outside the image. Labelled keypoints outside the image
    become (0, 0, 0) (counted)."""
    scale = np.array([width, height, width, height], np.float64) if record.normalised else 1.0
    boxes, labels, points, shapes, skipped = [], [], [], [], []
    for instance in record.instances:
        box = np.asarray(instance.box, np.float64) * scale
        reason = _box_problem(box, instance.shown, height, width)
        if reason is not None:
            path, prefix = instance.where
            skipped.append((path, prefix + reason))
            continue
        clipped = np.clip(box, 0, [width, height, width, height])
        tally.clipped += bool((clipped != box).any())
        boxes.append(clipped)
        labels.append(instance.label)
        shapes.append((instance.label, instance.shape))
        if num_keypoints is not None:
            points.append(_placed_points(instance.points, num_keypoints, record.normalised,
                                         height, width, tally))
    n = len(boxes)
    if n > MAX_INSTANCES:
        return None, [(record.path, f"{n} boxes; a sample holds at most {MAX_INSTANCES}")]
    tally.boxes += n
    tally.empty_images += n == 0
    detection = Detection(record.path, height, width, np.array(boxes, np.float64).reshape(n, 4),
                          np.array(labels, np.int64).reshape(n), None, shapes)
    if num_keypoints is not None:
        detection.points = np.array(points, np.float64).reshape(n, num_keypoints, 3)
    return detection, skipped


def _box_problem(box: np.ndarray, shown: str, height: int, width: int) -> Optional[str]:
    """Why ``box`` (x1, y1, x2, y2 in pixels) cannot be used, or None."""
    if not np.isfinite(box).all():
        return f"{shown} has a value that is not a finite number"
    for axis, name in ((0, "width"), (1, "height")):
        size = box[axis + 2] - box[axis]
        if size < 0:
            return f"{shown} has a negative {name} ({size:g})"
        if size == 0:
            return f"{shown} is empty (zero {name})"
    if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
        return f"{shown} lies entirely outside the {width}x{height} image"
    return None


def _placed_points(points: Optional[np.ndarray], k: int, normalised: bool, height: int,
                   width: int, tally: Tally) -> np.ndarray:
    """(K, 3) keypoints in pixels; zeros for an instance without them; labelled points
    outside [0, width] x [0, height] made (0, 0, 0)."""
    if points is None:
        return np.zeros((k, 3))
    points = np.array(points, np.float64)
    if normalised:
        points[:, :2] *= [width, height]
    outside = (points[:, 2] > 0) & ((points[:, 0] < 0) | (points[:, 0] > width) |
                                    (points[:, 1] < 0) | (points[:, 1] > height))
    tally.hidden_keypoints += int(outside.sum())
    points[outside] = 0
    return points


# -- writing -----------------------------------------------------------------------------------

#: ``painter(shapes, height, width, dtype)``: the class map of an image's (label, shape) pairs
Painter = Callable[[list, int, int, np.dtype], np.ndarray]


class DetectionSamples(Samples):
    """What FFCV's writer workers index: sample ``i`` -> (image, ``BoxesSample``[,
    ``KeypointsSample``][, mask]), annotations scaled to the size FFCV stores the image at
    under ``max_resolution``. Never raises (FFCV's writer would hang): an image that no longer
    decodes as checked flags ``failed`` and writes a stub."""

    def __init__(self, detections: List[Detection], num_keypoints: Optional[int],
                 max_resolution: Optional[int], painter: Optional[Painter] = None,
                 mask_dtype: np.dtype = np.dtype(np.uint8)):
        super().__init__(detections)
        self.num_keypoints, self.max_resolution = num_keypoints, max_resolution
        self.painter, self.mask_dtype = painter, mask_dtype

    def __getitem__(self, i: int):
        from operations.cpu.instances_field import BoxesSample, KeypointsSample

        np.random.seed(i)  # FFCV's 'proportion' mode draws np.random: same choice every run
        detection = self.targets[i]
        image = self.image(i)
        if image.shape[:2] != (detection.height, detection.width):
            self.failed.value = 1  # modified since it was checked: the conversion fails
            image = np.zeros((detection.height, detection.width, 3), np.uint8)
        height, width = stored_size(detection.height, detection.width, self.max_resolution)
        factors = np.array([width / detection.width, height / detection.height])
        bound = np.array([width, height], np.float64)
        boxes = np.minimum(detection.boxes * np.tile(factors, 2), np.tile(bound, 2))
        row = (image, BoxesSample(boxes.astype(np.float32), detection.labels, height, width))
        if self.num_keypoints is not None:
            points = detection.points.copy()
            points[..., :2] = np.minimum(points[..., :2] * factors, bound)
            row += (KeypointsSample(points.astype(np.float32), height, width),)
        if self.painter is not None:
            row += (self._mask(detection, height, width),)
        return row

    def image(self, i: int) -> np.ndarray:
        try:
            return read_rgb(self.targets[i].path)
        except Exception:  # a worker must not die (FFCV would hang): flag it, write a stub
            self.failed.value = 1
            return np.zeros((1, 1, 3), np.uint8)

    def _mask(self, detection: Detection, height: int, width: int) -> np.ndarray:
        try:
            ids = self.painter(detection.shapes, detection.height, detection.width,
                               self.mask_dtype)
        except Exception:  # as ``image``: flag it, write a stub
            self.failed.value = 1
            return np.zeros((height, width), self.mask_dtype)
        return resize_nearest(ids, height, width)

    def fields(self) -> dict:
        from operations.cpu.instances_field import BoxesField, KeypointsField
        from operations.cpu.mask_field import MaskField

        fields = {"boxes": BoxesField()}
        if self.num_keypoints is not None:
            fields["keypoints"] = KeypointsField(self.num_keypoints)
        if self.painter is not None:
            fields["mask"] = MaskField()
        return fields


def check_output(out: Path, force: bool) -> None:
    """``run.convert``'s refusals of an output path."""
    if out.is_dir():
        raise ConversionError(f"{out} is a directory; give the output file, e.g. {out}/data.beton")
    if out.exists() and not force:
        raise ConversionError(f"{out} already exists (use --force to overwrite)")


def options(out: Path, *, write_mode: str = "smart", max_resolution: Optional[int] = None,
            jpeg_quality: int = 90, compress_probability: float = 0.5,
            workers: Optional[int] = None, strict: bool = False, force: bool = False) -> dict:
    """The writing options checked (as ``run.convert`` checks them), ``workers`` resolved."""
    workers = default_workers() if workers is None else workers
    _validate_options(write_mode, max_resolution, jpeg_quality, compress_probability, workers,
                      None, None)
    check_output(out, force)
    return dict(write_mode=write_mode, max_resolution=max_resolution, jpeg_quality=jpeg_quality,
                compress_probability=compress_probability, workers=workers, strict=strict)


def write_detection(out: Path, records: List[ImageRecord], categories: Categories,
                    skipped: List[Tuple[str, str]], tally: Tally, *, write_mode: str,
                    max_resolution: Optional[int], jpeg_quality: int,
                    compress_probability: float, workers: int, strict: bool,
                    painter: Optional[Painter] = None) -> DetectionResult:
    """Decode every image once (on ``workers`` processes), skip the unreadable ones and those
    whose size differs from the one their annotations declare, check the annotations against
    the sizes (``place``), then write the .beton (through ``writer.write_beton``), the
    skipped list and ``OUT.categories.json``. ``strict``: any skip is an error and nothing is
    written."""
    sizes = run_checks(image_size, [r.path for r in records],
                       max(1, min(workers, len(records))), "checking images", "img")
    detections, largest = [], 0
    num_keypoints = categories.num_keypoints
    for record, (nbytes, height, width, reason) in zip(records, sizes):
        if reason is None and record.declared not in (None, (height, width)):
            reason = (f"{width}x{height} pixels; {record.named_by} says "
                      f"{record.declared[1]}x{record.declared[0]}")
        if reason is not None:
            skipped.append((record.path, reason))
            continue
        detection, problems = place(record, height, width, num_keypoints, tally)
        skipped += problems
        if detection is not None:
            detections.append(detection)
            n = len(detection.boxes)
            largest = max(largest, nbytes + 2 * nbytes // 3 * (painter is not None) + 20 * n +
                          12 * n * (num_keypoints or 0))
    skipped_path = sidecar(out, ".skipped.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    if skipped:
        skipped_path.write_text("".join(f"{path}: {reason}\n" for path, reason in skipped))
    else:
        skipped_path.unlink(missing_ok=True)  # a report from an earlier run would mislead
    if strict and skipped:
        raise ConversionError(f"{len(skipped)} skipped image(s) or annotation(s), listed in "
                              f"{skipped_path}; nothing written (--strict)")
    if not detections:
        raise ConversionError(f"no image could be read ({len(skipped)} skipped, listed in "
                              f"{skipped_path})")
    mask = painter is not None
    mask_dtype = np.dtype(np.uint8 if len(categories.labels) < 255 else np.uint16)
    samples = DetectionSamples(detections, num_keypoints, max_resolution, painter, mask_dtype)
    write_beton(out, samples, write_mode=write_mode, max_resolution=max_resolution,
                jpeg_quality=jpeg_quality, workers=min(workers, len(samples)),
                page_size=page_size_for(largest), compress_probability=compress_probability)
    sidecar(out, ".classes.json").unlink(missing_ok=True)  # an earlier run's would mislead
    path = categories_path(out)
    path.write_text(json.dumps(categories.as_json(mask), indent=1) + "\n")
    return DetectionResult(out, len(detections), None, None, skipped,
                           skipped_path if skipped else None, categories, path, tally)
