"""The plan IR: a split's pipeline as an explicit list of typed steps, which the planner
builds (``compiler/plan.py``), the passes rewrite (``compiler/passes.py``) and the lowering
turns into FFCV operations (``compiler/lower.py``)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from operations.types import ImageType

from .errors import Pos


@dataclass
class Step:
    """One operation of the image pipeline (or a batch op), with what the planner knows."""

    name: str
    op: Any
    stage: str  # decoder | cpu | boundary | device | batch
    pos: Optional[Pos] = None  # where the spec wrote it (None for the boundary)
    position: Optional[int] = None  # its RNG stream (index in the split's op list)
    jit: bool = False
    input: Optional[ImageType] = None
    output: Optional[ImageType] = None
    parts: Tuple["Step", ...] = ()  # the steps a fusion pass merged into this one
    note: str = ""  # why a pass put it where it is (``explain`` shows it)
    moves: Tuple[str, ...] = ()  # the targets this step moves too (``explain`` shows them)


@dataclass
class Plan:
    """A split's pipeline: image steps in execution order (boundary included), batch steps,
    and each target's steps (``compiler.targets``), by target name."""

    split: str
    device: str
    steps: List[Step]
    batch: List[Step] = field(default_factory=list)
    targets: Dict[str, List[Step]] = field(default_factory=dict)

    def stage(self, *stages: str) -> List[Step]:
        return [s for s in self.steps + self.batch if s.stage in stages]
