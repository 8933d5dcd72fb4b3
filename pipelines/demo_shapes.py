"""The embedded segmentation demo data: synthetic images of circles, rectangles and triangles
with their label maps, drawn with numpy (no download, no scikit-image).

Each image has a textured background (a gradient between two random colours, low-frequency
blotches and pixel noise) and 1 to 4 shapes in random colours, sizes, positions and rotations,
later ones covering earlier ones. Colour says nothing about the class; the outline does. The
mask holds 0 for background, 1 circle, 2 rectangle, 3 triangle (``SHAPE_CLASSES``), and 255
(``IGNORE_INDEX``) on a thin border: every pixel with a 4-neighbour of another class, so the
one-pixel ambiguity of an edge (and of the JPEG's blur along it) is neither rewarded nor
punished.

A pixel belongs to a shape when its centre lies inside it (circle: distance to the centre <=
radius; polygon: on the inner side of every edge). Image and mask come from the same boolean
maps, so they agree exactly before the image's JPEG encoding.

Layout written by ``build_shapes_dataset`` (the segmentation folder layout ``pureffcv
convert`` reads, paired by stem)::

    <root>/<split>/images/<stem>.jpg   <root>/<split>/masks/<stem>.png   (PNG mode L)
"""
import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

#: class index -> name; index 0 is the background
SHAPE_CLASSES = ("background", "circle", "rectangle", "triangle")
#: the masks' value for pixels no loss or metric counts (shape borders)
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Shape:
    """One drawn shape: ``label`` (1 circle, 2 rectangle, 3 triangle), its colour, and its
    geometry in pixel coordinates (x right, y down, pixel (row, col) centred at (col + 0.5,
    row + 0.5)): a circle's ``(cx, cy, radius)``, a polygon's vertices ``((x, y), ...)`` in
    counter-clockwise order on screen (y down: clockwise in maths)."""

    label: int
    colour: Tuple[int, int, int]
    circle: Tuple[float, float, float] = ()
    vertices: Tuple[Tuple[float, float], ...] = ()


def _pixel_centres(size: int) -> Tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float64) + 0.5
    return coords[None, :], coords[:, None]  # x (1, W), y (H, 1)


def shape_area(shape: Shape, size: int) -> np.ndarray:
    """(size, size) bool: the pixels whose centre lies inside ``shape``."""
    x, y = _pixel_centres(size)
    if shape.circle:
        cx, cy, radius = shape.circle
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2
    inside = np.ones((size, size), dtype=bool)
    vertices = shape.vertices
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        # the cross product of the edge and (pixel - start): >= 0 on the inner side
        inside &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0
    return inside


def _oriented(vertices: List[Tuple[float, float]]) -> Tuple[Tuple[float, float], ...]:
    """The vertices in the order whose inner side ``shape_area`` tests (positive cross)."""
    twice_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1)
                     in zip(vertices, vertices[1:] + vertices[:1]))
    ordered = vertices if twice_area > 0 else vertices[::-1]
    return tuple((float(x), float(y)) for x, y in ordered)


#: the width of each class's hue window, as a fraction of the colour wheel: the windows
#: (centred 120 degrees apart) overlap, so colour hints at a shape's class but only its
#: outline settles it (0.45: about 40% of a class's hues are shared with a neighbour class)
HUE_WINDOW = 0.45


def shape_colour(rng: np.random.Generator, label: int, away_from: np.ndarray
                 ) -> Tuple[int, int, int]:
    """A colour for a shape of class ``label``: hue in the class's window (``HUE_WINDOW``),
    saturation 0.35-1, value 0.35-1, at least 80 (sum of absolute channel differences) from
    ``away_from`` (the background's mean colour)."""
    centre = (label - 1) / (len(SHAPE_CLASSES) - 1)
    while True:
        hue = (centre + rng.uniform(-HUE_WINDOW / 2, HUE_WINDOW / 2)) % 1.0
        rgb = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 1), rng.uniform(0.35, 1)))
        colour = np.rint(rgb * 255)
        if np.abs(colour - away_from).sum() >= 80:
            return tuple(int(c) for c in colour)


def random_shape(rng: np.random.Generator, size: int, background: np.ndarray) -> Shape:
    """A circle, rectangle or triangle of a random size (its extent 25-55% of ``size``; the
    three classes cover about the same area on average),
    position and rotation, in a colour of its class's hue window (``shape_colour``) away from
    the ``background`` colour."""
    label = int(rng.integers(1, len(SHAPE_CLASSES)))
    colour = shape_colour(rng, label, background)
    extent = rng.uniform(0.25, 0.55) * size  # about the shape's diameter
    cx, cy = rng.uniform(0.1 * size, 0.9 * size, size=2)
    if label == 1:
        return Shape(label, colour, circle=(float(cx), float(cy), float(extent / 2)))
    angle = rng.uniform(0, np.pi)
    if label == 2:  # a rotated rectangle, aspect ratio 1 to 2
        aspect = rng.uniform(1.0, 2.0)
        half_w, half_h = extent / 2, extent / 2 / aspect
        corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    else:  # a triangle: three points on a circle, no angle under 30 degrees
        while True:
            polar = np.sort(rng.uniform(0, 2 * np.pi, size=3))
            gaps = np.diff(np.append(polar, polar[0] + 2 * np.pi))
            if gaps.min() >= np.pi / 3:  # inscribed angles = half the arcs: >= 30 degrees
                break
        radius = extent * 0.75
        corners = [(radius * np.cos(a), radius * np.sin(a)) for a in polar]
    cos, sin = np.cos(angle), np.sin(angle)
    turned = [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in corners]
    return Shape(label, colour, vertices=_oriented(turned))


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float: a gradient between two random colours in a random direction,
    plus low-frequency blotches and pixel noise."""
    first, second = rng.uniform(0, 255, size=(2, 3))
    x, y = _pixel_centres(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x * np.cos(angle) + y * np.sin(angle)) / size + 1) / 2  # about 0..1
    image = first + (second - first) * np.clip(ramp, 0, 1)[..., None]
    coarse = rng.normal(0, 30, size=(3, size // 8 + 1, size // 8 + 1)).astype(np.float32)
    blotches = np.stack([np.asarray(Image.fromarray(channel).resize(
        (size, size), Image.BILINEAR)) for channel in coarse], axis=-1)  # smooth, no edges
    return image + blotches + rng.normal(0, 10, size=(size, size, 3))


def ignore_borders(mask: np.ndarray, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """A copy of ``mask`` with every pixel that has a 4-neighbour of another class set to
    ``ignore_index`` (both sides of each boundary)."""
    border = np.zeros(mask.shape, dtype=bool)
    vertical = mask[1:, :] != mask[:-1, :]
    horizontal = mask[:, 1:] != mask[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    out = mask.copy()
    out[border] = ignore_index
    return out


def draw_sample(rng: np.random.Generator, size: int = 64, max_shapes: int = 4
                ) -> Tuple[np.ndarray, np.ndarray, List[Shape]]:
    """One sample: (image (size, size, 3) uint8, mask (size, size) uint8 with ignore borders,
    the shapes in drawing order)."""
    background = random_background(rng, size)
    mean_colour = background.mean(axis=(0, 1))
    shapes = [random_shape(rng, size, mean_colour)
              for _ in range(int(rng.integers(1, max_shapes + 1)))]
    image, labels = background, np.zeros((size, size), dtype=np.uint8)
    for shape in shapes:
        area = shape_area(shape, size)
        shade = rng.normal(0, 8, size=(size, size, 1))  # a little texture on the shape too
        image = np.where(area[..., None], np.asarray(shape.colour) + shade, image)
        labels = np.where(area, np.uint8(shape.label), labels)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, ignore_borders(labels), shapes


def build_shapes_dataset(root: Path, per_split: Dict[str, int], size: int = 64,
                         seed: int = 0) -> Dict[str, Path]:
    """Write ``root/<split>/images/<stem>.jpg`` and ``root/<split>/masks/<stem>.png`` (stems
    ``00000``, ``00001``, ...) for each split in ``per_split`` (split -> samples) and return
    split -> folder. Sample i of a split is drawn from its own generator, keyed by (seed,
    split's position, i). A complete folder (same count, size and seed) is reused."""
    root = Path(root)
    folders = {}
    for split_number, (split, count) in enumerate(per_split.items()):
        folder = root / split
        folders[split] = folder
        marker = folder / ".complete"
        stamp = f"{count} {size} {seed}"
        if marker.exists() and marker.read_text() == stamp:
            continue
        for sub, suffix in (("images", "jpg"), ("masks", "png")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for stale in (folder / sub).glob(f"*.{suffix}"):  # an earlier, other build's
                stale.unlink()
        for i in range(count):
            image, mask, _ = draw_sample(np.random.default_rng([seed, split_number, i]), size)
            Image.fromarray(image).save(folder / "images" / f"{i:05d}.jpg", quality=90)
            Image.fromarray(mask).save(folder / "masks" / f"{i:05d}.png")
        marker.write_text(stamp)
    return folders
