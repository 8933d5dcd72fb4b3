"""The rewrite passes ``build_plan`` runs on a typed plan, in order (``compile_spec(...,
optimize=False)`` skips them all). Each keeps every op's draws and makes the pipeline cheaper,
and asks ops only through their protocols (``operations.base.PureOperation``: ``fusion_part``,
``absorb``, ``jit_equivalent``, ``keyed_loop``), never by name:

- ``fuse_point_maps``: consecutive CPU point maps (brightness, solarize, posterize, invert,
  autocontrast, equalize, any op declared with ``point_map``/``channel_map``) become one
  ``FusedLut`` step: one lookup table per channel per image, one pixel pass; byte-identical
  to the ops one by one.
- ``fuse_affine``: consecutive geometric CPU ops (flips, pad_crop, translate, rotate, shear,
  random_affine, any op declared with ``affine``) with one fill become one ``FusedAffine``
  step: one warp by the product of their matrices (one rounding instead of several; see its
  docstring for the deviation).
- ``fuse_adjacent_device_ops``: two adjacent device ops of which one absorbs the other
  (normalize and flip) become one kernel.
- ``lower_device_ops``: on a CPU device, the leading device ops that have a JIT equivalent
  (normalize, normalize_flip, horizontal_flip on uint8, random_erasing on uint8 or with a
  constant: their CPU backends) run per image in FFCV's parallel JIT stage instead of
  serially on the batch; the same bytes. ``explain`` notes why the others stay. When every
  device op lowered, the batch ops that split (``split_for_jit``: mixup, cutmix) mix their
  pairs in the JIT stage too and only their targets stay after the loader: nothing serial is
  left on a CPU device.
- ``chain_into_pairs`` (last, after the targets are planned: ``build_plan`` calls it
  itself): those pairs take the per-sample steps that write their batch (``keyed_loop``:
  the lowered normalize, in-place erasing, and the CPU ops before them that keep the
  image's type) and run them per pair while both images are in cache, one pass over the
  batch instead of one per op; the same bytes.

Measured with benchmarks/fusion_bench.py (64 photo crops of 160 px, one thread, 2-core machine):
five point maps 2,600 -> 7,900 images/s (3.0x), three affine ops 3,300 -> 8,000 (2.4-2.8x).
"""
from dataclasses import replace
from typing import Callable, List, Optional

from operations.cpu.fused import FusedAffine, FusedLut
from operations.device.batch import ChainedPairs, JitPairs
from operations.rng import EpochClock

from .ir import Plan, Step


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
                  parts=tuple(run), note=f"fused: one {fused.family.replace('_', ' ')} pass")
             for run in runs]
    return replace(plan, steps=steps)


def offers(step: Step, protocol: str) -> bool:
    """Whether a step's op speaks ``protocol`` (pureffcv ops do; raw FFCV ops do not)."""
    return callable(getattr(step.op, protocol, None))


def _family(step: Step) -> Optional[str]:
    """The fusion family a JIT CPU step offers, or None."""
    if step.stage != "cpu" or not step.jit or not offers(step, "fusion_part"):
        return None
    part = step.op.fusion_part()
    return None if part is None else part.family


def fuse_point_maps(plan: Plan, clock: EpochClock) -> Plan:
    """Consecutive per-channel point maps -> one FusedLut step (byte-identical)."""
    return fuse_runs(plan, lambda run, step: all(_family(s) == "point_map" for s in run + [step]),
                     FusedLut)


def fuse_affine(plan: Plan, clock: EpochClock) -> Plan:
    """Consecutive affine ops sharing one fill (flips go with any) -> one FusedAffine step."""
    def joins(run: List[Step], step: Step) -> bool:
        if not all(_family(s) == "affine" for s in run + [step]):
            return False
        return len({s.op.fusion_part().fill for s in run + [step]} - {None}) <= 1

    return fuse_runs(plan, joins, FusedAffine)


def fuse_adjacent_device_ops(plan: Plan, clock: EpochClock) -> Plan:
    """Adjacent device ops of which one absorbs the other (``absorb``: normalize and flip,
    either order) become one step running one kernel: one read and one write of the batch
    instead of two each. The fused op draws as the absorbed ones did."""
    steps, i = [], 0
    while i < len(plan.steps):
        pair = plan.steps[i:i + 2]
        fused = None
        if len(pair) == 2 and all(s.stage == "device" and offers(s, "absorb") for s in pair):
            first, second = pair
            fused = first.op.absorb(second.op) or second.op.absorb(first.op)
        if fused is None:
            steps.append(plan.steps[i])
            i += 1
            continue
        steps.append(Step(f"{pair[0].name}+{pair[1].name}", fused, "device", pair[0].pos,
                          fused.position, note="fused: one device kernel"))
        i += 2
    return replace(plan, steps=steps)


def lower_device_ops(plan: Plan, clock: EpochClock) -> Plan:
    """On a CPU device, the device steps right after the boundary that have a JIT equivalent
    move before it, in order, until the first that has none: FFCV runs non-JIT ops in one
    thread after the parallel stage, so each image is then processed in the parallel loop
    while it is in cache (2-core machine, 160 px TrivialAugmentWide policy: normalize ~120 ->
    ~20 us per image). Same tables and draws: bit-identical."""
    if plan.device != "cpu":
        return plan
    boundary = next(i for i, step in enumerate(plan.steps) if step.stage == "boundary")
    head, tail = plan.steps[:boundary], plan.steps[boundary:]
    crossing = [step for step in tail if step.stage == "boundary"]
    after = [step for step in tail if step.stage != "boundary"]
    lowered = []
    for step in after:
        jit = step.op.jit_equivalent(step.input) \
            if step.stage == "device" and offers(step, "jit_equivalent") else None
        if jit is None:
            break
        in_place = ", in place (no buffer, no copy)" if getattr(jit, "in_place", False) else ""
        lowered.append(_noted(replace(step, op=jit, stage="cpu"), "lowered: the device is the "
                              "CPU, so it runs per image in the parallel JIT stage" + in_place))
    staying = after[len(lowered):]
    if staying and staying[0].stage == "device":  # say why the rest stays on the batch
        first = staying[0]
        staying = [_noted(first, f"not lowered: no per-image equivalent with the same bytes "
                                 f"on {first.input.dtype} images, so it runs on the batch")] + \
            [_noted(step, f"not lowered: after {first.name}, which runs on the batch")
             if step.stage == "device" else step for step in staying[1:]]
        return replace(plan, steps=head + lowered + crossing + staying)
    paired, batch = _split_batch_ops(plan.batch)
    return replace(plan, steps=head + lowered + paired + crossing + staying, batch=batch)


def _split_batch_ops(batch: List[Step]):
    """The leading batch steps that split (``split_for_jit``): their image halves as JIT
    steps; the batch steps stay, to complete their batches after the loader."""
    paired, kept = [], []
    for step in batch:
        images = step.op.split_for_jit(step.input) \
            if not kept and offers(step, "split_for_jit") else None
        if images is None:
            if not kept and step.input is not None:
                step = _noted(step, f"not lowered: no pairwise JIT form on {step.input.dtype} "
                                    f"images, so it runs on the batch after the loader")
            kept.append(step)
            continue
        paired.append(Step(f"{step.name}_pairs", images, "cpu", step.pos, step.position,
                           note="lowered: the device is the CPU, so it mixes pairs in the "
                                "parallel JIT stage"))
        kept.append(_noted(step, "only its targets after the loader: the images were mixed "
                                 "in the JIT stage"))
    return paired, kept


def _noted(step: Step, why: str) -> Step:
    return replace(step, note=f"{step.note}; {why}" if step.note else why)


def chain_into_pairs(plan: Plan) -> Plan:
    """A pairwise batch op lowered into the JIT stage (``JitPairs``) takes the per-sample
    steps that write its batch: the one that writes the batch's buffer (on a CPU device the
    lowered normalize), the in-place steps after it (random erasing) and the steps before it
    that keep the image's type (trivial_augment_wide: they write per-pair scratch), as one
    ``ChainedPairs`` step that runs them per pair while both images are in cache. Only steps
    that move no target (targets are planned before, from the separate steps) and that say
    what they run per sample (``keyed_loop``). Same kernels and draws: bit-identical."""
    steps = plan.steps
    at = next((i for i, s in enumerate(steps) if isinstance(s.op, JitPairs)), None)
    if at is None or steps[at].moves:
        return plan
    start = at
    while start > 0 and _chainable(steps[start - 1]) and steps[start - 1].op.keyed_loop().in_place:
        start -= 1
    if start == 0 or not _chainable(steps[start - 1]):
        return plan
    start -= 1  # the step writing the buffer the others run on
    while start > 0 and _chainable(steps[start - 1]) and _keeps_type(steps[start - 1]):
        start -= 1  # it writes per-pair scratch of its input's kind
    run, pairs = steps[start:at], steps[at]
    chained = Step("+".join(s.name for s in run + [pairs]),
                   ChainedPairs(tuple(s.op for s in run), pairs.op), "cpu", run[0].pos,
                   run[0].position, jit=True, input=run[0].input, output=pairs.output,
                   parts=tuple(run + [pairs]),
                   note=f"chained: per pair of images, {', '.join(s.name for s in run)} then "
                        f"the mixing, while both are in cache (one pass over the batch)")
    return replace(plan, steps=steps[:start] + [chained] + steps[at + 1:])


def _keeps_type(step: Step) -> bool:
    """Whether ``step``'s output has its input's shape and dtype (trivial_augment_wide)."""
    return step.input == step.output


def _chainable(step: Step) -> bool:
    """A JIT step ``chain_into_pairs`` may take: per-sample (``keyed_loop``), moving no target."""
    return step.stage == "cpu" and not step.moves and hasattr(step.op, "keyed_loop")


PASSES: List[Callable[[Plan, EpochClock], Plan]] = [fuse_point_maps, fuse_affine,
                                                     fuse_adjacent_device_ops, lower_device_ops]
