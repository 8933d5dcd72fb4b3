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
    in the stored dtype), bound to the .beton's fields by ``bind_fields``."""
    label_field = "label" if label is None else label.field
    kind = "int" if label is None else label.type
    return bind_fields([step.op for step in plan.steps], label_pipeline(plan.device, kind),
                       image_field, label_field)


def bind_fields(image: Optional[List], label: Optional[List], image_field: str = "image",
                label_field: str = "label") -> Dict[str, object]:
    """Op lists for the image and the label as a pipelines dict reading the .beton fields
    ``image_field`` and ``label_field``: the one field resolution every loader uses. The
    outputs are always called ``image`` and ``label``; a field of another name
    (``image: {field: img}``) is an FFCV ``PipelineSpec`` with that field as its source. A
    None op list switches the output off."""
    def bound(ops, output, field):
        if ops is None or field == output:
            return ops
        return PipelineSpec(field, transforms=ops)

    return {"image": bound(image, "image", image_field),
            "label": bound(label, "label", label_field)}


def ops_of(pipeline) -> List:
    """The op list of one pipelines-dict entry (a list or a ``PipelineSpec``)."""
    if pipeline is None:
        return []
    return list(pipeline.transforms) if isinstance(pipeline, PipelineSpec) else list(pipeline)


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
