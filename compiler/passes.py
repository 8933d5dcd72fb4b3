"""The rewrite passes ``build_plan`` runs on a typed plan, in order (``compile_spec(...,
optimize=False)`` skips them all). Each keeps every op's draws and makes the pipeline cheaper:

- ``fuse_point_maps``: consecutive CPU point maps (brightness, solarize, posterize, invert,
  autocontrast, equalize) become one ``FusedLut`` step: one lookup table per channel per image,
  one pixel pass; byte-identical to the ops one by one.
- ``fuse_affine``: consecutive geometric CPU ops (flips, pad_crop, translate, rotate, shear,
  random_affine) with one fill become one ``FusedAffine`` step: one warp by the product of
  their matrices (one rounding instead of several; see its docstring for the deviation).
- ``fuse_normalize_flip``: adjacent device ``normalize`` and ``flip`` become one kernel.
- ``normalize_in_jit_stage``: on a CPU device, a leading device ``normalize``/``normalize_flip``
  runs per image in the JIT stage instead (``JitNormalizeFlip``); bit-identical.

Measured with benchmarks/fusion_bench.py (64 photo crops of 160 px, one thread, 2-core machine):
five point maps 2,600 -> 7,900 images/s (3.0x), three affine ops 3,300 -> 8,000 (2.4-2.8x).
"""
from dataclasses import replace
from typing import Callable, List

from operations.cpu.fused import FusedAffine, FusedLut, fill_of, fusion_kind
from operations.cpu.normalize import JitNormalizeFlip
from operations.device.normalize import fuse_normalize_flip as fuse
from operations.rng import EpochClock

from .plan import Plan, Step, op_name


def fuse_runs(plan: Plan, joins: Callable[[List[Step], Step], bool], fused: Callable) -> Plan:
    """Group the image steps into runs (a step joins the run before it when ``joins(run,
    step)``) and replace each run of two or more by one step running ``fused(ops)``, named
    after its parts (``brightness+solarize``) and keeping them in ``parts``."""
    runs: List[List[Step]] = []
    for step in plan.steps:
        if runs and joins(runs[-1], step):
            runs[-1].append(step)
        else:
            runs.append([step])
    steps = [run[0] if len(run) == 1 else
             Step("+".join(s.name for s in run), fused([s.op for s in run]), "cpu", run[0].pos,
                  parts=tuple(run))
             for run in runs]
    return replace(plan, steps=steps)


def _all(steps: List[Step], kind: str) -> bool:
    return all(s.stage == "cpu" and s.jit and fusion_kind(s.op) == kind for s in steps)


def fuse_point_maps(plan: Plan, clock: EpochClock) -> Plan:
    """Consecutive per-channel point maps -> one FusedLut step (byte-identical)."""
    return fuse_runs(plan, lambda run, step: _all(run + [step], "lut"), FusedLut)


def fuse_affine(plan: Plan, clock: EpochClock) -> Plan:
    """Consecutive affine ops sharing one fill (flips go with any) -> one FusedAffine step."""
    def joins(run: List[Step], step: Step) -> bool:
        fills = {fill_of(s.op) for s in run + [step]} - {None}
        return _all(run + [step], "affine") and len(fills) <= 1

    return fuse_runs(plan, joins, FusedAffine)


def fuse_normalize_flip(plan: Plan, clock: EpochClock) -> Plan:
    """Adjacent device ``normalize`` and ``flip`` (either order; they commute) become one
    step running one kernel: one read and one write of the batch instead of two each."""
    steps, i = [], 0
    while i < len(plan.steps):
        pair = plan.steps[i:i + 2]
        names = [op_name(s) for s in pair]
        if all(s.stage == "device" for s in pair) and sorted(names) == ["flip", "normalize"]:
            normalize, flip = pair if names[0] == "normalize" else pair[::-1]
            fused = fuse(normalize.op, flip.op)  # draws as the flip does, fused or not
            steps.append(Step(f"{pair[0].name}+{pair[1].name}", fused, "device", pair[0].pos,
                              flip.position))
            i += 2
        else:
            steps.append(plan.steps[i])
            i += 1
    return replace(plan, steps=steps)


def normalize_in_jit_stage(plan: Plan, clock: EpochClock) -> Plan:
    """On a CPU device, a first device step ``normalize`` or ``normalize_flip`` to float32 or
    float16 moves before the boundary as ``JitNormalizeFlip``: each image is normalized in
    FFCV's parallel per-sample loop, while it is still in cache, instead of in a serial pass
    over the batch after it (2-core machine, 160 px TrivialAugmentWide policy: ~120 -> ~20 us
    per image). Same table and draws: bit-identical. bfloat16 stays (Numba has no bfloat16)."""
    device_steps = plan.stage("device")
    if plan.device != "cpu" or not device_steps:
        return plan
    first = device_steps[0]
    if op_name(first) not in ("normalize", "normalize_flip") or first.op.dtype == "bfloat16":
        return plan
    moved = replace(first, op=JitNormalizeFlip(first.op), stage="cpu")
    boundary = next(i for i, step in enumerate(plan.steps) if step.stage == "boundary")
    rest = [step for step in plan.steps[boundary:] if step is not first]
    return replace(plan, steps=plan.steps[:boundary] + [moved] + rest)


PASSES: List[Callable[[Plan, EpochClock], Plan]] = [fuse_point_maps, fuse_affine,
                                                     fuse_normalize_flip, normalize_in_jit_stage]
