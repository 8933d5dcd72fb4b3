"""Plan -> the pipelines dict ``ffcv.loader.Loader`` takes."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
from ffcv.pipeline import PipelineSpec
from ffcv.transforms import Squeeze, ToDevice, ToTensor

from operations.targets import Target

from .ir import Plan


def lower(plan: Plan, image_field: str = "image", label=None,
          targets: Sequence[Target] = ()) -> Dict[str, object]:
    """``{'image': ..., 'label': ..., TARGET: ...}``: the plan's image steps in order; the
    label pipeline: for ``int`` labels IntDecoder -> ToTensor -> Squeeze -> ToDevice (int64 of
    shape (B,)), for ``multi_hot`` / ``float`` vectors NDArrayDecoder -> ToTensor -> ToDevice
    ((B, C) in the stored dtype), for ``none`` switched off; then each target's steps, bound
    to the .beton's fields by ``bind_fields``."""
    label_field = "label" if label is None else label.field
    kind = "int" if label is None else label.type
    targets = {t.name: ([step.op for step in plan.targets[t.name]], t.field) for t in targets}
    return bind_fields([step.op for step in plan.steps], label_pipeline(plan.device, kind),
                       image_field, label_field, targets)


def bind_fields(image: Optional[List], label: Optional[List], image_field: str = "image",
                label_field: str = "label",
                targets: Optional[Dict[str, Tuple[List, str]]] = None) -> Dict[str, object]:
    """Op lists for the image, the label and the targets (``{name: (ops, field)}``) as a
    pipelines dict reading the .beton fields ``image_field``, ``label_field`` and the
    targets' fields: the one field resolution every loader uses. The outputs are always
    called ``image``, ``label`` and the targets' names, in that order (``SafeLoader`` keeps
    it whatever the file's field order); a field of another name (``image: {field: img}``)
    is an FFCV ``PipelineSpec`` with that field as its source. A None op list switches the
    output off."""
    def bound(ops, output, field):
        if ops is None or field == output:
            return ops
        return PipelineSpec(field, transforms=ops)

    pipelines = {"image": bound(image, "image", image_field),
                 "label": bound(label, "label", label_field)}
    for name, (ops, field) in (targets or {}).items():
        pipelines[name] = bound(ops, name, field)
    return pipelines


def outputs_of(pipelines: Dict[str, object]) -> Tuple[str, ...]:
    """The names of a batch's elements, in order: the pipelines dict's outputs not off."""
    return tuple(name for name, pipeline in pipelines.items() if pipeline is not None)


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


def label_pipeline(device: str, kind: str = "int") -> Optional[List]:
    if kind == "none":
        return None
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
        source = getattr(pipeline, "source", None) or name
        if isinstance(source, str):  # else another pipeline's op (views): no field of its own
            fields.append(source)
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
