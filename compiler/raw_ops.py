"""The plan check for raw FFCV Operations (``ffcv.transforms:Cutout``, a hand-written one):
pureffcv ops say what they produce (``output_type``); a raw op only declares an FFCV State,
so after planning its declared State is checked against its place. Each mismatch is a located
compile error instead of a traceback, or a hang, when the Loader first runs:

- FFCV's boundary ops (ToTensor, ToDevice, ToTorchImage) are the planner's: written in a spec
  they would convert a second time;
- in ``image.decode``/``image.cpu`` an op must stay in Numba (JIT) mode, with a numpy dtype
  and an (H, W, C) shape: ToTensor after it takes numpy arrays only;
- in ``image.device.ops`` an op must not ask for JIT mode (FFCV would hang building the
  pipeline), and must stay on the pipeline's device with a (C, H, W) image.
"""
from typing import Optional

import numpy as np
import torch
from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

from operations.base import state_of

from .errors import ErrorList


def check_raw_ops(plan, errors: ErrorList) -> None:
    """Report every raw FFCV op of ``plan`` whose declared State does not fit its place.
    Does nothing when the plan already has errors (its types are then incomplete)."""
    if errors.errors:
        return
    boundary = (ToTensor, ToDevice, ToTorchImage)
    for step in plan.steps:
        if step.pos is None or step.stage not in ("decoder", "cpu", "device") \
                or hasattr(step.op, "output_type"):
            continue  # the planner's own steps and pureffcv ops (they say what they produce)
        if isinstance(step.op, boundary):
            errors.add(step.pos, f"'{step.name}' is part of the CPU-to-device boundary "
                                 f"(ToTensor -> ToDevice -> ToTorchImage), which pureffcv inserts "
                                 f"itself between image.cpu and image.device; remove it")
            continue
        problem = _state_problem(step, plan.device)
        if problem:
            errors.add(step.pos, f"'{step.name}' {problem}")


def _state_problem(step, device: str) -> Optional[str]:
    try:
        state, _ = step.op.declare_state_and_memory(state_of(step.input))
    except Exception:  # a decoder needs the data set's metadata; other ops failed earlier
        return None
    shape = tuple(state.shape) if state.shape is not None else ()
    if step.stage in ("decoder", "cpu"):
        if not state.jit_mode:
            return ("is not a JIT (Numba) op: its declare_state_and_memory leaves JIT mode, so "
                    "FFCV's ToTensor after it would get a torch tensor; a CPU op must keep "
                    "jit_mode=True (or put a torch op under image.device.ops)")
        if not isinstance(state.dtype, np.dtype) and not (
                isinstance(state.dtype, type) and issubclass(state.dtype, np.generic)):
            return (f"declares the dtype {state.dtype!r}, not a numpy dtype; before the transfer "
                    f"to the device images are numpy arrays")
        if step.stage == "cpu" and len(shape) != 3:
            return (f"declares images of shape {shape}; before the transfer to the device an "
                    f"image is (height, width, channels)")
        return None
    if state.jit_mode:
        return ("asks for JIT (Numba) mode after the transfer to the device, which makes FFCV's "
                "Loader hang building the pipeline (ffcv #113, #350); put it under image.cpu")
    if state.device is not None and torch.device(state.device) != torch.device(device):
        return (f"moves images to {state.device} but the pipeline runs on {device}; device ops "
                f"must stay on the pipeline's device")
    if len(shape) != 3:
        return (f"declares images of shape {shape}; after the transfer to the device an image "
                f"is (channels, height, width)")
    return None
