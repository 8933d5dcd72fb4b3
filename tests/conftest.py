"""Shared fixtures: images with structure (gradients, edges, colour blocks — not noise, not
zeros) and small .beton files written with FFCV's own writer."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from operations.ffcv_api import FFCV_MISSING

warnings.filterwarnings("ignore", module="numba")
if FFCV_MISSING is None:  # the device tests also run where FFCV is not installed
    from operations import ffcv_patches

    ffcv_patches.apply()  # tests build FFCV Loaders by hand too, not only through compile_spec


def structured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with smooth gradients, hard edges and saturated blocks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.float64)
    img[..., 0] = 255 * x / max(width - 1, 1)
    img[..., 1] = 255 * y / max(height - 1, 1)
    img[..., 2] = 127.5 + 127.5 * np.sin(2 * np.pi * (x + y) / max(width / 3, 1))
    for _ in range(3):  # a few solid rectangles of random colour
        y0, x0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
        h, w = rng.integers(2, height // 2 + 2), rng.integers(2, width // 2 + 2)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def structured_batch(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.stack([structured_image(height, width, seed + i) for i in range(n)])


def write_beton(path: Path, images, labels, write_mode: str = "raw", **field_args) -> Path:
    """Write (image, label) pairs to ``path`` with FFCV's DatasetWriter."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    class Pairs:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], int(labels[i])

    writer = DatasetWriter(str(path), {"image": RGBImageField(write_mode=write_mode, **field_args),
                                       "label": IntField()}, num_workers=1)
    writer.from_indexed_dataset(Pairs(), chunksize=16)
    return path


def write_segmentation_beton(path: Path, images, masks, field_order=("image", "mask")) -> Path:
    """Write (image, mask) pairs to ``path`` (a raw RGBImageField and a MaskField, in
    ``field_order``) with FFCV's DatasetWriter."""
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    from operations.cpu.mask_field import MaskField

    fields = {"image": RGBImageField(write_mode="raw"), "mask": MaskField()}

    class Pairs:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            pair = {"image": images[i], "mask": masks[i]}
            return tuple(pair[name] for name in field_order)

    DatasetWriter(str(path), {name: fields[name] for name in field_order},
                  num_workers=1).from_indexed_dataset(Pairs(), chunksize=4)
    return path


@pytest.fixture(scope="session")
def small_beton(tmp_path_factory) -> Path:
    """40 structured 32x40 images in raw mode, labels i % 4."""
    images = [structured_image(32, 40, seed=i) for i in range(40)]
    return write_beton(tmp_path_factory.mktemp("beton") / "small.beton", images,
                       [i % 4 for i in range(40)])


def write_detection_beton(path: Path, images, boxes, labels, keypoints=None) -> Path:
    """Write images (raw RGBImageField) with their ``boxes`` ((n, 4) xyxy each), ``labels``
    and optionally ``keypoints`` ((n, K, 3) each) with FFCV's DatasetWriter."""
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    from operations.cpu.instances_field import (BoxesField, BoxesSample, KeypointsField,
                                                KeypointsSample)

    fields = {"image": RGBImageField(write_mode="raw"), "boxes": BoxesField()}
    if keypoints is not None:
        fields["keypoints"] = KeypointsField(np.asarray(keypoints[0]).shape[1])

    class Samples:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            h, w = images[i].shape[:2]
            sample = (images[i], BoxesSample(np.asarray(boxes[i], np.float32).reshape(-1, 4),
                                             np.asarray(labels[i], np.int64), h, w))
            if keypoints is not None:
                sample += (KeypointsSample(np.asarray(keypoints[i], np.float32), h, w),)
            return sample

    DatasetWriter(str(path), fields, num_workers=1).from_indexed_dataset(Samples(), chunksize=4)
    return path
