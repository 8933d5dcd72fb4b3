"""Targets: what travels with an image through a pipeline (a segmentation mask today; boxes
and keypoints build on the same mechanism) and what each op does to them.

A target is its own FFCV pipeline over its own .beton field. It moves with the image because
every draw is a pure function of (seed, epoch, sample, op position): a target's step draws
with the key, gate and parameters of the image op it follows, so it makes the same decisions
without exchanging anything with the image pipeline.

Ops answer one question, ``op.for_target(target)`` (``base.PureOperation``):

- an op for the target's pipeline (crops, warps, flips: the same draws applied to the target);
- ``None``: the op changes the image only (colour, point maps, filters, erasing);
- ``OpTypeError``: the op cannot keep this target in step (mixup on masks), or does not say.

Declared ops answer from their declaration (``authoring``): a warp moves every target by its
matrix, a table changes the image only, a kernel says ``targets=IMAGE_ONLY`` or gives a
kernel per target kind.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Union

from .types import OpTypeError

#: a kernel op's declaration for ops that change the image only (``cpu_op(targets=...)``)
IMAGE_ONLY = "image only"

#: what a ``cpu_op`` declares about targets: ``IMAGE_ONLY``, or per kind a kernel
#: ``(target_in, target_out, rng, fill, *params)`` drawing as the image kernel draws
TargetDeclaration = Union[str, Dict[str, Callable]]


@dataclass(frozen=True)
class Target:
    """One target of a split: its output ``name``, ``kind`` (``mask``: a per-pixel class map,
    uint8 or uint16, the size of the image), the .beton ``field`` it is read from, the value
    ``fill`` written where a warp uncovers pixels (a mask's ``ignore_index``), and
    ``num_classes`` (None: not checked)."""

    name: str
    kind: str
    field: str
    fill: int = 255
    num_classes: Optional[int] = None


def not_declared(op_name: str, target: Target) -> OpTypeError:
    """The error of an op that does not say what it does to ``target``'s kind."""
    return OpTypeError(f"'{op_name}' does not declare what it does to {target.kind} targets "
                       f"(target '{target.name}'); remove the target or the op, or declare it "
                       f"(docs/targets.md, 'Custom ops and targets')")

