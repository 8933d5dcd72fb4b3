"""pureffcv compiler: YAML spec -> validated Spec -> stage plan -> CompiledPipeline.
Knows YAML, the op registry and FFCV's State; nothing of Lightning."""
from .compiled import CompiledPipeline, compile_spec, resolve_device
from .errors import Pos, SpecError, SpecErrors
from .ir import Plan, Step
from .reader import load_spec
from .spec import Spec

__all__ = ["CompiledPipeline", "compile_spec", "resolve_device", "Pos", "SpecError",
           "SpecErrors", "Plan", "Step", "Spec", "load_spec"]
