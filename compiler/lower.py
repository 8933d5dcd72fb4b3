"""Plan -> the pipelines dict ``ffcv.loader.Loader`` takes."""
from typing import Dict, List

import torch
from ffcv.fields.decoders import IntDecoder
from ffcv.transforms import Squeeze, ToDevice, ToTensor

from .ir import Plan


def lower(plan: Plan) -> Dict[str, List]:
    """``{'image': [...], 'label': [...]}``: the plan's image steps in order, and the label
    pipeline IntDecoder -> ToTensor -> Squeeze -> ToDevice (labels as int64 of shape (B,))."""
    return {"image": [step.op for step in plan.steps],
            "label": label_pipeline(plan.device)}


def label_pipeline(device: str) -> List:
    return [IntDecoder(), ToTensor(), Squeeze(1), ToDevice(torch.device(device), non_blocking=True)]
