"""The plan: an explicit, typed list of steps per stage, and the passes that rewrite it.

``build_plan`` instantiates a split's ops, checks that each sits in a section that matches its
stage, inserts the boundary (ToTensor -> ToDevice -> ToTorchImage; no ToDevice on the CPU),
tracks the ImageType through every step and refuses what FFCV would hang on, crash on or
silently mishandle. Passes then rewrite the step list (``compiler/passes.py``: colour LUT and
affine fusion, device normalize + flip, normalize in the JIT stage on the CPU) before it is
lowered. The plan itself (Plan, Step) is the IR of ``compiler/ir.py``.
"""
from typing import List, Optional

import torch
from ffcv.pipeline.state import State
from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

from operations.base import state_of
from operations.rng import EpochClock
from operations.boundary import Float16FromBits
from operations.device.stage import dtype_name
from operations.registry import backends
from operations.types import ImageType, OpTypeError

from .errors import ErrorList, first_line
from .ir import Plan, Step
from .passes import PASSES, chain_into_pairs
from .raw_ops import check_raw_ops
from .spec import SECTIONS, OpSpec, SplitSpec
from .targets import plan_targets
from .validate import op_params

#: where each stage's ops are written in a split
SECTION_OF_STAGE = {"decoder": "image.decode", "cpu": "image.cpu", "device": "image.device.ops",
                    "batch": "batch"}
STAGE_WORDS = {"decoder": "a decoder", "cpu": "a CPU (Numba) op", "device": "a device (torch) op",
               "batch": "a batch op (it needs images and labels together)"}


def build_plan(split: SplitSpec, device: str, clock: EpochClock, optimize: bool = True,
               first_position: int = 0) -> Plan:
    """Instantiate, place, type-check and (``optimize``) rewrite a split's ops with the
    passes of ``compiler/passes.py``; raise SpecErrors. The ops' RNG streams are their
    positions in the split's op list, from ``first_position`` on."""
    errors = ErrorList()
    steps = []
    for position, spec in enumerate(split.ops(), start=first_position):
        _check_section(spec, errors)
        op = _instantiate(spec, split.image.dtype, errors)
        if op is None:
            continue
        if hasattr(op, "bind"):
            op.bind(clock, position)
            op.origin = f"{spec.pos}: op '{spec.name}'"  # what a kernel error names
        steps.append(Step(spec.name, op, spec.stage, spec.pos, position,
                          note=backend_note(spec)))
    errors.raise_if_any()
    image = [s for s in steps if s.stage in ("decoder", "cpu")] + boundary(device) + \
            [s for s in steps if s.stage == "device"]
    plan = Plan(split.name, device, image, [s for s in steps if s.stage == "batch"])
    annotate_types(plan, errors)
    errors.raise_if_any()
    if optimize:
        for rewrite in PASSES:  # each sees the types of the plan before it
            plan = rewrite(plan, clock)
            annotate_types(plan, errors)
    _read_float16_bits(plan)
    annotate_types(plan, errors)
    check_raw_ops(plan, errors)
    plan_targets(plan, [t.target() for t in split.targets], split.pos, errors)
    errors.raise_if_any()
    return chain_into_pairs(plan) if optimize else plan


def backend_note(spec: OpSpec) -> str:
    """Which backend of an op that has several runs, and why (``explain`` shows it)."""
    name = getattr(spec.op_class, "op_name", None)
    if name is None or ":" in spec.name or len(backends(name)) < 2:
        return ""
    return f"{spec.stage} backend: written in {SECTION_OF_STAGE[spec.stage]}"


def boundary(device: str) -> List[Step]:
    """The transfer from the JIT stage to the device: FFCV's own three ops. On the CPU the
    batch is already there, so there is no ToDevice (it would copy it into a second buffer)."""
    transfer = [] if device == "cpu" else [
        Step("to_device", ToDevice(torch.device(device), non_blocking=True), "boundary")]
    return ([Step("to_tensor", ToTensor(), "boundary")] + transfer +
            [Step("to_torch_image", ToTorchImage(channels_last=True), "boundary")])


def _read_float16_bits(plan: Plan) -> None:
    """float16 leaves the JIT stage as uint16 bit patterns (Numba has no float16): after
    ToTensor, view them as float16 again."""
    for i, step in enumerate(plan.steps):
        if step.name == "to_tensor" and step.input.dtype == "float16":
            plan.steps.insert(i + 1, Step("float16_from_bits", Float16FromBits(), "boundary"))
            return


def _check_section(spec: OpSpec, errors: ErrorList) -> None:
    expected = SECTIONS[spec.section]
    if spec.stage == expected:
        return
    if spec.stage not in SECTION_OF_STAGE:
        errors.add(spec.pos, f"'{spec.name}' has unknown stage '{spec.stage}'; an op's stage is "
                             f"decoder, cpu, device or batch")
        return
    reason = ""
    if spec.stage == "cpu" and expected == "device":
        reason = " (a Numba op after the transfer to the device makes FFCV's Loader hang)"
    elif spec.stage == "device" and expected in ("decoder", "cpu"):
        reason = " (torch ops run after the transfer to the device)"
    errors.add(spec.pos, f"'{spec.name}' is {STAGE_WORDS[spec.stage]} and cannot be in "
                         f"{SECTION_OF_STAGE[expected]}{reason}; put it under "
                         f"{SECTION_OF_STAGE[spec.stage]}")


def _instantiate(spec: OpSpec, device_dtype: str, errors: ErrorList):
    """The op object; device ops with a ``dtype`` left unset get the device section's dtype."""
    params = dict(spec.params)
    if spec.stage == "device" and "dtype" in op_params(spec.op_class) and params.get("dtype") is None:
        params["dtype"] = device_dtype
    try:
        return spec.op_class(**params)
    except Exception as exc:  # the op's own check of its values
        errors.add(spec.pos, f"'{spec.name}': {first_line(exc)}")
        return None


# --- types -------------------------------------------------------------------------------

def annotate_types(plan: Plan, errors: ErrorList) -> None:
    """Fill each step's input/output ImageType and JIT-ness; report steps that cannot take
    their input, JIT steps after a non-JIT step (FFCV hangs) and bfloat16 on the CPU."""
    current: Optional[ImageType] = None
    first_non_jit: Optional[Step] = None
    for step in plan.steps + plan.batch:
        step.input = current
        try:
            step.output, step.jit = output_of(step, current)
        except OpTypeError as exc:  # its message names the op, in the user's words
            message = first_line(exc)
            named = f"'{step.name}'" in message or f"'{getattr(type(step.op), 'op_name', None)}'" in message
            errors.add(step.pos, message if named else f"'{step.name}': {message}")
            return
        except Exception as exc:  # a custom op's output_type with a bug: still no traceback
            errors.add(step.pos, f"'{step.name}': output_type failed: {type(exc).__name__}: "
                                 f"{first_line(exc)}")
            return
        if step.stage == "batch":
            continue
        if step.jit and first_non_jit is not None:
            culprit = first_non_jit.name + (f" (line {first_non_jit.pos.line})" if first_non_jit.pos else "")
            errors.add(step.pos, f"'{step.name}' is a JIT (Numba) op after the non-JIT step "
                                 f"'{culprit}'; FFCV's Loader would hang forever building this "
                                 f"pipeline (ffcv #113, #350): put every JIT op before it")
            return
        if not step.jit and first_non_jit is None:
            first_non_jit = step
        if step.jit and step.output.dtype == "bfloat16":
            errors.add(step.pos, f"'{step.name}': bfloat16 exists only on the device; use "
                                 f"float16 or float32 before the transfer, or convert in image.device")
            return
        current = step.output


def output_of(step: Step, image: Optional[ImageType]):
    """(output ImageType, runs JIT) of one step on ``image``."""
    if step.name == "to_tensor" and isinstance(step.op, ToTensor):
        return image.but(jit=False), False
    if isinstance(step.op, ToDevice):
        return image.but(device=str(step.op.device), jit=False), False
    if isinstance(step.op, ToTorchImage):
        return image.but(layout="channels_last", jit=False), False
    if hasattr(step.op, "output_type"):
        out = step.op.output_type(image)
        return out, step.stage in ("decoder", "cpu")
    if step.stage == "batch":  # not an FFCV Operation: it keeps the images' type
        return image, False
    return _derived_type(step, image)


def _derived_type(step: Step, image: Optional[ImageType]):
    """A raw FFCV Operation's output, from its declare_state_and_memory on a synthetic State."""
    state = state_of(image)
    try:
        new_state, _ = step.op.declare_state_and_memory(state)
    except Exception as exc:
        if step.stage == "decoder":  # decoders need the data set's metadata: size unknown
            return ImageType(None, None), True
        raise OpTypeError(f"cannot tell what this op produces ({type(exc).__name__}: "
                          f"{first_line(exc)}); give it an output_type method") from None
    return _type_of(new_state, image), bool(new_state.jit_mode)


def _type_of(state: State, previous: Optional[ImageType]) -> ImageType:
    dtype = dtype_name(state.dtype)
    layout = "HWC" if state.jit_mode or previous is None else previous.layout
    shape = tuple(state.shape) if state.shape else (None, None, 3)
    h, w, c = shape if layout == "HWC" else (shape[1], shape[2], shape[0])
    return ImageType(h, w, c, dtype, layout, str(state.device), bool(state.jit_mode))
