"""Occlusion ops: cutout and random erasing (rectangles filled with a constant, the image's
mean colour or noise). ``random_erasing`` has both backends here, side by side: the CPU
kernel and ``RandomErasingOnDevice`` (torch, the whole batch at once, the same draws);
the spec section picks one."""
import math
from dataclasses import replace
from typing import Annotated, Literal, Tuple, Union

import numpy as np
import torch
from numba import njit, types
from numba.extending import overload

from ..normalization import MEAN, STD
from ..authoring import cpu_op
from ..base import FIRST_DRAW_GATE
from ..device import rng as torch_rng
from ..device.stage import DeviceOperation
from ..ffcv_api import State
from ..params import MAX_SIDE, AreaRange, AspectRange, Count, Probability, Range
from ..registry import register_alias, register_op
from ..rng import derive, normal, randint, uniform
from ..targets import IMAGE_ONLY
from ..types import ImageType
from .pixels import copy_pixels, copy_run, flat
from .values import Fill, fill_value

#: torchvision's number of tries to place one erasure
ATTEMPTS = 10
#: draw numbers reserved per erasure (ATTEMPTS x 4 used)
DRAWS_PER_ERASURE = 64
#: 'random' erasing noise: N(0, 1) in ImageNet-normalized units, in 0-255 pixel units
NOISE_MEAN = np.array(MEAN["imagenet"])
NOISE_STD = np.array(STD["imagenet"])

CONSTANT, MEAN_COLOUR, NOISE = 0, 1, 2
EraseValue = Union[Literal["zero", "mean", "random"], Annotated[int, Range(0, 255)]]


@njit
def fill_rect(image, y, x, h, w, fill):
    """Set ``image[y:y+h, x:x+w]`` to ``fill`` (a grey level or a per-channel tuple): one
    filled row, then a run copy of it per row (4x faster than a per-value channel test for
    a level, 17x for a tuple)."""
    if h <= 0 or w <= 0:
        return
    width, channels = image.shape[1], image.shape[2]
    pixels = flat(image)
    filled = np.empty(w * channels, image.dtype)
    for i in range(w * channels):
        filled[i] = fill_value(fill, i % channels)
    for row in range(y, y + h):
        copy_run(filled, 0, pixels, (row * width + x) * channels, w * channels)


@njit
def channel_means(image):
    """The image's per-channel mean, rounded half to even."""
    channels, pixels = image.shape[2], image.shape[0] * image.shape[1]
    values = flat(image)
    sums = np.zeros(channels)
    for c in range(channels):
        for p in range(pixels):
            sums[c] += values[p * channels + c]
    return np.rint(sums / (image.shape[0] * image.shape[1]))


@njit
def fill_noise(image, y, x, h, w, key):
    """Fill the rectangle with N(0, 1) noise in ImageNet-normalized units mapped to pixels:
    round(mean_c + std_c * z), clipped to 0..255, z drawn per pixel and channel from ``key``."""
    channels = image.shape[2]
    for yy in range(h):
        for xx in range(w):
            for c in range(channels):
                z = normal(key, (yy * w + xx) * channels + c)
                level = np.rint(NOISE_MEAN[c % 3] + NOISE_STD[c % 3] * z)
                image[y + yy, x + xx, c] = min(max(level, 0.0), 255.0)


@njit
def erasing_box(key, first_draw, height, width, scale, ratio):
    """torchvision v2 ``RandomErasing.get_params`` with keyed draws: ``(y, x, h, w)``, or
    h = w = 0 when no attempt fits (the image stays as is).

    Up to 10 attempts using draws first_draw + 4k..+3: area uniform in ``scale`` x image area,
    ratio log-uniform in ``ratio``, h = round(sqrt(area * r)), w = round(sqrt(area / r)),
    accepted if h < height and w < width; the offset is uniform over the valid positions."""
    area = height * width
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    for attempt in range(ATTEMPTS):
        draw = first_draw + 4 * attempt
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform(key, draw))
        aspect = np.exp(log_lo + (log_hi - log_lo) * uniform(key, draw + 1))
        h = np.int64(np.rint(np.sqrt(target * aspect)))
        w = np.int64(np.rint(np.sqrt(target / aspect)))
        if h < height and w < width:
            return randint(key, draw + 2, 0, height - h + 1), randint(key, draw + 3, 0, width - w + 1), h, w
    return 0, 0, 0, 0


def erase_mode(value):
    """``(mode, level)`` for a ``value`` spec: CONSTANT with a grey level, MEAN_COLOUR or NOISE."""


@overload(erase_mode, inline='always')
def _erase_mode(value):
    if isinstance(value, types.Number):
        return lambda value: (CONSTANT, float(value))
    if isinstance(value, types.UnicodeType):
        def from_name(value):
            if value == "mean":
                return MEAN_COLOUR, 0.0
            if value == "random":
                return NOISE, 0.0
            return CONSTANT, 0.0
        return from_name


@register_op("cutout")
@cpu_op(targets=IMAGE_ONLY)
def cutout(image_in, image_out, rng, size: Annotated[int, Range(1, MAX_SIDE)], fill: Fill = 0):
    """Cutout (DeVries & Taylor; FFCV's ``Cutout``): fill a ``size`` x ``size`` square with
    ``fill``; its centre is uniform over the image (draws 0, 1) and the square is clipped at
    the borders, so less may be covered near an edge. The square spans
    [c - size // 2, c - size // 2 + size) on each axis.

    - ``size``: side in pixels, >= 1 (required).
    - ``fill``: grey level or [r, g, b] in 0..255, default 0.
    - ``p``: probability, default 1.0.
    """
    height, width = image_in.shape[0], image_in.shape[1]
    copy_pixels(image_in, image_out)
    y0 = randint(rng, 0, 0, height) - size // 2
    x0 = randint(rng, 1, 0, width) - size // 2
    y, x = max(y0, 0), max(x0, 0)
    fill_rect(image_out, y, x, min(y0 + size, height) - y, min(x0 + size, width) - x, fill)


@register_op("random_erasing")
@cpu_op(p=0.5, gate=FIRST_DRAW_GATE, targets=IMAGE_ONLY)
def random_erasing(image_in, image_out, rng, scale: AreaRange = (0.02, 0.33),
                   ratio: AspectRange = (0.3, 3.3), value: EraseValue = "zero", count: Count = 1):
    """torchvision v2 ``RandomErasing`` on uint8 images: with probability ``p`` (draw 0),
    erase ``count`` rectangles, each placed independently by ``erasing_box`` (erasure k uses
    draws 1 + 64k ...); a rectangle that finds no place in 10 attempts is skipped. Rectangles
    may overlap.

    - ``p``: probability, default 0.5.
    - ``scale``: [min, max] erased fraction of the image area, default [0.02, 0.33].
    - ``ratio``: [min, max] aspect ratio h/w, log-uniform, default [0.3, 3.3].
    - ``value``: "zero" (default, torchvision's 0), a grey level 0..255, "mean" (the image's
      per-channel mean colour, rounded) or "random": per-pixel noise. torchvision draws N(0, 1)
      in normalized space; here it is N(0, 1) in ImageNet-normalized units mapped back to
      pixels (mean + std * z, rounded, clipped to 0..255), since this op runs before normalize.
    - ``count``: rectangles per image, >= 1, default 1 (torchvision: 1).
    """
    copy_pixels(image_in, image_out)
    height, width = image_in.shape[0], image_in.shape[1]
    mode, level = erase_mode(value)
    for k in range(count):
        y, x, h, w = erasing_box(rng, 1 + DRAWS_PER_ERASURE * k, height, width, scale, ratio)
        if mode == NOISE:
            fill_noise(image_out, y, x, h, w, derive(rng, k))
        elif mode == MEAN_COLOUR:
            fill_rect(image_out, y, x, h, w, channel_means(image_in))
        else:
            fill_rect(image_out, y, x, h, w, level)


# ---------------------------------------------------------------- the device backend

def erasing_boxes(keys: torch.Tensor, first_draw: int, height: int, width: int,
                  scale, ratio) -> tuple:
    """``erasing_box`` for every key at once: int64 tensors
    ``(y, x, h, w)``, h = w = 0 where no attempt fits. Same draws, same arithmetic."""
    draws = first_draw + 4 * torch.arange(ATTEMPTS, device=keys.device)
    keys = keys[:, None]
    target = height * width * (scale[0] + (scale[1] - scale[0]) * torch_rng.uniform(keys, draws))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch_rng.uniform(keys, draws + 1))
    h = torch.round(torch.sqrt(target * aspect)).long()
    w = torch.round(torch.sqrt(target / aspect)).long()
    fits = (h < height) & (w < width)
    first = fits.long().argmax(1, keepdim=True)  # the first attempt that fits
    found = fits.any(1)
    h = torch.where(found, h.gather(1, first)[:, 0], 0)
    w = torch.where(found, w.gather(1, first)[:, 0], 0)
    draw = draws[first[:, 0]]
    y = (torch_rng.uniform(keys[:, 0], draw + 2) * (height - h + 1)).long()
    x = (torch_rng.uniform(keys[:, 0], draw + 3) * (width - w + 1)).long()
    return torch.where(found, y, 0), torch.where(found, x, 0), h, w


@register_op("random_erasing")
class RandomErasingOnDevice(DeviceOperation):
    """torchvision v2 ``RandomErasing`` per image on the device batch — ``random_erasing``
    in ``image.device.ops`` (same parameters, same draws: on uint8 input the same bytes as
    the CPU backend), for pipelines that erase after the boundary or after ``normalize``.

    Parameters: ``random_erasing``'s, with these meanings on the device: ``value`` a level
    0..255 is in the images' units (a grey level for uint8, used as is for normalized
    floats), "mean" is the image's per-channel mean (rounded for uint8), "random" per-pixel
    N(0, 1) — as torchvision on normalized floats, mapped to pixels (ImageNet mean + std *
    z, rounded, clipped) on uint8 like the CPU op; with ``count`` > 1 later rectangles
    overwrite earlier ones.

    Randomness: the CPU backend's — its gate (``random_erasing.gate``: draw 0 of the kernel
    key ``derive(sample_key, 1)``), erasure k from draw 1 + 64k of the kernel key. (Same
    bytes unless torch's float64 exp/log/cos, which may differ from
    libm's in the last bit, lands exactly on a rounding boundary.)

    Cost: the batch is erased in place (no output buffer, no copy); only the boxes' pixels
    are written, by one indexed store per rectangle index k, and only "mean" reads the
    erased images (their float64 channel sums); "random" hashes the boxes' pixels only.
    """

    def __init__(self, scale: AreaRange = (0.02, 0.33), ratio: AspectRange = (0.3, 3.3),
                 value: EraseValue = "zero", count: Count = 1, p: Probability = 0.5):
        super().__init__()

    def for_target(self, target):
        return None  # erasing changes the image only, as torchvision v2's

    def jit_equivalent(self, image: ImageType):
        """The CPU backend with this op's parameters, stream and draws, for images
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
        # it only writes the boxes, after reading nothing: the batch in place, no copy ("mean"
        # reads the image again for each rectangle, so it keeps a buffer)
        twin.in_place = value != "mean"
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
        keys = torch_rng.derive(self.sample_keys(indices), 1)  # the kernel keys
        erased = self.fires(indices, self.params["p"], random_erasing.gate).nonzero()[:, 0]
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
                self._erase_with_noise(out, erased, torch_rng.derive(keys, k), y, x, h, w)
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
        z = torch_rng.normal(noise_keys[which].view(-1, 1), local.view(-1, 1) * c + channel)
        if not out.is_floating_point():
            shift = torch.tensor(NOISE_MEAN, dtype=torch.float64, device=device)[channel % 3]
            spread = torch.tensor(NOISE_STD, dtype=torch.float64, device=device)[channel % 3]
            z = torch.clamp(torch.round(shift + spread * z), 0, 255)
        out[image, :, row, col] = z.to(out.dtype)


register_alias("device_random_erasing", "random_erasing", stage="device")
