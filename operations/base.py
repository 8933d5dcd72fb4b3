"""The contract between an op and the planner: a stage, one parameter mechanism, keyed
randomness, and the small protocols the compiler's passes ask ops through."""
import functools
import inspect
from dataclasses import replace
from typing import Any, Callable, ClassVar, Dict, Literal, NamedTuple, Optional, Tuple

import numpy as np
import torch

from .ffcv_api import AllocationQuery, Compiler, Operation, State
from .params import constraints_of
from .rng import GATE_DRAW, EpochClock
from .targets import not_declared
from .types import ImageType, storage_dtype

#: Where a step runs. decoder: first step of the image field (JIT, CPU); cpu: a Numba op on
#: per-sample numpy arrays; device: a torch op on the batch after ToDevice; batch: a torch op
#: on (images, labels) applied after the loader (mixup, cutmix).
Stage = Literal["decoder", "cpu", "device", "batch"]


class Gate(NamedTuple):
    """Where an op's probability ``p`` is drawn: draw ``draw`` of the sample key, or of the
    kernel key (``derive(sample key, 1)``) when ``on_kernel_key``. Every op uses the default
    except where its docstring names its draws otherwise (torchvision's RandomErasing draws
    its p first, as draw 0 of its own key)."""

    on_kernel_key: bool = False
    draw: int = GATE_DRAW


#: The gates the built-in ops use, spelled once (an op names its gate in its declaration,
#: and its device backend reads it from there): the default, on the sample key;
SAMPLE_KEY_GATE = Gate()
#: torchvision's RandomSolarize, RandomPosterize, RandomGrayscale, ... draw p on the op's key;
OWN_KEY_GATE = Gate(on_kernel_key=True)
#: torchvision's RandomErasing draws its p first: draw 0 of the op's own key.
FIRST_DRAW_GATE = Gate(on_kernel_key=True, draw=0)


class FusionPart(NamedTuple):
    """What an op offers a fusion pass (``PureOperation.fusion_part``).

    ``family`` is "point_map" or "affine". ``form`` says what ``function`` returns for one
    image, from the kernel key ``rng`` and ``args`` (the op's parameters in signature order):
    "lut" ``(rng, *args) -> uint8[256]`` for every channel; "channel_luts" ``(hist, rng,
    *args) -> uint8[channels, 256]`` from the input's histograms; "matrix" ``(height, width,
    rng, *args) -> float64[2, 3]``, the output-to-input matrix of a warp that uncovers pixels
    with ``fill`` (None for warps that never uncover any: flips)."""

    family: str
    form: str
    function: Callable
    args: tuple
    p: float
    gate: Gate
    fill: Any = None


def plain(value):
    """YAML lists become tuples (Numba-typable, hashable)."""
    if isinstance(value, list):
        return tuple(plain(v) for v in value)
    return value


def resolved(annotation, value):
    """A named constant (``mean: imagenet``) becomes its value, so ops see numbers."""
    for constraint in constraints_of(annotation):
        value = constraint.convert(value)
    return plain(value)


def _binding_init(init: Callable) -> Callable:
    """Wrap an op's ``__init__`` so that the outermost call binds its arguments against the
    op's ``signature()``, once: defaults applied, named constants resolved, lists as tuples,
    stored in ``self.params``; ``init`` then runs on those values. Calls from subclasses'
    ``super()`` pass through."""
    @functools.wraps(init)
    def __init__(self, *args, **values):
        if "params" in self.__dict__:  # an inner super().__init__: bound already
            return init(self, *args, **values)
        signature = type(self).signature()
        bound = signature.bind(self, *args, **values)
        bound.apply_defaults()
        self.params = {name: resolved(signature.parameters[name].annotation, value)
                       for name, value in list(bound.arguments.items())[1:]
                       if signature.parameters[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                              inspect.Parameter.KEYWORD_ONLY)}
        init(self, **self.params)

    __init__.binds_params = True
    return __init__


class Parameterized:
    """One parameter mechanism for every op (kernel ops, class ops, decoders, device and batch
    ops): the annotated ``__init__`` signature is the schema the validator checks; the bound
    values live in ``self.params``; ``repr`` shows them."""

    params: Dict[str, Any] = {}
    #: False for ops the compiler builds from other ops (a target's steps): no spec values
    #: to bind, no parameters
    from_spec: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and cls.from_spec and not getattr(init, "binds_params", False):
            cls.__init__ = _binding_init(init)

    @classmethod
    def signature(cls) -> inspect.Signature:
        """The signature values are bound against (``self`` first): ``__init__``'s, unless a
        class says otherwise (a declared op's is its declaration's)."""
        return inspect.signature(cls.__init__)

    @classmethod
    def parameters(cls) -> Dict[str, inspect.Parameter]:
        """The user-facing parameters: name -> inspect.Parameter (what a spec may set)."""
        sig = cls.signature()
        return {n: p for n, p in sig.parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class PureOperation(Parameterized, Operation):
    """An FFCV Operation the planner can type-check and seed.

    Subclasses set ``stage``, take their parameters as keyword arguments of ``__init__``
    (annotated: the compiler validates spec values against the signature; bound values are
    in ``self.params``) and override ``output_type`` when they change size, dtype or layout.
    The protocol methods below default to "not offered"."""

    stage: ClassVar[str] = "cpu"
    #: defaults until the compiler binds the op: seed 0, epoch 0, stream 0
    clock: EpochClock = EpochClock()
    position: int = 0
    #: where the op was written, ``FILE:LINE:COL: op 'name'`` (the compiler sets it; a
    #: kernel error starts with it: ``operations.kernel_errors``)
    origin: str = ""
    _applier = None  # (compiled batch function, takes indices) once ``apply`` has run

    def __init__(self):
        Operation.__init__(self)

    def bind(self, clock: EpochClock, position: int) -> None:
        """Attach the pipeline's seed/epoch clock and this op's position (its RNG stream)."""
        self.clock = clock
        self.position = position
        self._applier = None  # generated code depends on the binding

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        """The type this op produces from ``image``; raise OpTypeError if it cannot accept it."""
        return image

    # --- protocols the passes use ---------------------------------------------------------

    def fusion_part(self) -> Optional[FusionPart]:
        """This op as part of a fused point map or warp, or None."""
        return None

    def absorb(self, other: "PureOperation") -> Optional["PureOperation"]:
        """One op doing ``self`` and the adjacent ``other`` (in either order: they commute),
        with both ops' draws, or None when the two do not fuse."""
        return None

    def jit_equivalent(self, image: ImageType) -> Optional["PureOperation"]:
        """For a device op taking images of type ``image``: the same work, same draws and
        same bytes, as a per-sample JIT op (what a CPU device runs in FFCV's parallel stage
        instead), or None."""
        return None

    def for_target(self, target) -> Optional["PureOperation"]:
        """What this op does to ``target`` (an ``operations.targets.Target``): an op for the
        target's pipeline drawing as this one draws, or None when it changes the image only.
        Raises OpTypeError when it cannot keep the target in step, or, as here, does not say."""
        raise not_declared(getattr(type(self), "op_name", type(self).__name__), target)

    # --- FFCV ------------------------------------------------------------------------------

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        """FFCV's hook, derived from ``output_type`` for per-sample CPU ops."""
        out = self.output_type(image_type_of_state(previous_state))
        dtype = storage_dtype(out.dtype)
        return (replace(previous_state, jit_mode=True, shape=out.sample_shape, dtype=dtype),
                AllocationQuery(out.sample_shape, dtype))

    def apply(self, images: np.ndarray, indices: Optional[np.ndarray] = None) -> np.ndarray:
        """Run this CPU op on a numpy batch (N, H, W, C) outside a Loader, with the same
        code and the same draws a Loader would use (tests, previews, the DataLoader fallback).
        ``indices`` are the samples' data-set indices (default 0..N-1)."""
        if indices is None:
            indices = np.arange(len(images), dtype=np.int64)
        images = np.ascontiguousarray(images)  # kernels walk flat views (operations/cpu/pixels)
        state = State(jit_mode=True, device=torch.device("cpu"), shape=images.shape[1:], dtype=images.dtype)
        _, query = self.declare_state_and_memory(state)
        if query is None:  # an op writing its input: give it a copy (the caller's stays)
            images, dst = images.copy(), None
        else:
            dst = np.empty((len(images),) + tuple(query.shape), dtype=query.dtype)
        if self._applier is None:  # compile once per op and binding
            code = self.generate_code()
            fn = Compiler.compile(code) if self.stage == "cpu" else code
            self._applier = (fn, getattr(code, "with_indices", False))
        fn, with_indices = self._applier
        if with_indices:
            return fn(images, dst, np.asarray(indices, dtype=np.int64))
        return fn(images, dst)


class StepOf(PureOperation):
    """A step the compiler builds from an image op (a target's steps): it takes the op's
    clock, position and origin, and has no spec parameters."""

    from_spec = False

    def __init__(self, of: PureOperation):
        self.params = {}
        super().__init__()
        self.bind(of.clock, of.position)
        self.origin = of.origin

    @classmethod
    def signature(cls) -> inspect.Signature:
        return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


class KeepsShape:
    """A mixin for steps whose output has their input's shape and dtype (a target's warp):
    FFCV's hook without an image type."""

    def declare_state_and_memory(self, previous_state: State):
        shape, dtype = tuple(previous_state.shape), np.dtype(previous_state.dtype)
        return (previous_state, AllocationQuery(shape, dtype))


def image_type_of_state(state: State) -> ImageType:
    """Our ImageType for an FFCV State in the JIT stage (per-sample HWC numpy)."""
    h, w, c = (tuple(state.shape) + (None, None, 3))[:3] if state.shape else (None, None, 3)
    return ImageType(height=h, width=w, channels=c, dtype=np.dtype(state.dtype).name,
                     layout="HWC", device="cpu", jit=True)


def state_of(image: Optional[ImageType]) -> State:
    """The FFCV State of a step's input ``image`` (a first step's when None), to ask an op
    that only speaks FFCV what it produces."""
    if image is None:
        return State(jit_mode=True, device=torch.device("cpu"), shape=(), dtype=np.dtype("uint8"))
    if image.jit:
        return State(True, torch.device("cpu"), image.sample_shape, storage_dtype(image.dtype))
    dtype = getattr(torch, image.dtype)
    return State(False, torch.device(image.device), image.sample_shape, dtype)
