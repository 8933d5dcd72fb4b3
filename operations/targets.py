"""Targets: what travels with an image through a pipeline (a segmentation mask, boxes,
keypoints) and what each op does to them.

A target is its own FFCV pipeline over its own .beton field. It moves with the image because
every draw is a pure function of (seed, epoch, sample, op position): a target's step draws
with the key, gate and parameters of the image op it follows, so it makes the same decisions
without exchanging anything with the image pipeline.

Ops answer one question, ``op.for_target(target)`` (``base.PureOperation``):

- an op for the target's pipeline (crops, warps, flips: the same draws applied to the target);
- ``None``: the op changes the image only (colour, point maps, filters, erasing);
- ``OpTypeError``: the op cannot keep this target in step (mixup), or does not say.

Declared ops answer from their declaration (``authoring``): a warp moves every target by its
matrix, a table changes the image only, a kernel says ``targets=IMAGE_ONLY`` or gives a
kernel per target kind.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, Union

from .types import OpTypeError

#: a kernel op's declaration for ops that change the image only (``cpu_op(targets=...)``)
IMAGE_ONLY = "image only"

#: what a ``cpu_op`` declares about targets: ``IMAGE_ONLY``, or per kind a kernel
#: ``(target_in, target_out, rng, fill, *params)`` drawing as the image kernel draws
TargetDeclaration = Union[str, Dict[str, Callable]]


#: the kinds of target and what each is
TARGET_KINDS = {
    "mask": "a per-pixel class map (uint8 or uint16) the size of the image",
    "boxes": "a varying number of boxes per image, each with a class label",
    "keypoints": "a varying number of instances per image, each a fixed number of (x, y) "
                 "points with a visibility",
}


@dataclass(frozen=True)
class Target:
    """One target of a split: its output ``name``, ``kind`` (``TARGET_KINDS``), the .beton
    ``field`` it is read from, and its kind's options:

    - masks: ``fill``, the value written where a warp uncovers pixels (the mask's
      ``ignore_index``), and ``num_classes`` (None: not checked);
    - boxes: the output ``box_format`` (``xyxy``, ``xywh``, ``cxcywh``), ``normalized``
      (coordinates divided by the image's width and height), and the rules a box must pass
      to stay valid: ``min_area`` (px^2), ``min_visibility`` (share of its area left after
      every clip), ``min_size`` (px, both sides);
    - keypoints: ``flip_pairs``, the point indices a mirror swaps (left and right)."""

    name: str
    kind: str
    field: str
    fill: int = 255
    num_classes: Optional[int] = None
    box_format: str = "xyxy"
    normalized: bool = False
    min_area: float = 0.0
    min_visibility: float = 0.0
    min_size: float = 0.0
    flip_pairs: Tuple[Tuple[int, int], ...] = ()

    def describe(self) -> str:
        """The kind and its options in a few words (``explain``)."""
        if self.kind == "mask":
            return f"mask, fill {self.fill}"
        if self.kind == "boxes":
            units = "normalized" if self.normalized else "pixels"
            return (f"boxes, {self.box_format} {units}, min_area {self.min_area:g}, "
                    f"min_visibility {self.min_visibility:g}, min_size {self.min_size:g}")
        pairs = ", ".join(f"{a}<->{b}" for a, b in self.flip_pairs) or "none"
        return f"keypoints, mirror swaps {pairs}"


def not_declared(op_name: str, target: Target) -> OpTypeError:
    """The error of an op that does not say what it does to ``target``'s kind."""
    return OpTypeError(f"'{op_name}' does not declare what it does to {target.kind} targets "
                       f"(target '{target.name}'); remove the target or the op, or declare it "
                       f"(docs/targets.md, 'Custom ops and targets')")

