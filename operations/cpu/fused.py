"""Fused CPU steps, built by the compiler's passes: a run of point maps as one lookup table per
channel, a run of affine ops as one warp. Neither is a registered op: the planner creates them
from the parts' ``fusion_part()`` (``base.FusionPart``), so any op declared with
``authoring.point_map``, ``channel_map`` or ``affine`` — a custom one too — fuses.

Per image, each part draws with its own key and gate exactly as it would alone (its position's
stream, the sample key, ``derive(key, 1)`` for its maths), so fusing keeps every draw.
"""
from typing import Sequence

import numpy as np
from numba import njit

from ..batch_loop import epoch_streams, gate_check
from ..base import KeepsShape, PureOperation
from ..ffcv_api import uncompiled
from ..kernel_errors import check_failure, raise_replayed
from ..pointers import ENTRY_FLAGS, by_pointer, replay
from ..rng import derive, sample_key
from .pixels import apply_channel_luts, channel_histograms, identity_luts
from .target_warps import TARGET_WARPS, pixel_canvas
from .warp import affine_warp


# ---------------------------------------------------------------- composing, per pixel

@njit
def remapped_histograms(hist, luts):
    """The channel histograms of an image with histograms ``hist`` after ``luts``."""
    out = np.zeros_like(hist)
    for k in range(hist.shape[0]):
        for v in range(256):
            out[k, luts[k, v]] += hist[k, v]
    return out


@njit
def then_lut(luts, lut):
    """``luts`` followed by ``lut`` (the same table for every channel), in place."""
    for k in range(luts.shape[0]):
        for v in range(256):
            luts[k, v] = lut[luts[k, v]]


@njit
def then_luts(luts, second):
    """``luts`` followed by the per-channel tables ``second``, in place."""
    for k in range(luts.shape[0]):
        for v in range(256):
            luts[k, v] = second[k, luts[k, v]]


@njit
def then_warp(matrix, inner):
    """``matrix`` (output -> input of the warps so far) after one more warp whose inverse is
    ``inner``: ``matrix @ inner`` as 3x3 affine maps, in place, summed left to right."""
    for row in range(2):
        p, q, r = matrix[row, 0], matrix[row, 1], matrix[row, 2]
        matrix[row, 0] = p * inner[0, 0] + q * inner[1, 0]
        matrix[row, 1] = p * inner[0, 1] + q * inner[1, 1]
        matrix[row, 2] = p * inner[0, 2] + q * inner[1, 2] + r


@njit
def identity_matrix():
    """The warp that changes nothing (the start of a fused chain)."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


# ---------------------------------------------------------------- the fused steps

class FusedChain(PureOperation):
    """A run of consecutive CPU ops of one fusion family executed as one step; each part
    keeps its own RNG stream (its position) and draws, and all share one EpochClock.

    Per image, a chain of njit links (one per part: its key, gate and draws) builds a
    "table" — what each subclass composes — and one pass applies it. Subclasses give
    ``part_step(part)`` (njit ``step(table, context, rng)`` adding one part),
    ``table_builder(chain)`` (njit ``table_of(image, keys, index)``) and ``table_applier()``
    (njit ``apply(src, dst, table)``)."""

    stage = "cpu"
    family: str = ""

    def __init__(self, parts: Sequence[PureOperation]):
        super().__init__()
        self.parts = tuple(parts)
        for op in self.parts:
            part = op.fusion_part()
            if part is None or part.family != self.family:
                raise ValueError(f"{op!r} cannot be part of a {type(self).__name__}")
        if len({id(op.clock) for op in self.parts}) != 1:
            raise ValueError("the parts of a fused step must share one EpochClock")
        self.clock = self.parts[0].clock

    @property
    def origin(self) -> str:
        """Where the parts were written (a kernel error names them all)."""
        return " + ".join(getattr(op, "origin", "") or type(op).__name__ for op in self.parts)

    def output_type(self, image):
        for op in self.parts:
            image = op.output_type(image)
        return image

    def generate_code(self):
        positions = [op.position for op in self.parts]
        chain = _done
        for k in reversed(range(len(self.parts))):  # each part's link calls the next one
            part = self.parts[k].fusion_part()
            chain = _link(k, gate_check(part.p, part.gate), self.part_step(part), chain)
        step = _step(self.table_builder(chain), self.table_applier())
        run = by_pointer(step, parallel=True)

        def report(i, arguments):  # arguments: run's
            raise_replayed(self, arguments[3][i], lambda: replay(step, i, arguments))

        def apply(images, dst, indices):
            arguments = (images.shape[0], images, dst, indices,
                         epoch_streams(self.clock, positions))
            check_failure(run(*arguments), report, arguments)
            return dst[:images.shape[0]]

        apply.with_indices = True
        return uncompiled(apply)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self.parts))})"


class FusedLut(FusedChain):
    """Consecutive per-channel point maps (brightness, solarize, posterize, invert,
    autocontrast, equalize, ...) as one uint8[channels, 256] table per image, applied in one
    pixel pass (plus one histogram pass if a part needs histograms).

    Per image, each part builds its own table with its own key, draws and gate; the tables
    compose in order; a histogram-based part sees its input's histograms, computed as the
    image's histograms remapped through the tables so far. The result is byte-identical to
    running the parts one after another."""

    family = "point_map"

    def for_target(self, target):
        return None  # tables change the image only

    def part_step(self, part):
        function, args = part.function, part.args
        if part.form == "lut":
            @njit
            def step(luts, hist, rng):
                then_lut(luts, function(rng, *args))
        else:
            @njit
            def step(luts, hist, rng):
                then_luts(luts, function(remapped_histograms(hist, luts), rng, *args))
        return step

    def table_builder(self, chain):
        histograms = any(op.fusion_part().form == "channel_luts" for op in self.parts)

        @njit(fastmath=False)  # exact maths below, as in the kernels (see declared.op_class)
        def table_of(image, keys, index):
            channels = image.shape[2]
            hist = channel_histograms(image) if histograms else np.zeros((channels, 256), np.int64)
            luts = identity_luts(channels)
            chain(luts, hist, keys, index)
            return luts

        return table_of

    def table_applier(self):
        return apply_channel_luts


class FusedAffine(FusedChain):
    """Consecutive affine ops (flips, pad_crop, translate, rotate, shear, random_affine) as
    one nearest-neighbour warp per image by the product of the parts' inverse matrices (each
    drawn with its own key, draws and gate; a part that does not fire contributes the
    identity). The parts must share one ``fill`` (flips have none).

    Deliberate deviation: this is not byte-identical to warping once per part. Sampling once
    rounds once instead of once per part, and content that a part would move out of the frame
    and a later part back in is kept instead of becoming ``fill``. Flips and whole-pixel
    translations compose exactly: flips with at most one whole-pixel shift (pad_crop,
    translate) give the bytes of the parts run in sequence."""

    family = "affine"

    def __init__(self, parts: Sequence[PureOperation]):
        super().__init__(parts)
        fills = {op.fusion_part().fill for op in self.parts} - {None}
        if len(fills) > 1:
            raise ValueError(f"the parts of a fused warp must share one fill, "
                             f"got {sorted(map(str, fills))}")
        self.fill = fills.pop() if fills else 0

    #: how the composed matrix is applied (PIL's sampling on images; targets:
    #: ``target_warps``) and the canvas size the parts draw for
    warp = staticmethod(affine_warp)
    canvas = staticmethod(pixel_canvas)

    def for_target(self, target):
        """The same composed warp on the target (one warp for the whole run, as on the
        image)."""
        return FusedTargetWarp(self.parts, target)

    def part_step(self, part):
        function, args = part.function, part.args

        @njit
        def step(matrix, size, rng):
            then_warp(matrix, function(size[0], size[1], rng, *args))
        return step

    def table_builder(self, chain):
        size_of = self.canvas

        @njit(fastmath=False)  # exact maths below, as in the kernels (see declared.op_class)
        def table_of(image, keys, index):
            matrix = identity_matrix()
            chain(matrix, size_of(image), keys, index)
            return matrix

        return table_of

    def table_applier(self):
        fill, sample = self.fill, self.warp

        @njit(fastmath=False)
        def warp(src, dst, matrix):
            sample(src, dst, matrix, fill)

        return warp


class FusedTargetWarp(KeepsShape, FusedAffine):
    """A fused warp on a target: the same parts and draws, the composed matrix applied as
    ``target_warps`` moves the target's kind, with the target's fill."""

    def __init__(self, parts: Sequence[PureOperation], target):
        super().__init__(parts)
        self.fill = target.fill
        self.canvas, self.warp = TARGET_WARPS[target.kind]


# ---------------------------------------------------------------- code generation

def _step(table_of, apply_table):
    """njit ``step(i, images, dst, indices, keys)`` for image i: its table from the chain
    and one pass applying it; run in parallel through its cached C entry
    (``pointers.by_pointer``), so FFCV's closure stays thin."""
    @njit(**ENTRY_FLAGS)
    def step(i, images, dst, indices, keys):
        apply_table(images[i], dst[i], table_of(images[i], keys, indices[i]))

    return step


@njit
def _done(table, context, keys, index):
    """The end of a chain of links."""


def _link(k: int, fires, step, rest):
    """njit ``link(table, context, keys, index)``: part ``k``'s sample key and gate
    (``batch_loop.gate_check``), ``step(table, context, rng)`` with the kernel key
    ``derive(key, 1)``, then the ``rest`` of the chain."""
    @njit
    def link(table, context, keys, index):
        key = sample_key(keys[k], index)
        kernel_key = derive(key, 1)
        if fires(key, kernel_key):
            step(table, context, kernel_key)
        rest(table, context, keys, index)

    return link
