"""Mixup and CutMix on the device batch, with soft (optionally smoothed) targets.

Follows timm's ``Mixup`` in batch mode: each batch is mixed with itself reversed
(``images.flip(0)``), one lambda per batch drawn from Beta(alpha, alpha); CutMix pastes one box
and corrects lambda to the area actually kept; targets are ``lam * onehot(y) + (1 - lam) *
onehot(y.flip(0))`` with timm's label smoothing (off = s / K, on = 1 - s + off), so each row
sums to 1. Randomness is keyed per batch (``operations.device.batch``): draw 0 gates
``mixup_cutmix``'s ``prob``, draw 1 chooses cutmix (``switch_prob``), ``derive(key, 2)`` feeds
the Beta draw and draws 3, 4 place the box. Images are mixed in place, in their own dtype
(no float64, no full-batch temporaries): a batch stays valid only until the next one anyway.

On a CPU device the images are mixed in FFCV's parallel JIT stage instead, pair by pair
(``mix_pair``, through ``BatchOperation.split_for_jit``), with torch.lerp's arithmetic, and
only the targets are made after the loader: the same bytes.
"""
import math
from typing import Annotated, Tuple

import numpy as np
import torch
from numba import njit, types
from numba.extending import intrinsic

from ..cpu.pixels import flat
from ..params import NumClasses, Probability, Range
from ..registry import register_op
from ..host_rng import derive, normal, randint, uniform
from ..types import ImageType
from .batch import BatchOperation, require_float

#: a Beta concentration: > 0
Alpha = Annotated[float, Range(0.0, low_open=True)]
#: a Beta concentration where 0 switches that kind of mixing off
OptionalAlpha = Annotated[float, Range(0.0)]


def log_gamma_variate(key, alpha: float) -> float:
    """log of a Gamma(alpha, 1) draw (Marsaglia-Tsang), from the keyed draws of ``key``:
    normals from derive(key, 0), acceptance uniforms from derive(key, 1), and for alpha < 1
    the boost U**(1/alpha) from derive(key, 2). Kept in logs so tiny alphas cannot underflow."""
    boost = 0.0
    if alpha < 1.0:
        boost = math.log(1.0 - uniform(derive(key, 2), 0)) / alpha
        alpha += 1.0
    d = alpha - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    normals, uniforms = derive(key, 0), derive(key, 1)
    attempt = 0
    while True:
        x = normal(normals, attempt)
        v = (1.0 + c * x) ** 3
        u = 1.0 - uniform(uniforms, attempt)  # in (0, 1]
        attempt += 1
        if v > 0.0 and math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return math.log(d * v) + boost


def beta(key, alpha: float) -> float:
    """A Beta(alpha, alpha) draw: X / (X + Y) for Gamma draws X (derive(key, 0)) and Y
    (derive(key, 1))."""
    log_x = log_gamma_variate(derive(key, 0), alpha)
    log_y = log_gamma_variate(derive(key, 1), alpha)
    return 1.0 / (1.0 + math.exp(min(log_y - log_x, 700.0)))


def cutmix_box(key, lam: float, height: int, width: int) -> Tuple[int, int, int, int]:
    """timm's ``rand_bbox``: a box of sides int(H*sqrt(1-lam)) x int(W*sqrt(1-lam)) centred
    at a uniform pixel (draws 3, 4), clipped to the image: ``(y0, y1, x0, x1)``."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = randint(key, 3, 0, height), randint(key, 4, 0, width)
    return (min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height),
            min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width))


def mixed_targets(labels: torch.Tensor, lam: float, num_classes: int,
                  smoothing: float) -> torch.Tensor:
    """(B, num_classes) float32 soft targets: lam * smoothed onehot(labels) + (1 - lam) *
    smoothed onehot(labels reversed); smoothing as timm: off = s / K, on = 1 - s + off."""
    labels = labels.reshape(-1).long()
    off = smoothing / num_classes
    onehot = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32,
                        device=labels.device)
    onehot.scatter_(1, labels[:, None], 1.0 - smoothing + off)
    return onehot * lam + onehot.flip(0) * (1.0 - lam)


def all_pairs_at_once(images: torch.Tensor) -> bool:
    """Whether to mix every pair in one step (a GPU: a few kernel launches per batch, with two
    half-batch temporaries) rather than one pair at a time (the CPU: one image of scratch that
    stays in cache, but ~3 launches per pair, ~96 per batch of 64, on a GPU)."""
    return images.device.type != "cpu"


def _partners(images: torch.Tensor) -> torch.Tensor:
    """Indices of the second half's images, pair (i, B-1-i) by pair: B-1, B-2, ..."""
    b = images.shape[0]
    return torch.arange(b - 1, b - 1 - b // 2, -1, device=images.device)


def mixup_in_place(images: torch.Tensor, lam: float) -> None:
    """``images = lam * images + (1 - lam) * images.flip(0)`` in place, in the images' dtype
    (an odd batch's middle image is its own partner and stays as is). Each value is
    ``torch.lerp(partner, image, lam)``, the out-of-place mix's exact arithmetic, whichever
    way ``all_pairs_at_once`` chooses: on a GPU all pairs through two half-batch temporaries,
    on the CPU one pair at a time through one image of scratch, 5x faster there than the
    former 16-pair chunks through ``flip`` copies (80 against 411 us per 224 px float32 image,
    one thread: ``benchmarks/device_batch_ops_bench.py``)."""
    b = images.shape[0]
    if all_pairs_at_once(images):
        front, partners = images[:b // 2], _partners(images)
        back = images.index_select(0, partners)
        mixed_back = torch.lerp(front, back, lam)
        torch.lerp(back, front, lam, out=front)
        images.index_copy_(0, partners, mixed_back)
        return
    scratch = torch.empty_like(images[0])
    for i in range(b // 2):
        image, partner = images[i], images[b - 1 - i]
        scratch.copy_(image)
        torch.lerp(partner, scratch, lam, out=image)
        torch.lerp(scratch, partner, lam, out=partner)


def swap_with_partners(boxes: torch.Tensor) -> None:
    """``boxes[:] = boxes.flip(0)`` in place (a view of the batch): all pairs at once or one
    at a time through one box of scratch (``all_pairs_at_once``)."""
    b = boxes.shape[0]
    if all_pairs_at_once(boxes):
        front, partners = boxes[:b // 2], _partners(boxes)
        back = boxes.index_select(0, partners)
        boxes.index_copy_(0, partners, front.clone())
        front.copy_(back)
        return
    scratch = torch.empty_like(boxes[0])
    for i in range(b // 2):
        box, partner = boxes[i], boxes[b - 1 - i]
        scratch.copy_(box)
        box.copy_(partner)
        partner.copy_(scratch)


#: a batch's decision (``_Mix.decide``): float64 numbers at these places
CUTMIX, LAM, Y0, Y1, X0, X1 = range(6)


@intrinsic
def fma32(typingctx, a, b, c):
    """float32 ``a * b + c`` rounded once (what torch's vectorised CPU lerp computes)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(inline="always")
def lerp32(start, end, weight, small, coeff):
    """``torch.lerp(start, end, weight)`` of float32 values as torch's vectorised CPU kernel
    computes it: fma(coeff, end - start, start if |weight| < 0.5 else end), coeff = weight
    or weight - 1."""
    return fma32(coeff, end - start, start if small else end)


@njit
def mix_pair(i, images, decision):
    """``_Mix.apply_decision`` for the pair (i, B-1-i) of a float32 (B, H, W, C) batch, in
    place: cutmix swaps their boxes, mixup blends both with ``lerp32`` (torch.lerp's bytes)."""
    size, height, width, channels = images.shape
    j = size - 1 - i
    if decision[CUTMIX] != 0.0:
        y0, y1, x0, x1 = int(decision[Y0]), int(decision[Y1]), int(decision[X0]), int(decision[X1])
        a, b = flat(images[i]), flat(images[j])
        run = np.uint64((x1 - x0) * channels)
        for y in range(y0, y1):
            # unsigned indices into flat views: no wraparound test per value (2.2x faster)
            start = np.uint64((y * width + x0) * channels)
            for k in range(start, start + run):
                a[k], b[k] = b[k], a[k]
        return
    if decision[LAM] >= 1.0:
        return
    weight = np.float32(decision[LAM])
    small = abs(weight) < np.float32(0.5)
    coeff = weight if small else weight - np.float32(1.0)
    count = height * width * channels
    a, b = images[i].reshape(count), images[j].reshape(count)
    for k in range(count):
        image, partner = a[k], b[k]
        a[k] = lerp32(partner, image, weight, small, coeff)
        b[k] = lerp32(image, partner, weight, small, coeff)


class _Mix(BatchOperation):
    """Shared by the three mixing ops: each chooses mixup or cutmix and lambda from the
    batch's key (``choose``); the decision, the images' mixing and the targets follow."""

    pair_kernel = staticmethod(mix_pair)

    def output_type(self, image: ImageType) -> ImageType:
        require_float(self.op_name, image)
        return image

    def choose(self, key) -> Tuple[bool, float]:
        """(cutmix, lam) for the batch of ``key``; lam 1.0: no mixing."""
        raise NotImplementedError

    def decide(self, key, height: int, width: int) -> np.ndarray:
        """[cutmix, lam, y0, y1, x0, x1]: cutmix's box (``cutmix_box``) and lam corrected to
        the kept area, or mixup's lam (no box)."""
        cutmix, lam = self.choose(key)
        if not cutmix:
            return np.array([0.0, lam, 0, 0, 0, 0])
        y0, y1, x0, x1 = cutmix_box(key, lam, height, width)
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
        return np.array([1.0, lam, y0, y1, x0, x1])

    def apply_decision(self, images: torch.Tensor, decision: np.ndarray) -> torch.Tensor:
        """Mix (B, C, H, W) images in place as ``decision`` says."""
        if decision[CUTMIX]:
            y0, y1, x0, x1 = (int(v) for v in decision[Y0:])
            swap_with_partners(images[..., y0:y1, x0:x1])
        elif decision[LAM] < 1.0:
            mixup_in_place(images, float(decision[LAM]))
        return images

    def targets(self, labels: torch.Tensor, decision: np.ndarray) -> torch.Tensor:
        return mixed_targets(labels, float(decision[LAM]), self.params["num_classes"],
                             self.params["label_smoothing"])


@register_op("mixup")
class Mixup(_Mix):
    """Mixup (Zhang et al.; timm's Mixup with cutmix off): every batch becomes
    ``lam * images + (1 - lam) * images.flip(0)`` with lam ~ Beta(alpha, alpha) per batch.

    - ``num_classes``: number of classes, >= 1 (required).
    - ``alpha``: Beta concentration, > 0, default 1.0.
    - ``label_smoothing``: in [0, 1], default 0.1 (timm's default).
    """

    def __init__(self, *, num_classes: NumClasses, alpha: Alpha = 1.0,
                 label_smoothing: Probability = 0.1):
        pass  # bound in self.params

    def choose(self, key):
        return False, beta(derive(key, 2), self.params["alpha"])


@register_op("cutmix")
class Cutmix(_Mix):
    """CutMix (Yun et al.; timm's Mixup with mixup off): every batch gets one box (see
    ``cutmix_box``) pasted from ``images.flip(0)``; lam ~ Beta(alpha, alpha) sets the box size
    and is then corrected to the kept area, 1 - box area / image area (timm's correct_lam).

    - ``num_classes``: number of classes, >= 1 (required).
    - ``alpha``: Beta concentration, > 0, default 1.0.
    - ``label_smoothing``: in [0, 1], default 0.1.
    """

    def __init__(self, *, num_classes: NumClasses, alpha: Alpha = 1.0,
                 label_smoothing: Probability = 0.1):
        pass  # bound in self.params

    def choose(self, key):
        return True, beta(derive(key, 2), self.params["alpha"])


@register_op("mixup_cutmix")
class MixupCutmix(_Mix):
    """timm's ``Mixup`` in batch mode: with probability ``prob`` a batch is mixed, by cutmix
    with probability ``switch_prob`` (when both alphas are > 0), else by mixup; an unmixed
    batch keeps its images and gets (smoothed) one-hot targets.

    - ``num_classes``: number of classes, >= 1 (required).
    - ``mixup_alpha``: >= 0, default 0.8; 0 turns mixup off.
    - ``cutmix_alpha``: >= 0, default 1.0; 0 turns cutmix off (not both 0).
    - ``switch_prob``: probability of cutmix when both are on, default 0.5.
    - ``prob``: probability that a batch is mixed at all, default 1.0.
    - ``label_smoothing``: in [0, 1], default 0.1.
    The defaults are DeiT's recipe.
    """

    def __init__(self, *, num_classes: NumClasses, mixup_alpha: OptionalAlpha = 0.8,
                 cutmix_alpha: OptionalAlpha = 1.0, switch_prob: Probability = 0.5,
                 prob: Probability = 1.0, label_smoothing: Probability = 0.1):
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("mixup_cutmix needs mixup_alpha > 0 or cutmix_alpha > 0")

    def choose(self, key):
        if uniform(key, 0) >= self.params["prob"]:
            return False, 1.0
        if self.params["mixup_alpha"] > 0 and self.params["cutmix_alpha"] > 0:
            cutmix = uniform(key, 1) < self.params["switch_prob"]
        else:
            cutmix = self.params["cutmix_alpha"] > 0
        alpha = self.params["cutmix_alpha"] if cutmix else self.params["mixup_alpha"]
        return cutmix, beta(derive(key, 2), alpha)
