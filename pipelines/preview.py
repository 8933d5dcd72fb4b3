"""A PNG grid of a spec's augmented samples beside their un-augmented originals, so a person
can see what a spec does before training with it.

Each cell shows one sample: the original on the left, the augmented image on the right, and
its label below. The augmented image is exactly what training sees: the split's compiled
pipeline (decoder, CPU ops, device ops) run by an FFCV Loader at the chosen epoch, then the
split's batch ops (mixup, cutmix) on the whole batch, then the normalization undone for
display. The original is the same sample decoded with no augmentation at the augmented size:
``center_crop`` of ratio 1.0 (the largest centred square, resized by FFCV's own INTER_AREA
resize; stretched when the augmented images are not square).
"""
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

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


class PreviewError(PureffcvError, ValueError):
    """A problem with the preview's inputs; ``str()`` is one line for the user."""


def preview(spec: Union[str, os.PathLike], beton: Union[str, os.PathLike],
            out: Union[str, os.PathLike], split: str = "train", n: int = 32, epoch: int = 0,
            device: str = "cpu", columns: int = 4, zoom: Optional[int] = None) -> Path:
    """Write the preview grid of the first ``n`` samples of ``beton`` to the PNG ``out``.

    - ``spec``: a spec file (or YAML text); ``split``: which of its splits to show.
    - ``n``: samples shown (fewer if the data set is smaller); ``columns``: cells per row.
    - ``epoch``: the epoch whose keyed draws are shown (each epoch draws anew).
    - ``device``: where the device stage runs (cpu, cuda, cuda:N, auto).
    - ``zoom``: integer nearest-neighbour enlargement; None enlarges images whose shorter
      side is below 64 px to at least 64.

    Raises PreviewError, pipelines.beton.BetonError (a missing or unusable .beton),
    compiler.SpecError, ValueError (unknown device) or pipelines.loading.LoaderError (an op
    failed in FFCV's loader thread), all one line. Returns the path written.
    """
    from compiler import compile_spec

    from .beton import open_beton

    if n < 1 or columns < 1 or (zoom is not None and zoom < 1):
        raise PreviewError("n, columns and zoom must be at least 1")
    compiled = compile_spec(spec, split=split, device=device)
    count = min(n, int(open_beton(beton, ("image", "label")).num_samples))
    compiled.set_epoch(epoch)
    augmented, labels = _augmented(compiled, beton, count)
    originals = _originals(beton, count, augmented.shape[1:3])
    image = compose_grid(originals, augmented, [label_text(t) for t in labels], columns,
                         zoom or auto_zoom(augmented.shape[1:3]))
    from PIL import Image

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def _augmented(compiled, beton, count: int) -> Tuple[np.ndarray, list]:
    """The first ``count`` samples through the compiled pipeline and its batch ops, as uint8
    NHWC for display, and their targets (class indices, or soft targets after mixing)."""
    loader = compiled.loader(beton, order="sequential", batch_size=count, drop_last=False,
                             indices=np.arange(count), distributed=False)
    images, targets = only_batch(loader)
    for op in compiled.batch_ops:
        images, targets = op(images, targets)
    return to_display(images, normalization_of(compiled.plan)), list(targets.cpu())


def _originals(beton, count: int, size) -> np.ndarray:
    """The first ``count`` samples decoded without augmentation at ``size`` (h, w)."""
    from ffcv.loader import Loader, OrderOption

    from operations.cpu.decoders import CenterCrop

    loader = Loader(str(beton), batch_size=count, order=OrderOption.SEQUENTIAL,
                    indices=np.arange(count), drop_last=False, num_workers=1,
                    pipelines={"image": [CenterCrop(size=tuple(int(s) for s in size), ratio=1.0)],
                               "label": None})
    (images,) = only_batch(loader)
    return np.array(images)  # FFCV reuses its buffers: copy


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
        params = getattr(step.op, "params", {})
        mean = getattr(step.op, "mean", params.get("mean"))
        std = getattr(step.op, "std", params.get("std"))
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


def label_text(target) -> str:
    """``3`` for a class index; ``3 62% 1 33%`` for a soft target: its two largest classes
    above the label-smoothing floor (the smallest value), or its largest when it is flat."""
    values = np.asarray(target, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return str(int(values[0]))
    top = [k for k in np.argsort(-values, kind="stable")[:2] if values[k] > values.min()]
    return " ".join(f"{k} {values[k]:.0%}" for k in top or [int(np.argmax(values))])


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
