"""A PNG grid of a spec's augmented samples beside their un-augmented originals, so a person
can see what a spec does before training with it.

Each cell shows one sample: the original on the left, the augmented image on the right, and
its label below. A split with a mask target draws the mask over both halves as a translucent
colour per class (``overlay_masks``; the ignore index left clear), the original's cut by the
same undistorted decode, and lists the classes present below. The augmented image is exactly what training sees: the split's compiled
pipeline (decoder, CPU ops, device ops) run by an FFCV Loader at the chosen epoch, then the
split's batch ops (mixup, cutmix) on the whole batch, then the normalization undone for
display. The original is the same sample decoded with no augmentation at the augmented size:
``center_crop`` of ratio 1.0 (the largest centred square, resized by FFCV's own INTER_AREA
resize; stretched when the augmented images are not square).
"""
import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

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
    augmented, targets, masks = _augmented(compiled, beton, chosen)
    originals, original_masks = _originals(compiled, beton, chosen, augmented.shape[1:3])
    if masks is not None:
        fill = compiled.targets[0].fill
        augmented = overlay_masks(augmented, masks, fill)
        originals = overlay_masks(originals, original_masks, fill)
        texts = [classes_text(mask, fill) for mask in masks]
    else:
        texts = [label_text(t, names) for t in targets]
    image = compose_grid(originals, augmented, texts, columns,
                         zoom or auto_zoom(augmented.shape[1:3]))
    from PIL import Image

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


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
    and its batch ops, as uint8 NHWC for display, their targets (class indices, or soft
    targets after mixing; None without a label) and their first mask target's masks (None
    without one). Each sample keeps its own keyed draws: they depend on its index, not on its
    place in the batch."""
    loader = compiled.loader(beton, order="sequential", batch_size=len(chosen), drop_last=False,
                             indices=chosen, distributed=False)
    batch = dict(zip(compiled.outputs, only_batch(loader)))
    images, targets = batch["image"], batch.get("label")
    for op in compiled.batch_ops:
        images, targets = op(images, targets)
    masks = batch[compiled.targets[0].name].cpu().numpy().copy() if compiled.targets else None
    return (to_display(images, normalization_of(compiled.plan)),
            None if targets is None else list(targets.cpu()), masks)


def _originals(compiled, beton, chosen: np.ndarray, size):
    """The samples ``chosen`` decoded without augmentation at ``size`` (h, w), from the
    compiled split's image field, and their first mask target cut by the same decode (None
    without one)."""
    from ffcv.transforms import ToTensor

    from operations.cpu.decoders import CenterCrop

    decoder = CenterCrop(size=tuple(int(s) for s in size), ratio=1.0)
    targets = {}
    if compiled.targets:
        target = compiled.targets[0]
        targets[target.name] = ([decoder.for_target(target), ToTensor()], target.field)
    loader = compiled.loader(beton, pipelines=compiled.bind([decoder], None, targets),
                             order="sequential", batch_size=len(chosen), indices=chosen,
                             drop_last=False, num_workers=1, distributed=False)
    batch = only_batch(loader)
    masks = np.array(batch[1])[..., 0] if compiled.targets else None
    return np.array(batch[0]), masks  # FFCV reuses its buffers: copy


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
    LoaderError when the loader thread fails."""
    from .loading import epoch

    (batch,) = list(epoch(loader))
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
    """The grid as a uint8 (height, width, 3) array.

    Sample ``i`` sits in row ``i // columns``, column ``i % columns`` (columns shrink to the
    sample count). Each image is enlarged ``zoom`` times (nearest neighbour) to h x w; a cell
    is the original, GAP pixels, the augmented image (2w + GAP wide), over a LABEL_HEIGHT
    strip with the label; cells are MARGIN pixels apart and from the border. So the grid is
    ``columns * (2w + GAP) + (columns + 1) * MARGIN`` wide and ``rows * (h + LABEL_HEIGHT) +
    (rows + 1) * MARGIN`` tall.
    """
    from PIL import Image, ImageDraw

    count = len(originals)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    h, w = originals.shape[1] * zoom, originals.shape[2] * zoom
    cell_w, cell_h = 2 * w + GAP, h + LABEL_HEIGHT
    height = rows * cell_h + (rows + 1) * MARGIN
    grid = np.empty((height, columns * cell_w + (columns + 1) * MARGIN, 3), np.uint8)
    grid[:] = BACKGROUND
    for i in range(count):
        top = MARGIN + (i // columns) * (cell_h + MARGIN)
        left = MARGIN + (i % columns) * (cell_w + MARGIN)
        grid[top:top + h, left:left + w] = _enlarge(originals[i], zoom)
        grid[top:top + h, left + w + GAP:left + cell_w] = _enlarge(augmented[i], zoom)
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        top = MARGIN + (i // columns) * (cell_h + MARGIN) + h
        left = MARGIN + (i % columns) * (cell_w + MARGIN)
        draw.text((left + 1, top + 1), text, fill=TEXT)
    return np.asarray(canvas)


def _enlarge(image: np.ndarray, zoom: int) -> np.ndarray:
    return image.repeat(zoom, axis=0).repeat(zoom, axis=1)
