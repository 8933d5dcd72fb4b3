"""Random erasing on the device: the CPU ``random_erasing`` per sample, on the whole batch."""
import inspect
import math
from dataclasses import replace
from typing import Tuple

import numpy as np
import torch
from ffcv.pipeline.state import State

from ..cpu.erasing import ATTEMPTS, DRAWS_PER_ERASURE, NOISE_MEAN, NOISE_STD, random_erasing
from ..registry import register_op
from ..types import ImageType
from . import rng
from .stage import DeviceOperation


def erasing_boxes(keys: torch.Tensor, first_draw: int, height: int, width: int,
                  scale, ratio) -> tuple:
    """``operations.cpu.erasing.erasing_box`` for every key at once: int64 tensors
    ``(y, x, h, w)``, h = w = 0 where no attempt fits. Same draws, same arithmetic."""
    draws = first_draw + 4 * torch.arange(ATTEMPTS, device=keys.device)
    keys = keys[:, None]
    target = height * width * (scale[0] + (scale[1] - scale[0]) * rng.uniform(keys, draws))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * rng.uniform(keys, draws + 1))
    h = torch.round(torch.sqrt(target * aspect)).long()
    w = torch.round(torch.sqrt(target / aspect)).long()
    fits = (h < height) & (w < width)
    first = fits.long().argmax(1, keepdim=True)  # the first attempt that fits
    found = fits.any(1)
    h = torch.where(found, h.gather(1, first)[:, 0], 0)
    w = torch.where(found, w.gather(1, first)[:, 0], 0)
    draw = draws[first[:, 0]]
    y = (rng.uniform(keys[:, 0], draw + 2) * (height - h + 1)).long()
    x = (rng.uniform(keys[:, 0], draw + 3) * (width - w + 1)).long()
    return torch.where(found, y, 0), torch.where(found, x, 0), h, w


@register_op("device_random_erasing")
class DeviceRandomErasing(DeviceOperation):
    """torchvision v2 ``RandomErasing`` per image on the device batch — the CPU
    ``random_erasing`` (same parameters, same draws: on uint8 input the same bytes) for
    pipelines that erase after the boundary or after ``normalize``.

    Parameters: exactly ``random_erasing``'s (one declaration: its signature), with these
    meanings on the device: ``value`` a level 0..255 is in the images' units (a grey level
    for uint8, used as is for normalized floats), "mean" is the image's per-channel mean
    (rounded for uint8), "random" per-pixel N(0, 1) — as torchvision on normalized floats,
    mapped to pixels (ImageNet mean + std * z, rounded, clipped) on uint8 like the CPU op;
    with ``count`` > 1 later rectangles overwrite earlier ones.

    Randomness: the CPU op's — the kernel key ``derive(sample_key, 1)``, gate draw 0, erasure
    k from draw 1 + 64k. (Same bytes unless torch's float64 exp/log/cos, which may differ from
    libm's in the last bit, lands exactly on a rounding boundary.)

    Cost: the batch is erased in place (no output buffer, no copy); only the boxes' pixels
    are written, by one indexed store per rectangle index k, and only "mean" reads the
    erased images (their float64 channel sums); "random" hashes the boxes' pixels only.
    """

    def __init__(self, **values):
        super().__init__()

    __init__.__signature__ = inspect.signature(random_erasing.__init__)

    def jit_equivalent(self, image: ImageType):
        """The CPU ``random_erasing`` with this op's parameters, stream and draws, for images
        of type ``image`` on which it gives the same bytes: uint8 images (any value), or
        float32 images erased with a constant (a float16 JIT buffer holds bit patterns, so
        only "zero" there). None otherwise ("mean" and "random" on normalized floats)."""
        value = self.params["value"]
        same_bytes = (image.dtype == "uint8" or
                      (image.dtype == "float32" and value not in ("mean", "random")) or
                      (image.dtype == "float16" and value == "zero"))
        if not same_bytes:
            return None
        twin = random_erasing(**self.params)
        twin.bind(self.clock, self.position)
        return twin

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, None]:
        # in place: the batch keeps its type, and only the boxes are written
        return replace(previous_state, jit_mode=False), None

    def generate_code(self):
        def device_step(images, _dst, indices):
            self.forward(images, images, torch.from_numpy(np.asarray(indices, dtype=np.int64)))
            return images

        device_step.with_indices = True
        return device_step

    def apply(self, images: torch.Tensor, indices=None) -> torch.Tensor:
        """Erase a copy of ``images`` (the Loader erases its batch in place) with the same
        code and draws a Loader would use; ``indices`` default to 0..B-1."""
        images = images.clone(memory_format=torch.channels_last)
        return self.generate_code()(images, None,
                                    np.arange(len(images)) if indices is None else indices)

    def forward(self, images, out, indices):
        """Write the boxes of ``images`` into ``out`` (``out`` is ``images`` in a Loader, or
        a copy of it): only erased pixels are written; "mean" also reads the erased images
        (their float64 channel sums, as the CPU op)."""
        keys = rng.derive(self.sample_keys(indices), 1)
        erased = (rng.uniform(keys, 0) < self.params["p"]).nonzero()[:, 0]
        if erased.numel() == 0:
            return
        device = images.device
        b, c, height, width = images.shape
        keys, erased = keys[erased].to(device), erased.to(device)
        means = None
        value, scale, ratio = self.params["value"], self.params["scale"], self.params["ratio"]
        if value == "mean":  # before any box is written: later boxes use the same means
            pixels = images.permute(0, 2, 3, 1)
            means = torch.stack([pixels[i].reshape(-1, c).sum(0, dtype=torch.float64)
                                 for i in erased.tolist()]) / (height * width)
            means = (torch.round(means) if not images.is_floating_point() else means)
            means = means.to(images.dtype)
        for k in range(self.params["count"]):
            y, x, h, w = erasing_boxes(keys, 1 + DRAWS_PER_ERASURE * k, height, width,
                                       scale, ratio)
            if value == "random":
                self._erase_with_noise(out, erased, rng.derive(keys, k), y, x, h, w)
                continue
            fill = self._fill(images, means)
            pixels = out.permute(0, 2, 3, 1)  # (B, H, W, C): contiguous rows of the box
            boxes = zip(erased.tolist(), y.tolist(), x.tolist(), h.tolist(), w.tolist())
            for i, (image, top, left, rows, cols) in enumerate(boxes):
                if rows:  # a strided store of the box alone
                    pixels[image, top:top + rows, left:left + cols] = fill[i % len(fill)]

    def _fill(self, images, means):
        """The constant of each erased image: a (1 or erased, C) tensor."""
        value = self.params["value"]
        if value == "mean":
            return means
        level = 0 if value == "zero" else value
        return torch.full((1, images.shape[1]), level, dtype=images.dtype, device=images.device)

    def _erase_with_noise(self, out, erased, noise_keys, y, x, h, w):
        """"random": all boxes' pixels at once, one entry per erased pixel and channel."""
        device = out.device
        b, c, height, width = out.shape
        areas = h * w
        total = int(areas.sum())
        if total == 0:
            return
        which = torch.repeat_interleave(torch.arange(len(erased), device=device), areas,
                                        output_size=total)
        local = torch.arange(total, device=device) - (torch.cumsum(areas, 0) - areas)[which]
        box_w = w[which]
        image, row, col = erased[which], y[which] + local // box_w, x[which] + local % box_w
        channel = torch.arange(c, device=device).view(1, c)
        z = rng.normal(noise_keys[which].view(-1, 1), local.view(-1, 1) * c + channel)
        if not out.is_floating_point():
            shift = torch.tensor(NOISE_MEAN, dtype=torch.float64, device=device)[channel % 3]
            spread = torch.tensor(NOISE_STD, dtype=torch.float64, device=device)[channel % 3]
            z = torch.clamp(torch.round(shift + spread * z), 0, 255)
        out[image, :, row, col] = z.to(out.dtype)
