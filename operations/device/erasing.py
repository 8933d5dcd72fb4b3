"""Random erasing on the device: the CPU ``random_erasing`` per sample, on the whole batch."""
import math

import torch

from ..cpu.erasing import ATTEMPTS, DRAWS_PER_ERASURE, NOISE_MEAN, NOISE_STD, EraseValue
from ..params import FloatRange, PositiveInt, Probability
from ..registry import register_op
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

    - ``p``: probability per image, default 0.5.
    - ``scale``: [min, max] erased fraction of the image area, default [0.02, 0.33].
    - ``ratio``: [min, max] aspect ratio h/w, log-uniform, default [0.3, 3.3].
    - ``value``: "zero" (default), a level 0..255 (in the images' units: a grey level for
      uint8, used as is for normalized floats), "mean" (the image's per-channel mean; rounded
      for uint8) or "random": per-pixel N(0, 1) — as torchvision on normalized floats, mapped
      to pixels (ImageNet mean + std * z, rounded, clipped) on uint8 like the CPU op.
    - ``count``: rectangles per image, >= 1, default 1; later ones overwrite earlier ones.

    Randomness: the CPU op's — the kernel key ``derive(sample_key, 1)``, gate draw 0, erasure
    k from draw 1 + 64k. (Same bytes unless torch's float64 exp/log/cos, which may differ from
    libm's in the last bit, lands exactly on a rounding boundary.) "random" hashes every pixel
    of the batch, so it costs more than the constant fills.
    """

    def __init__(self, p: Probability = 0.5, scale: FloatRange = (0.02, 0.33),
                 ratio: FloatRange = (0.3, 3.3), value: EraseValue = "zero",
                 count: PositiveInt = 1):
        super().__init__()
        self.p, self.scale, self.ratio = p, tuple(scale), tuple(ratio)
        self.value, self.count = value, count

    def forward(self, images, out, indices):
        keys = rng.derive(self.sample_keys(indices), 1)
        out.copy_(images)
        erased = rng.uniform(keys, 0) < self.p
        if not bool(erased.any()):
            return
        device = images.device
        keys, erased = keys.to(device), erased.to(device)
        b, c, height, width = images.shape
        ys = torch.arange(height, device=device).view(1, height, 1)
        xs = torch.arange(width, device=device).view(1, 1, width)
        means = images.to(torch.float64).sum((2, 3), keepdim=True) / (height * width)
        for k in range(self.count):
            y, x, h, w = (t.view(b, 1, 1) for t in erasing_boxes(
                keys, 1 + DRAWS_PER_ERASURE * k, height, width, self.scale, self.ratio))
            inside = ((ys >= y) & (ys < y + h) & (xs >= x) & (xs < x + w) & erased.view(b, 1, 1))
            fill = self._fill(rng.derive(keys, k), images, means, y, x, w)
            out.copy_(torch.where(inside.unsqueeze(1), fill, out))

    def _fill(self, noise_keys, images, means, y, x, w):
        """What an erased pixel becomes: a scalar or a tensor broadcasting to (B, C, H, W)."""
        integer = not images.is_floating_point()
        if self.value == "mean":
            return (torch.round(means) if integer else means).to(images.dtype)
        if self.value != "random":
            return torch.tensor(0 if self.value == "zero" else self.value, dtype=images.dtype,
                                device=images.device)
        b, c, height, width = images.shape
        device = images.device
        ys = torch.arange(height, device=device).view(1, 1, height, 1)
        xs = torch.arange(width, device=device).view(1, 1, 1, width)
        channel = torch.arange(c, device=device).view(1, c, 1, 1)
        draws = ((ys - y.view(b, 1, 1, 1)) * w.view(b, 1, 1, 1) + xs - x.view(b, 1, 1, 1)) * c + channel
        z = rng.normal(noise_keys.view(b, 1, 1, 1), draws)
        if integer:
            shift = torch.tensor(NOISE_MEAN, dtype=torch.float64, device=device)[channel % 3]
            spread = torch.tensor(NOISE_STD, dtype=torch.float64, device=device)[channel % 3]
            z = torch.clamp(torch.round(shift + spread * z), 0, 255)
        return z.to(images.dtype)
