"""A target's pipeline (``operations.targets``), derived from the image's planned steps:
each step's op says what it does to the target (``for_target``), so the target follows the
image through the same crops, warps and flips, fused as the image's were, and stays away from
colour, erasing and the like. Then the transfer (ToTensor, ToDevice) and ``TargetBatch``.
"""
from typing import List

import torch
from ffcv.transforms import ToDevice, ToTensor

from operations.device.stage import TargetBatch
from operations.targets import Target
from operations.types import OpTypeError

from .errors import ErrorList, Pos, first_line
from .ir import Plan, Step


def plan_targets(plan: Plan, targets: List[Target], split_pos: Pos, errors: ErrorList) -> None:
    """Fill ``plan.targets`` (and each image step's ``moves``); an op that cannot move a
    target, or does not say, is an error at the op (one per target)."""
    for target in targets:
        steps = []
        for step in plan.steps + plan.batch:
            if step.stage == "boundary":
                continue
            try:
                op = _for_target(step, target)
            except OpTypeError as exc:
                errors.add(_pos_of(step, split_pos), first_line(exc))
                break
            if op is None:
                continue
            step.moves += (target.name,)
            steps.append(Step(step.name, op, step.stage, step.pos, step.position,
                              jit=step.stage in ("decoder", "cpu"), parts=step.parts))
        else:
            plan.targets[target.name] = _with_transfer(steps, plan.device, target)


def _for_target(step: Step, target: Target):
    if hasattr(step.op, "for_target"):
        return step.op.for_target(target)
    raise OpTypeError(f"'{step.name}' is a raw FFCV operation, which does not say what it "
                      f"does to {target.kind} targets; remove the target or write it as a "
                      f"pureffcv op (docs/custom-ops.md)")


def _pos_of(step: Step, split_pos: Pos) -> Pos:
    if step.pos is not None:
        return step.pos
    return next((part.pos for part in step.parts if part.pos is not None), split_pos)


def _with_transfer(steps: List[Step], device: str, target: Target) -> List[Step]:
    """The JIT steps, the transfer to ``device``, the device steps, then ``TargetBatch``."""
    transfer = [Step("to_tensor", ToTensor(), "boundary")]
    if device != "cpu":
        transfer.append(Step("to_device", ToDevice(torch.device(device), non_blocking=True),
                             "boundary"))
    jit = [s for s in steps if s.jit]
    later = [s for s in steps if not s.jit]
    decoder = steps[0].op  # every decoder decodes targets too
    return jit + transfer + later + [Step("target_batch", TargetBatch(decoder, target), "boundary")]
