"""Plan -> the pipelines dict ``ffcv.loader.Loader`` takes."""
from typing import Dict, List, Optional

import torch
from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
from ffcv.pipeline import PipelineSpec
from ffcv.transforms import Squeeze, ToDevice, ToTensor

from .ir import Plan


def lower(plan: Plan, image_field: str = "image", label=None) -> Dict[str, object]:
    """``{'image': ..., 'label': ...}``: the plan's image steps in order, and the label
    pipeline: for ``int`` labels IntDecoder -> ToTensor -> Squeeze -> ToDevice (int64 of shape
    (B,)); for ``multi_hot`` / ``float`` vectors NDArrayDecoder -> ToTensor -> ToDevice ((B, C)
    in the stored dtype). The outputs are always called ``image`` and ``label``; when the
    spec reads other .beton fields (``image: {field: img}``, ``label: {field: target}``) they
    are FFCV ``PipelineSpec``s with those fields as sources."""
    label_field = "label" if label is None else label.field
    kind = "int" if label is None else label.type
    image = [step.op for step in plan.steps]
    target = label_pipeline(plan.device, kind)
    return {"image": image if image_field == "image" else PipelineSpec(image_field,
                                                                         transforms=image),
            "label": target if label_field == "label" else PipelineSpec(label_field,
                                                                          transforms=target)}


def per_loader(pipelines: Dict[str, object]) -> Dict[str, object]:
    """A copy of ``pipelines`` that one Loader may consume: FFCV's Loader pops the decoder off
    the op list it is given (``PipelineSpec.accept_decoder``), so a second Loader built from
    the same lists would silently decode with FFCV's default decoder instead (full-size
    images, no crop). The ops themselves are shared."""
    def copy(pipeline):
        if isinstance(pipeline, PipelineSpec):
            return PipelineSpec(pipeline.source, decoder=pipeline.decoder,
                                transforms=list(pipeline.transforms))
        return None if pipeline is None else list(pipeline)

    return {name: copy(pipeline) for name, pipeline in pipelines.items()}


def label_pipeline(device: str, kind: str = "int") -> List:
    to_device = ToDevice(torch.device(device), non_blocking=True)
    if kind == "int":
        return [IntDecoder(), ToTensor(), Squeeze(1), to_device]
    return [NDArrayDecoder(), ToTensor(), to_device]


def source_fields(pipelines: Dict[str, object]) -> List[str]:
    """The .beton fields a pipelines dict reads (a PipelineSpec's source, else its key)."""
    fields = []
    for name, pipeline in pipelines.items():
        if pipeline is None:
            continue
        source = getattr(pipeline, "source", name)
        fields.append(source if isinstance(source, str) else name)
    return fields


def without_other_fields(pipelines: Dict[str, object], field_names) -> Dict[str, object]:
    """``pipelines`` with every other field of the file switched off (None): FFCV would
    otherwise decode it with its default decoder and add it to every batch."""
    read = set(source_fields(pipelines)) | set(pipelines)
    off: Dict[str, Optional[object]] = {name: None for name in field_names if name not in read}
    for name in field_names:  # a mapped field: read under the output name, not its own
        if name in read and name not in pipelines:
            off[name] = None
    return {**off, **pipelines}
