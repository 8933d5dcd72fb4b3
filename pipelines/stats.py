"""Per-channel mean and standard deviation of a .beton's images, in 0-255 pixel units (the
units of the spec's ``normalize: {mean: [...], std: [...]}``).

Every image is decoded at its stored size exactly as FFCV's decoders decode it (raw pixels
copied, JPEG through FFCV's own libjpeg-turbo ``imdecode``), with no crop or resize; the sums
are exact integers, so the result does not depend on the order or on float rounding. The
standard deviation is the population one (divided by the pixel count), as torchvision's
published ImageNet statistics are.
"""
import os
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from operations.errors import PureffcvError


class StatsError(PureffcvError, ValueError):
    """The statistics cannot be computed for this file; ``str()`` is one line."""


@dataclass(frozen=True)
class ChannelStats:
    """What ``channel_stats`` found: ``mean`` and ``std`` (R, G, B) in pixel units."""
    images: int
    pixels: int  # per channel
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]

    def yaml(self, digits: int = 2) -> str:
        """The line to paste into a spec's device ops."""
        def show(values):
            return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"

        return f"- normalize: {{mean: {show(self.mean)}, std: {show(self.std)}}}"


def image_field(reader, field: Optional[str]) -> str:
    """The name of the RGB image field: ``field`` if given, else ``image``, else the only
    RGBImageField of the file."""
    from ffcv.fields import RGBImageField

    images = [name for name, handler in zip(reader.field_names, reader.handlers.values())
              if isinstance(handler, RGBImageField)]
    if field is not None:
        if field not in images:
            raise StatsError(f"{reader._fname}: no RGB image field '{field}' (image fields: "
                             f"{', '.join(images) or 'none'})")
        return field
    if "image" in images:
        return "image"
    if len(images) == 1:
        return images[0]
    raise StatsError(f"{reader._fname}: {len(images)} RGB image fields "
                     f"({', '.join(images) or 'none'}); name one with --field")


def decode(data: np.memmap, entry, sizes: dict) -> np.ndarray:
    """One sample's image (H, W, 3) uint8 from its metadata ``entry`` (mode, width, height,
    data_ptr), read from the file's bytes ``data``."""
    from ffcv.fields.rgb_image import IMAGE_MODES
    from ffcv.libffcv import imdecode

    height, width, ptr = int(entry["height"]), int(entry["width"]), int(entry["data_ptr"])
    if entry["mode"] == IMAGE_MODES["raw"]:
        return np.asarray(data[ptr:ptr + height * width * 3]).reshape(height, width, 3)
    out = np.empty((height, width, 3), np.uint8)
    source = np.ascontiguousarray(data[ptr:ptr + sizes[ptr]])
    imdecode(source, out, height, width, height, width, 0, 0, 1, 1, False, False)
    return out


def channel_stats(beton: Union[str, os.PathLike], field: Optional[str] = None,
                  limit: Optional[int] = None, progress: bool = True) -> ChannelStats:
    """Mean and std per channel of the images of ``beton`` (``field``: its image field,
    default ``image`` or the only one). ``limit``: use that many images, evenly spaced over
    the file (default: all). Raises StatsError or pipelines.beton.BetonError (one line)."""
    from tqdm import tqdm

    from .beton import open_beton

    reader = open_beton(beton, ())
    name = image_field(reader, field)
    metadata = reader.metadata[f"f{reader.field_names.index(name)}"]
    count = len(metadata)
    if limit is not None and limit < 1:
        raise StatsError(f"--limit must be at least 1; got {limit}")
    chosen = np.arange(count) if limit is None or limit >= count else \
        np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))
    sizes = {int(p): int(s) for p, s in zip(reader.alloc_table["ptr"], reader.alloc_table["size"])}
    data = np.memmap(beton, np.uint8, mode="r")
    total = np.zeros(3, dtype=object)  # Python ints: exact whatever the data set's size
    squares = np.zeros(3, dtype=object)
    pixels = 0
    for i in tqdm(chosen, desc="reading images", unit="img", disable=not progress):
        image = decode(data, metadata[i], sizes).reshape(-1, 3).astype(np.int64)
        total += [int(v) for v in image.sum(0)]
        squares += [int(v) for v in (image * image).sum(0)]
        pixels += image.shape[0]
    mean = [t / pixels for t in total]
    # var = (N sum x^2 - (sum x)^2) / N^2, exact in integers up to the one division
    std = [float(np.sqrt((pixels * q - t * t) / pixels ** 2)) for t, q in zip(total, squares)]
    return ChannelStats(len(chosen), pixels, tuple(float(m) for m in mean), tuple(std))
