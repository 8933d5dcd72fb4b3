"""Baselines for ``pureffcv bench --compare`` (measurement only, never used for training).

``torch_hybrid``: what a careful user of the FFCV + torchvision hybrid would do to get per-image
randomness — the FFCV decoder, then torch ops applied image by image in the main process: a
random flip, one of seven TrivialAugment-style ops at a random magnitude (brightness, contrast,
saturation, rotate, shear, translate, identity; affine ops via ``grid_sample``), random erasing
(p=0.25) and ImageNet normalization. Written in plain torch because torchvision cannot be a
dependency; its per-image cost is close to torchvision's tensor ops.

``dataloader``: a plain ``torch.utils.data.DataLoader`` over the source image folder: PIL decode,
random-resized crop, flip, to tensor.
"""
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from operations.normalization import MEAN, STD

from .convert.folders import scan_image_folder

_MEAN = torch.tensor(MEAN["imagenet"]).view(3, 1, 1)
_STD = torch.tensor(STD["imagenet"]).view(3, 1, 1)


def _grey(image: torch.Tensor) -> torch.Tensor:
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)


def _affine(image: torch.Tensor, angle: float, shear: float, dx: float) -> torch.Tensor:
    a, s = math.radians(angle), math.radians(shear)
    theta = torch.tensor([[math.cos(a), -math.sin(a) + math.tan(s), dx],
                          [math.sin(a), math.cos(a), 0.0]], dtype=image.dtype)
    grid = F.affine_grid(theta.unsqueeze(0), [1, *image.shape], align_corners=False)
    return F.grid_sample(image.unsqueeze(0), grid, mode="nearest", align_corners=False)[0]


def augment_one(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One image (C, H, W) uint8 -> normalized float32, with its own random draws."""
    x = image.float()
    if rng.random() < 0.5:
        x = x.flip(2)
    op, m = rng.integers(7), rng.uniform(0, 0.99) * rng.choice([-1, 1])
    if op == 0:
        x = x * (1 + m)
    elif op == 1:
        x = (x - _grey(x).mean()) * (1 + m) + _grey(x).mean()
    elif op == 2:
        x = (x - _grey(x)) * (1 + m) + _grey(x)
    elif op == 3:
        x = _affine(x, 135 * m, 0.0, 0.0)
    elif op == 4:
        x = _affine(x, 0.0, math.degrees(math.atan(m)), 0.0)
    elif op == 5:
        x = _affine(x, 0.0, 0.0, 2 * 32 * m / x.shape[2])
    x = ((x.clamp(0, 255) - _MEAN) / _STD)
    if rng.random() < 0.25:
        h, w = x.shape[1:]
        eh, ew = int(h * rng.uniform(0.1, 0.5)), int(w * rng.uniform(0.1, 0.5))
        y0, x0 = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
        x[:, y0:y0 + eh, x0:x0 + ew] = 0
    return x


def hybrid_batches(decoded_batches, device: str, seed: int = 0):
    """Wrap a source of decoded uint8 NHWC batches: per-image torch ops, then to ``device``."""
    rng = np.random.default_rng(seed)

    def batches(epoch):
        for images, labels in decoded_batches(epoch):
            chw = images.permute(0, 3, 1, 2)
            out = torch.stack([augment_one(image, rng) for image in chw])
            yield out.to(device).contiguous(memory_format=torch.channels_last), labels.to(device)

    return batches


class _ImageFolder(torch.utils.data.Dataset):
    def __init__(self, root: str, size: int):
        paths, labels, _ = scan_image_folder(Path(root))  # pureffcv convert's order
        self.samples = list(zip(paths, labels))
        self.size = size

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        from PIL import Image

        path, label = self.samples[index]
        rng = np.random.default_rng()
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            side = int(min(w, h) * rng.uniform(0.3, 1.0))
            x0, y0 = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            image = image.resize((self.size, self.size), Image.BILINEAR,
                                 box=(x0, y0, x0 + side, y0 + side))
            array = np.asarray(image)[:, ::-1] if rng.random() < 0.5 else np.asarray(image)
        return torch.from_numpy(array.copy()).permute(2, 0, 1), label


def dataloader_batches(images_dir: str, size: int, batch_size: int, num_workers: int):
    loader = torch.utils.data.DataLoader(_ImageFolder(images_dir, size), batch_size=batch_size,
                                         shuffle=True, num_workers=num_workers)
    return lambda epoch: loader
