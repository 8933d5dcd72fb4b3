"""Views (``image.views``): several crops of one image, each with its own ops, from one decode.

Each copy of each view is planned as an image pipeline of its own (``build_plan``: types,
fusions, the fused device normalize + flip) whose RNG streams start at ``view_stream(view,
copy)``, so every copy draws from keys holding its view's name and its index. The lowering
then puts one ``ViewsDecoder`` at the root of all of them: FFCV pipelines whose source is
that decoder (``PipelineSpec(source=decoder)``), each starting with its copy's ``ViewCrop``.
Where every copy's next step is its CPU-lowered normalize (+ flip) in one dtype
(``finishes_in_decode``), the decoder runs those too, while each resized copy is in cache.
A batch's elements are the copies in order (``VIEW_0``, ``VIEW_1``, ..., then ``label``);
``group_views`` turns them into ``{view: [one tensor per copy]}``.
"""
import zlib
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from ffcv.pipeline import PipelineSpec

from operations.cpu.view_decoders import ViewsDecoder, can_finish, can_start_a_view, view_crops
from operations.rng import EpochClock

from .errors import ErrorList
from .ir import Plan
from .plan import build_plan
from .spec import SplitSpec, ViewSpec

#: the ops one copy may have (its positions are ``view_stream`` + 0 .. OPS_PER_COPY - 1)
OPS_PER_COPY = 1 << 12
#: the copies one view may have (``spec.MAX_VIEW_COPIES`` fits)
COPIES_PER_VIEW = 1 << 8


def view_stream(view: str, copy: int) -> int:
    """The RNG stream position of copy ``copy`` of view ``view``'s first op (its crop); its
    other ops take the next positions. A function of the view's name and the copy's index
    only, so adding a view or reordering them changes no other view's draws."""
    return (zlib.crc32(view.encode()) * COPIES_PER_VIEW + copy) * OPS_PER_COPY


@dataclass
class ViewCopy:
    """One copy of one view: its name in a batch and its plan."""

    view: str
    copy: int
    plan: Plan

    @property
    def output(self) -> str:
        """Its element's name in a batch: ``VIEW_COPY`` (``global_0``)."""
        return f"{self.view}_{self.copy}"


def plan_views(split: SplitSpec, device: str, clock: EpochClock,
               optimize: bool = True) -> List[ViewCopy]:
    """Every copy of every view of ``split``, planned; raise SpecErrors (a view that does not
    start with a crop the shared decode can serve, or a problem in a view's ops)."""
    errors = ErrorList()
    for view in split.views:
        decode = view.image.decode
        if not can_start_a_view(decode.op_class):
            errors.add(decode.pos, f"view '{view.name}' decodes with '{decode.name}'; a view "
                                   f"starts with a crop of the shared decode: "
                                   f"random_resized_crop, center_crop or resize")
    errors.raise_if_any()
    copies = []
    for view in split.views:
        alone = _as_split(split, view)
        for copy in range(view.count):
            plan = build_plan(alone, device, clock, optimize,
                              first_position=view_stream(view.name, copy))
            plan.steps[0].note = "its box, resized out of the shared decode (ViewsDecoder + ViewCrop)"
            copies.append(ViewCopy(view.name, copy, plan))
    if finishes_in_decode(copies):
        for copy in copies:
            copy.plan.steps[1].note = ("run by the shared decode as each copy is resized, "
                                       "while it is in cache")
    return copies


def finishes_in_decode(copies: Sequence[ViewCopy]) -> bool:
    """Whether the shared decode also runs every copy's second step: each is the CPU-lowered
    normalize (+ flip) of a CPU device (``can_finish``), all in one dtype (one output buffer)."""
    seconds = [copy.plan.steps[1].op if len(copy.plan.steps) > 1 else None for copy in copies]
    return (all(can_finish(op) for op in seconds)
            and len({op.params["dtype"] for op in seconds}) == 1)


def _as_split(split: SplitSpec, view: ViewSpec) -> SplitSpec:
    """One view as a split of one image (what ``build_plan`` plans)."""
    return replace(split, name=f"{split.name} view '{view.name}'", image=view.image, batch=(),
                   targets=(), views=())


def lower_views(copies: Sequence[ViewCopy], field: str, clock: EpochClock,
                label: Optional[PipelineSpec]) -> Dict[str, object]:
    """The pipelines dict of a split with views: one pipeline per copy, all fed by one
    ``ViewsDecoder`` reading ``field``, then the label's (None: no label)."""
    crops = [copy.plan.steps[0].op for copy in copies]
    finishes = [copy.plan.steps[1].op for copy in copies] if finishes_in_decode(copies) else None
    rest = 2 if finishes else 1  # the steps each copy's own pipeline runs after its ViewCrop
    decoder = ViewsDecoder(crops, finishes)
    decoder.bind(clock, 0)
    decoder.origin = "the shared decode of the views (" + ", ".join(
        sorted({c.origin for c in crops if c.origin})) + ")"
    pipelines: Dict[str, object] = {}
    for k, (copy, start) in enumerate(zip(copies, view_crops(crops, finishes))):
        ops = [start] + [step.op for step in copy.plan.steps[rest:]]
        pipelines[copy.output] = (PipelineSpec(field, decoder=decoder, transforms=ops) if k == 0
                                  else PipelineSpec(decoder, transforms=ops))
    pipelines["label"] = label
    return pipelines


def group_views(batch: Sequence, copies: Sequence[ViewCopy]) -> Tuple[Dict[str, list], tuple]:
    """A loader's batch of a split with views as ``({view: [tensor per copy]}, rest)``: the
    copies in order under their view's name, then what follows them (the labels)."""
    views: Dict[str, list] = {}
    for copy, tensor in zip(copies, batch):
        views.setdefault(copy.view, []).append(tensor)
    return views, tuple(batch[len(copies):])
