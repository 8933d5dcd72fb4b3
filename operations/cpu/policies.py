"""Automatic augmentation policies — TrivialAugmentWide, RandAugment, AutoAugment (ImageNet) —
kept as data, the way timm's ``auto_augment.py`` keeps them.

An augmentation *space* is a table of ``SpaceOp(name, first, last, signed, per_side)`` (DALI's
``mag_range`` idea): the op's magnitude is linear from ``first`` (bin 0) to ``last`` (bin
num_bins - 1), gets a random sign when ``signed``, and is a fraction of the image side when
``per_side``. ``name`` is an entry of ``policy_ops.POLICY_OPS``, which says what a
magnitude does to an image with the family modules' maths (timm's ``LEVEL_TO_ARG`` idea);
``compile_space`` turns a space into the float table the kernels read, and
``apply_policy_op`` is built from ``POLICY_OPS`` (no op codes written by hand). Adding an op
to a space is one ``SpaceOp`` line. The values are torchvision v2's ``_AUGMENTATION_SPACE``
tables, which pin what a magnitude means:

- ShearX/ShearY: m is tan(shear angle); sheared about the top-left corner (torchvision passes
  ``center=[0, 0]``), nearest neighbour, uncovered pixels ``fill``;
- TranslateX/TranslateY: int(m) pixels (truncated toward zero);
- Rotate: m degrees counter-clockwise about the image centre;
- Brightness/Color/Contrast/Sharpness: PIL enhancement factor 1 + m;
- Posterize: m bits (rounded half to even in the table); Solarize: threshold m in 0..255
  (torchvision: 255 x a [1, 0] linspace); AutoContrast/Equalize/Invert/Identity: no magnitude.

Deviations
from torchvision: nearest-neighbour sampling is PIL's (``geometry.affine_warp``); colour
rounding is PIL's (``tone``); magnitudes are exact float64 instead of torch's float32 linspace,
so e.g. TrivialAugmentWide's solarize threshold at bin 2 is exactly 238 (PIL inverts 238),
where torchvision's is 238.000001 (and does not).
"""
from typing import Annotated, Literal, NamedTuple

import numpy as np
from numba import njit

from ..authoring import cpu_op
from ..params import MAX_COUNT, Range
from ..registry import register_op
from ..rng import randint, uniform
from ..types import OpTypeError, requires_uint8
from .pixels import copy_pixels
from .policy_ops import OP_NAMES, POLICY_OPS, apply_policy_op, move_target
from .target_warps import TARGET_WARPS, pixel_canvas
from .values import Fill

class SpaceOp(NamedTuple):
    """One op of an augmentation space and its magnitude range (see the module doc)."""

    name: str
    first: float = 0.0
    last: float = 0.0
    signed: bool = False
    per_side: bool = False


#: torchvision's TrivialAugmentWide space (14 ops)
TRIVIAL_AUGMENT_WIDE = (
    SpaceOp("Identity"),
    SpaceOp("ShearX", 0.0, 0.99, signed=True),
    SpaceOp("ShearY", 0.0, 0.99, signed=True),
    SpaceOp("TranslateX", 0.0, 32.0, signed=True),
    SpaceOp("TranslateY", 0.0, 32.0, signed=True),
    SpaceOp("Rotate", 0.0, 135.0, signed=True),
    SpaceOp("Brightness", 0.0, 0.99, signed=True),
    SpaceOp("Color", 0.0, 0.99, signed=True),
    SpaceOp("Contrast", 0.0, 0.99, signed=True),
    SpaceOp("Sharpness", 0.0, 0.99, signed=True),
    SpaceOp("Posterize", 8.0, 2.0),
    SpaceOp("Solarize", 255.0, 0.0),
    SpaceOp("AutoContrast"),
    SpaceOp("Equalize"),
)

#: torchvision's RandAugment space (14 ops); translation is up to 150/331 of the side
RAND_AUGMENT = (
    SpaceOp("Identity"),
    SpaceOp("ShearX", 0.0, 0.3, signed=True),
    SpaceOp("ShearY", 0.0, 0.3, signed=True),
    SpaceOp("TranslateX", 0.0, 150.0 / 331.0, signed=True, per_side=True),
    SpaceOp("TranslateY", 0.0, 150.0 / 331.0, signed=True, per_side=True),
    SpaceOp("Rotate", 0.0, 30.0, signed=True),
    SpaceOp("Brightness", 0.0, 0.9, signed=True),
    SpaceOp("Color", 0.0, 0.9, signed=True),
    SpaceOp("Contrast", 0.0, 0.9, signed=True),
    SpaceOp("Sharpness", 0.0, 0.9, signed=True),
    SpaceOp("Posterize", 8.0, 4.0),
    SpaceOp("Solarize", 255.0, 0.0),
    SpaceOp("AutoContrast"),
    SpaceOp("Equalize"),
)

#: torchvision's AutoAugment space: RandAugment's without Identity, plus Invert; 10 bins
AUTO_AUGMENT = RAND_AUGMENT[1:] + (SpaceOp("Invert"),)
AUTO_AUGMENT_BINS = 10

#: AutoAugment's ImageNet policy (Cubuk et al. 2019, torchvision's table): 25 sub-policies of
#: two (op, probability, magnitude bin or None) steps
AUTO_AUGMENT_IMAGENET = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

# ---------------------------------------------------------------- tables as arrays for Numba

#: columns of a compiled space; SIDE: 0 none, 1 width, 2 height
CODE, FIRST, LAST, SIGNED, SIDE, ROUNDED = range(6)
SIDES = {None: 0, "width": 1, "height": 2}


def compile_space(space) -> np.ndarray:
    """A float64 [ops, 6] array (CODE, FIRST, LAST, SIGNED, SIDE, ROUNDED) that kernels read."""
    rows = []
    for op in space:
        action = POLICY_OPS[op.name]
        rows.append((OP_NAMES.index(op.name), op.first, op.last, op.signed,
                     SIDES[action.side] if op.per_side else 0, action.rounded))
    return np.array(rows, dtype=np.float64)


def compile_policy(policy, space):
    """Three [sub-policies, steps] arrays: the step's row in ``space``, its probability, and
    its magnitude bin (-1 for none)."""
    names = [op.name for op in space]
    rows = np.array([[names.index(name) for name, _, _ in sub] for sub in policy], np.int64)
    probs = np.array([[prob for _, prob, _ in sub] for sub in policy], np.float64)
    bins = np.array([[-1 if b is None else b for _, _, b in sub] for sub in policy], np.int64)
    return rows, probs, bins


TRIVIAL_AUGMENT_WIDE_TABLE = compile_space(TRIVIAL_AUGMENT_WIDE)
RAND_AUGMENT_TABLE = compile_space(RAND_AUGMENT)
AUTO_AUGMENT_TABLE = compile_space(AUTO_AUGMENT)
IMAGENET_ROWS, IMAGENET_PROBS, IMAGENET_BINS = compile_policy(AUTO_AUGMENT_IMAGENET, AUTO_AUGMENT)


@njit
def op_magnitude(entry, bin, num_bins, sign, height, width):
    """The magnitude of a compiled space ``entry`` at ``bin`` of ``num_bins``, negated when the
    op is signed and ``sign`` < 0; fractions of a side become pixels of that side."""
    m = entry[FIRST] + (entry[LAST] - entry[FIRST]) * bin / (num_bins - 1)
    if entry[ROUNDED]:
        m = np.rint(m)  # torchvision: .round() (half to even)
    if entry[SIDE]:
        m *= width if entry[SIDE] == 1 else height
    if entry[SIGNED] and sign < 0:
        m = -m
    return m


def magnitudes(space, num_bins: int, height: int = 224, width: int = 224) -> np.ndarray:
    """The unsigned magnitude table [ops, num_bins] of ``space`` (for docs and tests)."""
    table = compile_space(space)
    return np.array([[op_magnitude(entry, b, num_bins, 1.0, height, width)
                      for b in range(num_bins)] for entry in table])


@njit(inline='always')
def apply_step(apply_op, step, entry, magnitude, image_in, image_out, scratch, fill):
    """The ``step``-th op of a chain, done by ``apply_op`` (``apply_policy_op`` on the image,
    ``move_target`` on a target): the first reads ``image_in``, later ones the previous
    result (through ``scratch``); every step writes ``image_out``."""
    if step == 0:
        apply_op(int(entry[CODE]), magnitude, image_in, image_out, fill)
    else:
        copy_pixels(image_out, scratch)
        apply_op(int(entry[CODE]), magnitude, scratch, image_out, fill)


# ---------------------------------------------------------------- the policies

def _rand_augment_type(image, num_ops, magnitude, num_magnitude_bins, fill):
    if magnitude >= num_magnitude_bins:
        raise OpTypeError(f"'rand_augment' needs magnitude < num_magnitude_bins (it is a bin "
                          f"index), got {magnitude} with {num_magnitude_bins} bins")
    return requires_uint8("rand_augment", rgb=True)(image)


@njit(inline='always')
def trivial_augment_choice(key, num_bins):
    """TrivialAugmentWide's draws for one image: (op index in TRIVIAL_AUGMENT_WIDE uniform in
    0..13, magnitude bin uniform in 0..num_bins-1, sign -1.0 or 1.0 with probability 1/2)."""
    op = randint(key, 0, 0, len(TRIVIAL_AUGMENT_WIDE_TABLE))
    bin = randint(key, 1, 0, num_bins)
    sign = -1.0 if uniform(key, 2) < 0.5 else 1.0
    return op, bin, sign


def trivial_augment_wide_with(apply_op, canvas=pixel_canvas):
    """TrivialAugmentWide's draws with ``apply_op`` doing the chosen op on the image
    (``apply_policy_op``) or on a target (``move_target[kind]``, which passes the image's
    fill after the parameters, unused: a target moves with its own ``fill``), ``canvas``
    giving the (height, width) the magnitudes are drawn for (``target_warps``)."""
    @njit(fastmath=False)  # as declared maths are (declared.op_class)
    def trivial_augment_wide_kernel(image_in, image_out, rng, fill, num_magnitude_bins, *image_fill):
        op, bin, sign = trivial_augment_choice(rng, num_magnitude_bins)
        entry = TRIVIAL_AUGMENT_WIDE_TABLE[op]
        height, width = canvas(image_in)
        magnitude = op_magnitude(entry, bin, num_magnitude_bins, sign, height, width)
        apply_op(int(entry[CODE]), magnitude, image_in, image_out, fill)

    return trivial_augment_wide_kernel


def rand_augment_with(apply_op, canvas=pixel_canvas):
    """RandAugment's draws with ``apply_op`` doing each op (see ``trivial_augment_wide_with``)."""
    @njit(fastmath=False)  # as declared maths are (declared.op_class)
    def rand_augment_kernel(image_in, image_out, rng, fill, num_ops, magnitude, num_magnitude_bins, *image_fill):
        if num_ops == 0:
            copy_pixels(image_in, image_out)
            return
        scratch = np.empty_like(image_in)
        height, width = canvas(image_in)
        for step in range(num_ops):
            entry = RAND_AUGMENT_TABLE[randint(rng, 2 * step, 0, len(RAND_AUGMENT_TABLE))]
            sign = -1.0 if uniform(rng, 2 * step + 1) < 0.5 else 1.0
            m = op_magnitude(entry, magnitude, num_magnitude_bins, sign, height, width)
            apply_step(apply_op, step, entry, m, image_in, image_out, scratch, fill)

    return rand_augment_kernel


def auto_augment_with(apply_op, canvas=pixel_canvas):
    """AutoAugment's draws with ``apply_op`` doing each step (see ``trivial_augment_wide_with``)."""
    @njit(fastmath=False)  # as declared maths are (declared.op_class)
    def auto_augment_kernel(image_in, image_out, rng, fill, policy, *image_fill):
        sub = randint(rng, 0, 0, len(IMAGENET_ROWS))
        scratch = np.empty_like(image_in)
        height, width = canvas(image_in)
        done = 0
        for j in range(IMAGENET_ROWS.shape[1]):
            if uniform(rng, 1 + 2 * j) > IMAGENET_PROBS[sub, j]:
                continue
            entry = AUTO_AUGMENT_TABLE[IMAGENET_ROWS[sub, j]]
            sign = -1.0 if uniform(rng, 2 + 2 * j) < 0.5 else 1.0
            m = op_magnitude(entry, max(IMAGENET_BINS[sub, j], 0), AUTO_AUGMENT_BINS, sign, height, width)
            apply_step(apply_op, done, entry, m, image_in, image_out, scratch, fill)
            done += 1
        if done == 0:
            copy_pixels(image_in, image_out)

    return auto_augment_kernel


def on_targets(policy_with) -> dict:
    """A policy's target kernels, one per target kind: its draws with ``move_target``."""
    return {kind: policy_with(move_target[kind], how.canvas) for kind, how in TARGET_WARPS.items()}


trivial_augment_wide_image = trivial_augment_wide_with(apply_policy_op)


@register_op("trivial_augment_wide")
@cpu_op(output_type=requires_uint8("trivial_augment_wide", rgb=True),
        targets=on_targets(trivial_augment_wide_with))
def trivial_augment_wide(image_in, image_out, rng,
                         num_magnitude_bins: Annotated[int, Range(2, MAX_COUNT)] = 31, fill: Fill = 0):
    """torchvision TrivialAugmentWide: per image, one of its 14 ops (Identity, ShearX, ShearY,
    TranslateX, TranslateY, Rotate, Brightness, Color, Contrast, Sharpness, Posterize, Solarize,
    AutoContrast, Equalize) uniformly, at a magnitude bin uniform in 0..num_magnitude_bins-1,
    signed ops negated with probability 1/2 (draws 0-2, ``trivial_augment_choice``). Ranges at
    the last bin: shear 0.99, translate 32 px, rotate 135 deg, enhancements 0.99, posterize 2
    bits, solarize 0 (see the module doc for what magnitudes mean and for deviations).

    - ``num_magnitude_bins``: >= 2, default 31.
    - ``fill``: grey level or [r, g, b] for pixels uncovered by geometric ops, default 0.
    - ``p``: probability per image, default 1.0.
    """
    trivial_augment_wide_image(image_in, image_out, rng, fill, num_magnitude_bins)


rand_augment_image = rand_augment_with(apply_policy_op)


@register_op("rand_augment")
@cpu_op(output_type=_rand_augment_type, targets=on_targets(rand_augment_with))
def rand_augment(image_in, image_out, rng, num_ops: Annotated[int, Range(0, MAX_COUNT)] = 2,
                 magnitude: Annotated[int, Range(0, MAX_COUNT)] = 9,
                 num_magnitude_bins: Annotated[int, Range(2, MAX_COUNT)] = 31, fill: Fill = 0):
    """torchvision RandAugment: per image, ``num_ops`` ops applied in sequence, each drawn
    uniformly (with replacement) from its 14 (TrivialAugmentWide's list, draw 2k for step k)
    at the fixed bin ``magnitude`` of ``num_magnitude_bins``, signed ops negated with
    probability 1/2 (draw 2k+1). Pinned to torchvision's meaning: ``magnitude`` is a bin index;
    at bin b of n the magnitude is b/(n-1) of the range shear 0.3, translate 150/331 of the
    side, rotate 30 deg, enhancements 0.9, posterize 8->4 bits, solarize 255->0 (the defaults,
    bin 9 of 31: shear 0.09, translate 13.6% of the side, rotate 9 deg, enhancement factor
    1 +- 0.27, posterize 7 bits, solarize 178.5). The paper's 0..10 scale is not used.

    - ``num_ops``: >= 0, default 2.
    - ``magnitude``: bin index, 0 <= magnitude < num_magnitude_bins, default 9.
    - ``num_magnitude_bins``: >= 2, default 31.
    - ``fill``: grey level or [r, g, b] for pixels uncovered by geometric ops, default 0.
    - ``p``: probability per image, default 1.0.
    """
    rand_augment_image(image_in, image_out, rng, fill, num_ops, magnitude, num_magnitude_bins)


auto_augment_image = auto_augment_with(apply_policy_op)


@register_op("auto_augment")
@cpu_op(output_type=requires_uint8("auto_augment", rgb=True),
        targets=on_targets(auto_augment_with))
def auto_augment(image_in, image_out, rng, policy: Literal["imagenet"] = "imagenet",
                 fill: Fill = 0):
    """torchvision AutoAugment with its ImageNet policy: per image, one of the 25 sub-policies
    uniformly (draw 0); each of its two steps runs with its probability (draw 1 + 2j for step
    j) at its bin of 10 in AutoAugment's space (RandAugment's ranges, plus Invert), signed ops
    negated with probability 1/2 (draw 2 + 2j).

    - ``policy``: "imagenet" (the only one so far; torchvision's CIFAR10/SVHN tables are not
      included).
    - ``fill``: grey level or [r, g, b] for pixels uncovered by geometric ops, default 0.
    - ``p``: probability per image, default 1.0.
    """
    auto_augment_image(image_in, image_out, rng, fill, policy)
