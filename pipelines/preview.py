"""A PNG grid of a spec's augmented samples beside their un-augmented originals, so a person
can see what a spec does before training with it.

Each cell shows one sample: the original on the left, the augmented image on the right, and
its label below. A split's targets are drawn over both halves, the original's cut by the same
undistorted decode: its first mask target as a translucent colour per class (``overlay_masks``;
the ignore index left clear, the classes present listed below), each boxes target as
rectangles outlined in their class's colour with the class id or name (``OUT.categories.json``)
at their top-left corner, each keypoints target as dots (filled where visible, rings where
labelled but occluded); on the augmented half only what training keeps (valid rows, labelled
points on the image), on the original every stored box and labelled point the decode keeps
(``draw_overlay``). The augmented image is exactly what training sees: the split's compiled
pipeline (decoder, CPU ops, device ops) run by an FFCV Loader at the chosen epoch, then the
split's batch ops (mixup, cutmix) on the whole batch, then the normalization undone for
display. The original is the same sample decoded with no augmentation at the augmented size:
``center_crop`` of ratio 1.0 (the largest centred square, resized by FFCV's own INTER_AREA
resize; stretched when the augmented images are not square).

A split with views (``image.views``: several crops of each image, each with its own ops) has
one augmented image per view copy: a cell is the original, then every copy in the batch's
order (``global1[0]``, ``global2[0]``, ``local[0]`` ... ``local[5]``), each at its own size
(one zoom for all, so their sizes compare) and with its own normalization undone, each
captioned with its view's name and copy index; the original is decoded at the size of the
largest copy. (Views have no targets and no batch ops: the spec refuses them.)
"""
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from operations.errors import PureffcvError

#: pixels between a cell's original and augmented halves
GAP = 2
#: pixels around and between cells
MARGIN = 6
#: height of the label strip under each cell
LABEL_HEIGHT = 12
#: the automatic zoom enlarges images whose shorter side is below this (nearest neighbour)
MIN_SIDE = 64
BACKGROUND = (40, 40, 40)
TEXT = (230, 230, 230)
#: how much of a class's colour covers a pixel in a mask overlay
OVERLAY_ALPHA = 0.45
#: class k's overlay colour is CLASS_COLOURS[k % 12] (distinct hues, VOC-like)
CLASS_COLOURS = np.array([[128, 128, 128], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                          [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
                          [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]],
                         np.float64)
#: a keypoint's dot: its colour (filled where visible, v = 2; a ring where v = 1), the rim of a
#: filled dot, its radius in displayed pixels
POINT_COLOUR = (255, 255, 255)
POINT_RIM = (0, 0, 0)
POINT_RADIUS = 2


class PreviewError(PureffcvError, ValueError):
    """A problem with the preview's inputs; ``str()`` is one line for the user."""


def preview(spec: Union[str, os.PathLike], beton: Union[str, os.PathLike],
            out: Union[str, os.PathLike], split: str = "train", n: int = 32, epoch: int = 0,
            device: str = "cpu", columns: int = 4, zoom: Optional[int] = None,
            indices: Optional[Sequence[int]] = None, classes: Optional[Sequence[str]] = None,
            seed: int = 0, first: bool = False) -> Path:
    """Write the preview grid of ``n`` samples of ``beton`` to the PNG ``out``.

    - ``spec``: a spec file (or YAML text); ``split``: which of its splits to show.
    - ``n``: samples shown (fewer if the data set is smaller); ``columns``: cells per row.
    - Which samples: by default ``n`` drawn across the classes in turn (stratified; which
      samples of a class is seeded by ``seed``), so that an ImageFolder sorted by class shows
      every class, and mixup/cutmix pairs (first with last, second with second-to-last...)
      are of different classes. ``classes``: only these classes (names from the class map
      ``pureffcv convert`` writes, ``DATA.classes.json``, or label numbers); ``indices``:
      exactly these samples, in this order; ``first``: the first ``n`` in file order.
    - ``epoch``: the epoch whose keyed draws are shown (each epoch draws anew).
    - ``device``: where the device stage runs (cpu, cuda, cuda:N, auto).
    - ``zoom``: integer nearest-neighbour enlargement; None enlarges images whose shorter
      side is below 64 px to at least 64.

    Labels show class names when the .beton has a class map. Raises PreviewError,
    pipelines.beton.BetonError (a missing or unusable .beton), compiler.SpecError,
    ValueError (unknown device) or pipelines.loading.LoaderError (an op failed in FFCV's
    loader thread), all one line. Returns the path written.
    """
    from compiler import compile_spec

    from .beton import open_beton, stored_labels
    from .class_maps import names_by_label

    if n < 1 or columns < 1 or (zoom is not None and zoom < 1):
        raise PreviewError("n, columns and zoom must be at least 1")
    compiled = compile_spec(spec, split=split, device=device)
    if compiled.split.has_label:
        labels = stored_labels(beton, compiled.label_field, compiled.image_field)
    else:  # segmentation: one group of samples
        labels = np.zeros(int(open_beton(beton, (compiled.image_field,)).num_samples), np.int64)
    names = names_by_label(beton) or None
    chosen = choose_samples(labels, n, indices=indices, classes=class_ids(classes, names, labels),
                            seed=seed, first=first, paired=bool(compiled.batch_ops))
    compiled.set_epoch(epoch)
    panels, targets, outputs = _augmented(compiled, beton, chosen)
    originals, stored = _originals(compiled, beton, chosen, largest_size(panels))
    zoom = zoom or auto_zoom(smallest_size(panels))
    texts = target_texts(compiled.targets, outputs, len(chosen))
    if targets is not None:
        texts = [" ".join(filter(None, (label_text(t, names), text)))
                 for t, text in zip(targets, texts)]
    if compiled.views:  # no targets, no batch ops: the original, then every copy
        cells = [[original, *(panel[i] for panel in panels)]
                 for i, original in enumerate(originals)]
        image = compose_cells(cells, texts, columns, zoom,
                              captions=["original", *view_captions(compiled)])
    else:
        image = _with_targets_grid(compiled, beton, originals, panels[0], stored, outputs,
                                   texts, columns, zoom)
    from PIL import Image

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def _with_targets_grid(compiled, beton, originals, augmented, stored, outputs, texts,
                       columns, zoom):
    """The grid of a split without views: each cell the original and the augmented image,
    the split's targets drawn over both."""
    augmented, augmented_overlays = with_targets(augmented, compiled.targets, outputs)
    originals, original_overlays = with_targets(originals, compiled.targets, stored)
    if augmented_overlays is not None:  # drawn at the displayed size, so the grid's zoom is 1
        box_names, offset = box_classes(beton)
        augmented = np.stack([draw_overlay(image, overlay, zoom, box_names, offset)
                              for image, overlay in zip(augmented, augmented_overlays)])
        originals = np.stack([draw_overlay(image, overlay, zoom, box_names, offset)
                              for image, overlay in zip(originals, original_overlays)])
        zoom = 1
    return compose_grid(originals, augmented, texts, columns, zoom)


def view_captions(compiled) -> List[str]:
    """Each view copy's caption, in the batch's order: ``global1[0]``, ``local[3]``; [] for
    a split without views."""
    return [f"{copy.view}[{copy.copy}]" for copy in compiled.views]


def largest_size(panels: Sequence[np.ndarray]) -> Tuple[int, int]:
    """(h, w) of the largest image among ``panels`` (each (B, H, W, C)): the size the
    originals are decoded at."""
    return max((tuple(int(s) for s in p.shape[1:3]) for p in panels),
               key=lambda size: size[0] * size[1])


def smallest_size(panels: Sequence[np.ndarray]) -> Tuple[int, int]:
    """(h, w) of the image among ``panels`` with the shortest side (what the zoom enlarges
    to a readable size)."""
    return min((tuple(int(s) for s in p.shape[1:3]) for p in panels), key=min)


def class_ids(classes: Optional[Sequence[str]], names: Optional[dict],
              labels: np.ndarray) -> Optional[List[int]]:
    """``classes`` (names from the class map, or label numbers) as label numbers;
    PreviewError naming what exists for one that does not."""
    if classes is None:
        return None
    by_name = {name: label for label, name in (names or {}).items()}
    present = set(int(v) for v in np.unique(labels))
    ids = []
    for item in classes:
        item = str(item).strip()
        if item in by_name:
            ids.append(by_name[item])
        elif item.lstrip("-").isdigit() and int(item) in present:
            ids.append(int(item))
        else:
            known = ", ".join(sorted(by_name)) if by_name else \
                ", ".join(str(v) for v in sorted(present))
            raise PreviewError(f"no class '{item}' in this .beton (classes: {known})")
    return ids


def choose_samples(labels: np.ndarray, n: int, indices: Optional[Sequence[int]] = None,
                   classes: Optional[Sequence[int]] = None, seed: int = 0, first: bool = False,
                   paired: bool = False) -> np.ndarray:
    """The data-set indices a preview shows, in grid order (see ``preview``).

    Stratified: each class's samples in a seeded random order, then the classes in turn
    (class a, b, c, a, b, c, ...; a class that runs out drops out). ``paired`` (the split has
    batch ops, which mix sample i with sample B-1-i): consecutive samples of that turn order,
    which differ in class, are placed at positions k and B-1-k.
    """
    count = len(labels)
    if indices is not None:
        chosen = np.asarray(list(indices), np.int64)
        bad = [int(i) for i in chosen if not 0 <= i < count]
        if bad or not len(chosen):
            raise PreviewError(f"indices must lie in [0, {count - 1}]; got "
                               f"{bad[0] if bad else 'none'}")
        return chosen
    if first:
        return np.arange(min(n, count))
    rng = np.random.default_rng(seed)
    wanted = sorted(set(int(v) for v in np.unique(labels))) if classes is None else \
        list(dict.fromkeys(int(c) for c in classes))
    groups = [list(rng.permutation(np.flatnonzero(labels == c))) for c in wanted]
    turns = []
    while len(turns) < n and any(groups):
        for group in groups:
            if group and len(turns) < n:
                turns.append(int(group.pop(0)))
    if not paired:
        return np.asarray(turns, np.int64)
    placed = [0] * len(turns)
    for k in range(len(turns)):
        position = k // 2 if k % 2 == 0 else len(turns) - 1 - k // 2
        placed[position] = turns[k]
    return np.asarray(placed, np.int64)


def _augmented(compiled, beton, chosen: np.ndarray):
    """The samples ``chosen`` (data-set indices, in this order) through the compiled pipeline
    and its batch ops, as a list of uint8 NHWC batches for display (one: the image; with
    views, one per view copy in the batch's order, each with its own normalization undone),
    their targets (class indices, or soft targets after mixing; None without a label) and
    their targets' batches by name (masks, ``BoxBatch``, ``KeypointBatch``). Each sample keeps
    its own keyed draws: they depend on its index, not on its place in the batch."""
    loader = compiled.loader(beton, order="sequential", batch_size=len(chosen), drop_last=False,
                             indices=chosen, distributed=False)
    batch = dict(zip(compiled.outputs, only_batch(loader)))
    targets = batch.get("label")
    if compiled.views:  # the spec refuses batch ops and targets with views
        panels = [to_display(batch[copy.output], normalization_of(copy.plan))
                  for copy in compiled.views]
        return panels, None if targets is None else list(targets.cpu()), {}
    images = batch["image"]
    for op in compiled.batch_ops:
        images, targets = op(images, targets)
    outputs = {t.name: batch[t.name] for t in compiled.targets}
    return ([to_display(images, normalization_of(compiled.plan))],
            None if targets is None else list(targets.cpu()), outputs)


def _originals(compiled, beton, chosen: np.ndarray, size):
    """The samples ``chosen`` decoded without augmentation at ``size`` (h, w), from the
    compiled split's image field, and their targets cut by the same decode (``stored_batches``:
    every stored box and point the decode keeps, in pixels)."""
    from ffcv.transforms import ToTensor

    from operations.cpu.decoders import CenterCrop

    decoder = CenterCrop(size=tuple(int(s) for s in size), ratio=1.0)
    targets = {t.name: ([decoder.for_target(t), ToTensor()], t.field) for t in compiled.targets}
    loader = compiled.loader(beton, pipelines=compiled.bind([decoder], None, targets),
                             order="sequential", batch_size=len(chosen), indices=chosen,
                             drop_last=False, num_workers=1, distributed=False)
    images, *decoded = only_batch(loader)
    stored = stored_batches(compiled.targets, dict(zip(targets, decoded)))
    return np.array(images), stored  # FFCV reuses its buffers: copy


def stored_batches(targets, decoded: dict) -> dict:
    """Targets as a target decoder gives them (``decoded``, by name: masks (B, H, W, 1),
    instance arrays of ``operations.cpu.instances``) in the form a target's pipeline ends
    with (masks (B, H, W), ``BoxBatch``, ``KeypointBatch`` in the target's box format), with
    nothing filtered: every box a clip left some area is valid."""
    from operations.device.instance_batch import box_batch, keypoint_batch

    batches = {}
    for target in targets:
        value = decoded[target.name]
        if target.kind == "mask":
            batches[target.name] = np.array(value)[..., 0]
        elif target.kind == "boxes":
            batches[target.name] = box_batch(_tensor(value), replace(
                target, min_area=0.0, min_visibility=0.0, min_size=0.0))
        else:
            batches[target.name] = keypoint_batch(_tensor(value), target)
    return batches


def _tensor(value):
    import torch

    return value.clone() if isinstance(value, torch.Tensor) else torch.from_numpy(np.array(value))


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


class Overlay(NamedTuple):
    """What one sample's boxes and keypoints targets draw over its image, in pixels of that
    image: ``boxes`` (n, 4) x1, y1, x2, y2 with their class ``labels`` (n,); ``points`` (p, 2)
    x, y with their ``visibility`` (p,): 2 visible, 1 labelled but occluded."""

    boxes: np.ndarray
    labels: np.ndarray
    points: np.ndarray
    visibility: np.ndarray


def with_targets(images: np.ndarray, targets, outputs: dict
                 ) -> Tuple[np.ndarray, Optional[List[Overlay]]]:
    """uint8 (B, H, W, 3) ``images`` with the first mask target among ``targets`` laid over
    (``overlay_masks``), and per sample the ``Overlay`` of the boxes and keypoints targets
    (None without one). ``outputs``: the targets' batches by name, as a target's pipeline
    ends (masks (B, H, W), ``BoxBatch``, ``KeypointBatch``)."""
    mask = next((t for t in targets if t.kind == "mask"), None)
    if mask is not None:
        images = overlay_masks(images, _numpy(outputs[mask.name]), mask.fill)
    return images, overlays(targets, outputs, images.shape[1:3], len(images))


def overlays(targets, outputs: dict, size, count: int) -> Optional[List[Overlay]]:
    """Per sample, the ``Overlay`` of the boxes and keypoints targets among ``targets`` on
    images of ``size`` (h, w): valid boxes in pixels (the target's format and normalization
    undone), the points of valid instances with v > 0; None without such a target."""
    drawn = [t for t in targets if t.kind in ("boxes", "keypoints")]
    if not drawn:
        return None
    boxes, labels = [[] for _ in range(count)], [[] for _ in range(count)]
    points, visibility = [[] for _ in range(count)], [[] for _ in range(count)]
    for target in drawn:
        batch = outputs[target.name]
        valid = _numpy(batch.valid).astype(bool)
        if target.kind == "boxes":
            xyxy = pixel_boxes(_numpy(batch.boxes), target, size)
            classes = _numpy(batch.labels).astype(np.int64)
            for i in range(count):
                boxes[i].append(xyxy[i][valid[i]])
                labels[i].append(classes[i][valid[i]])
        else:
            xy = _numpy(batch.points).astype(np.float64)
            v = _numpy(batch.visibility).astype(np.int64)
            shown = valid[..., None] & (v > 0)
            for i in range(count):
                points[i].append(xy[i][shown[i]])
                visibility[i].append(v[i][shown[i]])

    def joined(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    return [Overlay(joined(boxes[i], (0, 4), np.float64), joined(labels[i], (0,), np.int64),
                    joined(points[i], (0, 2), np.float64), joined(visibility[i], (0,), np.int64))
            for i in range(count)]


def pixel_boxes(boxes: np.ndarray, target, size) -> np.ndarray:
    """(..., 4) ``boxes`` in ``target``'s format (``xyxy``, ``xywh``, ``cxcywh``; normalized
    or not) on images of ``size`` (h, w) as x1, y1, x2, y2 pixels."""
    b = np.asarray(boxes, np.float64)
    if target.normalized:
        height, width = size
        b = b * np.array([width, height, width, height], np.float64)
    if target.box_format == "xywh":
        return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], -1)
    if target.box_format == "cxcywh":
        return np.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)
    return b


def target_texts(targets, outputs: dict, count: int) -> List[str]:
    """Per sample, what its label strip says of its targets ("" without targets): the
    classes of the first mask target (``classes_text``), then the number of valid boxes of
    the boxes targets, or without one, of instances of the keypoints targets."""
    parts = [[] for _ in range(count)]
    mask = next((t for t in targets if t.kind == "mask"), None)
    if mask is not None:
        for i, m in enumerate(_numpy(outputs[mask.name])):
            parts[i].append(classes_text(m, mask.fill))
    counted = [t for t in targets if t.kind == "boxes"] or \
        [t for t in targets if t.kind == "keypoints"]
    if counted:
        nouns = ("box", "boxes") if counted[0].kind == "boxes" else ("instance", "instances")
        valid = sum(_numpy(outputs[t.name].valid).astype(bool).sum(1) for t in counted)
        for i in range(count):
            parts[i].append(f"{int(valid[i])} {nouns[int(valid[i]) != 1]}")
    return [", ".join(p) for p in parts]


def box_classes(beton) -> Tuple[Dict[int, str], int]:
    """Box labels' names from the ``OUT.categories.json`` beside ``beton`` ({} without one,
    or an unreadable one), and the offset its masks add to a label (``--polygon-masks``
    writes label + 1), so that a box takes its instance mask's colour (0 without masks)."""
    from .convert.detection import categories_path, read_categories
    from .convert.errors import ConversionError

    if not categories_path(beton).is_file():
        return {}, 0
    try:
        categories = read_categories(beton)
        names = {int(c["label"]): str(c["name"]) for c in categories.get("labels", [])}
        offset = int((categories.get("mask") or {}).get("offset", 0))
    except (ConversionError, AttributeError, KeyError, TypeError, ValueError):
        return {}, 0
    return names, offset


def draw_overlay(image: np.ndarray, overlay: Optional[Overlay], zoom: int = 1,
                 names: Optional[Dict[int, str]] = None, offset: int = 0) -> np.ndarray:
    """uint8 (H, W, 3) ``image`` enlarged ``zoom`` times (nearest neighbour), with ``overlay``
    drawn at that size: each box outlined (1 px) in its class's colour (``CLASS_COLOURS[(label
    + offset) % 12]``) from pixel (x1, y1) to (x2 - 1, y2 - 1) of the enlarged image (box
    coordinates times ``zoom``, rounded), its class (``names``, else the label number) on a
    tag of that colour at its top-left corner (above the box where there is room, else
    inside); each point a dot of radius POINT_RADIUS at (x, y) times ``zoom``, rounded:
    filled POINT_COLOUR with a POINT_RIM rim where visible, a POINT_COLOUR ring where
    occluded. Boxes with no area at this size are left out."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.ascontiguousarray(_enlarge(image, zoom)))
    if overlay is None:
        return np.asarray(canvas)
    draw = ImageDraw.Draw(canvas)
    for box, label in zip(overlay.boxes, overlay.labels):
        x1, y1, x2, y2 = (int(np.rint(v * zoom)) for v in box)
        if x2 <= x1 or y2 <= y1:
            continue
        colour = tuple(int(c) for c in CLASS_COLOURS[(int(label) + offset) % len(CLASS_COLOURS)])
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour)
        _tag(draw, x1, y1, (names or {}).get(int(label), str(int(label))), colour)
    r = POINT_RADIUS
    for (x, y), v in zip(overlay.points, overlay.visibility):
        cx, cy = int(np.rint(x * zoom)), int(np.rint(y * zoom))
        if v >= 2:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=POINT_COLOUR, outline=POINT_RIM)
        else:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=POINT_COLOUR)
    return np.asarray(canvas)


def _tag(draw, x: int, y: int, text: str, colour) -> None:
    """``text`` on a ``colour`` tag whose bottom-left is the box corner (x, y), or whose
    top-left is, when the image has no room above; dark text on light colours, light on
    dark."""
    left, top, right, bottom = draw.textbbox((0, 0), text)
    width, height = right - left + 2, bottom - top + 1
    y0 = y - height if y >= height else y
    draw.rectangle((x, y0, x + width - 1, y0 + height - 1), fill=colour)
    light = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 140
    draw.text((x + 1 - left, y0 - top), text, fill=(0, 0, 0) if light else (255, 255, 255))


def overlay_masks(images: np.ndarray, masks: np.ndarray, ignore_index: int) -> np.ndarray:
    """uint8 (B, H, W, 3) ``images`` with each pixel's class colour (``CLASS_COLOURS``) laid
    over at OVERLAY_ALPHA; pixels of ``ignore_index`` stay as they are."""
    masks = np.asarray(masks).astype(np.int64)
    colours = CLASS_COLOURS[masks % len(CLASS_COLOURS)]
    blended = (1 - OVERLAY_ALPHA) * images + OVERLAY_ALPHA * colours
    blended = np.where((masks == ignore_index)[..., None], images, blended)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def classes_text(mask: np.ndarray, ignore_index: int) -> str:
    """The classes a mask holds, e.g. ``classes 0 2 3`` (the ignore index left out)."""
    present = [int(v) for v in np.unique(mask) if v != ignore_index]
    return "classes " + " ".join(map(str, present)) if present else "all ignored"


def only_batch(loader):
    """The one batch of a Loader built with batch_size = its sample count, its thread joined;
    LoaderError when the loader thread fails. A SafeLoader's (``CompiledPipeline.loader``)
    is in its ``outputs`` order (``CompiledPipeline.outputs``: FFCV's own order puts the
    outputs named like a .beton field first, so a view copy's would come after the label);
    another Loader's in FFCV's order, its ``pipeline_specs``."""
    from .loading import SafeLoader, epoch

    (batch,) = list(iter(loader) if isinstance(loader, SafeLoader) else epoch(loader))
    return batch


def normalization_of(plan) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(mean, std) in 0-255 units of the step that turns uint8 into floats (normalize,
    normalize_flip, cpu_normalize); None when no step does or its statistics are unknown."""
    for step in plan.steps:
        if step.input is None or step.input.dtype != "uint8" or step.output.dtype == "uint8":
            continue
        params = getattr(step.op, "params", {})  # every pureffcv op; raw FFCV ops have none
        mean, std = params.get("mean"), params.get("std")
        if mean is None or std is None:
            return None
        return np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return None


def to_display(images, normalization) -> np.ndarray:
    """A (B, C, H, W) tensor from the device stage as uint8 (B, H, W, C): normalization
    undone (x * std + mean), rounded, clipped to 0-255."""
    import torch

    pixels = images.detach().permute(0, 2, 3, 1).cpu()
    if pixels.dtype == torch.uint8:
        return pixels.numpy().copy()
    pixels = pixels.float().numpy().astype(np.float64)
    if normalization is not None:
        mean, std = normalization
        pixels = pixels * std + mean
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def label_text(target, names: Optional[dict] = None) -> str:
    """``3`` (or its class name from ``names``) for a class index; ``3 62% 1 33%`` for a soft
    target: its two largest classes above the label-smoothing floor (the smallest value), or
    its largest when it is flat."""
    def name(k) -> str:
        return str(names.get(int(k), k)) if names else str(int(k))

    values = np.asarray(target, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return name(values[0])
    top = [k for k in np.argsort(-values, kind="stable")[:2] if values[k] > values.min()]
    return " ".join(f"{name(k)} {values[k]:.0%}" for k in top or [int(np.argmax(values))])


def auto_zoom(size: Sequence[int]) -> int:
    """The smallest integer zoom that makes the shorter side at least MIN_SIDE pixels."""
    return max(1, math.ceil(MIN_SIDE / min(size)))


def compose_grid(originals: np.ndarray, augmented: np.ndarray, labels: Sequence[str],
                 columns: int, zoom: int = 1) -> np.ndarray:
    """The grid as a uint8 (height, width, 3) array (``compose_cells`` of the cells
    [original, augmented]).

    Sample ``i`` sits in row ``i // columns``, column ``i % columns`` (columns shrink to the
    sample count). Each image is enlarged ``zoom`` times (nearest neighbour) to h x w; a cell
    is the original, GAP pixels, the augmented image (2w + GAP wide), over a LABEL_HEIGHT
    strip with the label; cells are MARGIN pixels apart and from the border. So the grid is
    ``columns * (2w + GAP) + (columns + 1) * MARGIN`` wide and ``rows * (h + LABEL_HEIGHT) +
    (rows + 1) * MARGIN`` tall.
    """
    return compose_cells([[o, a] for o, a in zip(originals, augmented)], labels, columns, zoom)


def compose_cells(cells: Sequence[Sequence[np.ndarray]], labels: Sequence[str], columns: int,
                  zoom: int = 1, captions: Optional[Sequence[str]] = None) -> np.ndarray:
    """A grid of cells as a uint8 (height, width, 3) array: ``cells[i]`` is sample ``i``'s
    images (uint8 HWC), shown left to right, GAP pixels apart, top-aligned; every cell holds
    images of the same sizes in the same order.

    Sample ``i`` sits in row ``i // columns``, column ``i % columns`` (columns shrink to the
    sample count). Each image is enlarged ``zoom`` times (nearest neighbour). Under a cell's
    images (as tall as the tallest): with ``captions`` (one per image of a cell), a
    LABEL_HEIGHT strip with each image's caption under it (cut at the image's width), then a
    LABEL_HEIGHT strip with the cell's label. Cells are MARGIN pixels apart and from the
    border: a cell of images w_1 .. w_k wide (enlarged) is ``sum(w) + (k - 1) * GAP`` wide.
    """
    from PIL import Image, ImageDraw

    count = len(cells)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    sizes = [(image.shape[0] * zoom, image.shape[1] * zoom) for image in cells[0]]
    lefts = [sum(w for _, w in sizes[:k]) + k * GAP for k in range(len(sizes))]
    h = max(height for height, _ in sizes)
    strips = LABEL_HEIGHT * (2 if captions is not None else 1)
    cell_w, cell_h = lefts[-1] + sizes[-1][1], h + strips
    height = rows * cell_h + (rows + 1) * MARGIN
    grid = np.empty((height, columns * cell_w + (columns + 1) * MARGIN, 3), np.uint8)
    grid[:] = BACKGROUND
    for i, images in enumerate(cells):
        top = MARGIN + (i // columns) * (cell_h + MARGIN)
        left = MARGIN + (i % columns) * (cell_w + MARGIN)
        for k, (image, x, (ih, iw)) in enumerate(zip(images, lefts, sizes)):
            grid[top:top + ih, left + x:left + x + iw] = _enlarge(image, zoom)
            if captions is not None:
                grid[top + h:top + h + LABEL_HEIGHT, left + x:left + x + iw] = \
                    caption_strip(captions[k], iw)
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        top = MARGIN + (i // columns) * (cell_h + MARGIN) + h + strips - LABEL_HEIGHT
        left = MARGIN + (i % columns) * (cell_w + MARGIN)
        draw.text((left + 1, top + 1), text, fill=TEXT)
    return np.asarray(canvas)


def caption_strip(text: str, width: int) -> np.ndarray:
    """A uint8 (LABEL_HEIGHT, ``width``, 3) strip with ``text`` drawn as a label strip draws
    it (TEXT on BACKGROUND, 1 px in), cut at ``width``."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, LABEL_HEIGHT), BACKGROUND)
    ImageDraw.Draw(strip).text((1, 1), text, fill=TEXT)
    return np.asarray(strip)


def _enlarge(image: np.ndarray, zoom: int) -> np.ndarray:
    return image.repeat(zoom, axis=0).repeat(zoom, axis=1)
