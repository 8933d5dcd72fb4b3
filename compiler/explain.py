"""``CompiledPipeline.explain()``: the plan as a table a person can check at a glance."""

from .ir import Step
from .validate import show
from .workers import thread_limit


def runs_on(step: Step) -> str:
    """Where a step runs: jit-parallel (Numba prange over the batch), transfer (the
    boundary), device (torch on the batch), batch (after the loader), python (a non-JIT op)."""
    if step.stage == "boundary":
        return "transfer"
    if step.stage in ("device", "batch"):
        return step.stage
    return "jit-parallel" if step.jit else "python"


def rng_streams(step: Step) -> str:
    """The RNG stream(s) a step draws from: its position, its parts' for a fused step."""
    if step.parts:
        return ",".join(rng_streams(part) for part in step.parts)
    return "-" if step.position is None else str(step.position)


def explain(compiled) -> str:
    plan = compiled.plan
    lines = [f"split '{compiled.split.name}' of {compiled.spec.file}: device {plan.device}, "
             f"seed {compiled.spec.seed}", ""]
    if compiled.views:
        lines += _views(compiled)
    else:
        lines += _table(plan.steps + plan.batch, bool(plan.targets))
    label = " -> ".join(_op_text(op) for op in compiled.label_ops or ()) or "none"
    options = compiled.split.loader
    workers, limit = options.num_workers, thread_limit()
    if workers > limit:
        workers = f"{workers} (this machine runs {limit}: uses {limit})"
    label_from = f", label from '{compiled.label_field}'" if compiled.split.has_label else ""
    lines += ["", f"fields: image from '{compiled.image_field}'{label_from}" +
              "".join(f", {t.name} from '{t.field}'" for t in compiled.targets),
              f"label: {label}"]
    for target in compiled.targets:
        steps = " -> ".join(step.name for step in plan.targets[target.name])
        lines.append(f"{target.name} ({target.describe()}): {steps}")
    lines += [f"loader: batch_size {options.batch_size}, order {options.order}, drop_last "
              f"{show(options.drop_last)}, os_cache {show(options.os_cache)}, num_workers "
              f"{workers}, batches_ahead {options.batches_ahead}, distributed "
              f"{show(options.distributed)}"]
    return "\n".join(lines)


def _table(steps, moves: bool) -> list:
    """One row per step: stage, RNG stream(s), name, op, output type, where it runs
    (``moves``: the targets it moves too), note."""
    header = ("stage", "rng", "step", "op", "output", "runs") + (("moves",) if moves else ()) + \
        ("note",)
    rows = [header]
    for step in steps:
        output = step.output.describe() if step.output is not None else "-"
        touched = ((",".join(step.moves) or "-",) if moves else ())
        rows.append((step.stage, rng_streams(step), step.name,
                     type(step.op).__name__, output, runs_on(step)) + touched + (step.note,))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _views(compiled) -> list:
    """The shared decode, then each view copy's steps (its first step crops its box out of
    the shared decode)."""
    copies = compiled.views
    lines = [f"shared decode: one per image for all {len(copies)} view copies (ViewsDecoder): "
             f"every copy's box drawn, their union decoded once (crop-aware, at the largest "
             f"DCT scale any copy needs); each copy's first step resizes its box out of it"]
    for copy in copies:
        lines += ["", f"view '{copy.view}' copy {copy.copy} -> batch element '{copy.output}'"]
        lines += ["  " + line for line in _table(copy.plan.steps, False)]
    return lines


def _op_text(op) -> str:
    device = getattr(op, "device", None)
    return f"{type(op).__name__}({device})" if device is not None else type(op).__name__


