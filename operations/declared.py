"""The op class of a declaration (``authoring``'s forms): the validated signature, the
probability parameter and its gate, the per-image kernel derived from the maths, and the
protocols the passes ask (``fusion_part``). ``authoring`` is what authors call; this module
is what it builds: a ``DeclaredOp`` subclass whose class attributes are the declaration."""
import inspect
from typing import Callable, ClassVar, Optional, Tuple

from numba import njit

from .base import FusionPart, Gate, KeepsShape, PureOperation, StepOf
from .batch_loop import KeyedLoop, keyed_batch_loop
from .cpu.pixels import apply_channel_luts, apply_lut, channel_histograms
from .cpu.values import Fill
from .cpu.target_warps import TARGET_WARPS
from .cpu.warp import affine_warp
from .params import Probability
from .targets import IMAGE_ONLY, TargetDeclaration, not_declared
from .types import ImageType

KERNEL_ARGS = ("image_in", "image_out", "rng")
#: each form's leading arguments (before the parameters) and fusion family
FORMS = {"kernel": (KERNEL_ARGS, None), "lut": (("rng",), "point_map"),
         "channel_luts": (("hist", "rng"), "point_map"),
         "matrix": (("height", "width", "rng"), "affine")}
class DeclaredOp(PureOperation):
    """The op of a declaration. ``op_class`` makes one subclass per declaration that sets
    the class attributes below; the methods read them, so the route of a value is: spec
    value -> ``self.params`` (bound against ``signature()``) -> ``args()`` (the declared
    parameters in order) -> the kernel's arguments after ``image_in, image_out, rng``."""

    stage = "cpu"
    #: the declaration's form (``FORMS``), its maths (njit) and the kernel derived from them
    form: ClassVar[str] = "kernel"
    maths: ClassVar[Callable]
    kernel: ClassVar[Callable]
    #: the declared parameters, in the maths' order (what ``args()`` passes)
    arg_names: ClassVar[Tuple[str, ...]] = ()
    #: where ``p`` is drawn; ``gated`` False: no ``p`` (none declared, or the maths has its own)
    gate: ClassVar[Gate]
    gated: ClassVar[bool] = True
    #: a warp that uncovers pixels has a ``fill`` parameter (passed before the others)
    filled: ClassVar[bool] = False
    declared_output_type: ClassVar[Optional[Callable]] = None
    declared_signature: ClassVar[inspect.Signature]
    #: what the op does to targets: IMAGE_ONLY, per kind a kernel ``(target_in, target_out,
    #: rng, fill, *params)``, or None (not declared). Derived from the form: a table changes
    #: the image only, a warp moves every kind by its matrix (``target_warps``); a kernel's
    #: is its declaration's ``targets``
    declared_targets: ClassVar[Optional[TargetDeclaration]] = None
    #: write the batch it is given instead of a buffer of its own (no allocation, no copy of
    #: the untouched pixels): for a kernel that copies its input first and then only writes
    #: (random erasing with a fixed value or noise; set where it is made)
    in_place: bool = False

    def __init__(self, **values):
        super().__init__()

    def declare_state_and_memory(self, previous_state):
        state, query = super().declare_state_and_memory(previous_state)
        return state, None if self.in_place else query

    @classmethod
    def signature(cls) -> inspect.Signature:
        return cls.declared_signature

    def args(self) -> tuple:
        """The declared parameters' values, in the maths' order."""
        return tuple(self.params[n] for n in self.arg_names)

    def gate_p(self) -> float:
        return self.params["p"] if self.gated else 1.0

    def kernel_args(self) -> tuple:
        if self.form != "matrix":
            return self.args()
        return (self.params["fill"] if self.filled else 0,) + self.args()  # a warp's fill first

    def keyed_loop(self) -> KeyedLoop:
        """What this op runs per sample (a chain of ops shares it: ``ChainedPairs``)."""
        return KeyedLoop(self.kernel, self.kernel_args(), self.gate_p(), self.gate,
                         in_place=self.in_place)

    def generate_code(self):
        return keyed_batch_loop(self.keyed_loop(), self.clock, self.position, op=self)

    def output_type(self, image: ImageType) -> ImageType:
        if self.declared_output_type is None:
            return image
        return self.declared_output_type(image, **{n: self.params[n] for n in self.arg_names})

    def fusion_part(self) -> Optional[FusionPart]:
        family = FORMS[self.form][1]
        if family is None:
            return None
        return FusionPart(family, self.form, self.maths, self.args(), self.gate_p(), self.gate,
                          self.params["fill"] if self.filled else None)

    def for_target(self, target) -> Optional[PureOperation]:
        """From the declaration (``declared_targets``): None for an op that changes the image
        only, else its kernel for the target's kind with this op's key, gate and parameters
        and the target's fill."""
        if self.declared_targets == IMAGE_ONLY:
            return None
        kernel = (self.declared_targets or {}).get(target.kind)
        if kernel is None:
            raise not_declared(getattr(type(self), "op_name", type(self).__name__), target)
        return TargetStep(kernel, (target.fill,) + self.args(), self.gate_p(), self.gate, self)


def op_class(form: str, function: Callable, output_type: Optional[Callable],
             p: Optional[float], gate: Gate, fast_kernel: Optional[Callable] = None,
             targets: Optional[TargetDeclaration] = None) -> type:
    """The ``DeclaredOp`` subclass of a declaration (see the module doc); ``p`` None: no gate."""
    leading, _ = FORMS[form]
    sig = inspect.signature(function)
    names = list(sig.parameters)
    if names[:len(leading)] != list(leading):
        raise TypeError(f"{function.__qualname__}: a {form} function's first parameters must be "
                        f"{', '.join(leading)}; got {', '.join(names[:len(leading)])}")
    params = [q.replace(kind=inspect.Parameter.KEYWORD_ONLY)
              for q in list(sig.parameters.values())[len(leading):]]
    filled = form == "matrix" and fast_kernel is None
    if filled:
        params.append(inspect.Parameter("fill", inspect.Parameter.KEYWORD_ONLY, default=0,
                                        annotation=Fill))
    gated = p is not None and "p" not in sig.parameters
    if gated:
        params.append(inspect.Parameter("p", inspect.Parameter.KEYWORD_ONLY, default=p,
                                        annotation=Probability))
    # fastmath=False, explicitly: Numba hands a caller's fastmath to callees that do not set
    # it (FFCV compiles the batch loop with fastmath=True), which changes roundings (PIL's)
    # and caches whichever version compiled first. Pinned, the maths and its helpers are exact.
    jitted = njit(fastmath=False)(function)
    kernel = derived_kernel(form, jitted, fast_kernel)
    name = "".join(part.capitalize() for part in function.__name__.split("_"))
    return type(name, (DeclaredOp,), {
        "__doc__": function.__doc__, "__module__": function.__module__, "__qualname__": name,
        "form": form, "maths": staticmethod(jitted),
        "kernel": staticmethod(kernel),
        "arg_names": tuple(names[len(leading):]), "gate": gate, "gated": gated,
        "filled": filled, "declared_output_type": staticmethod(output_type) if output_type else None,
        "declared_targets": derived_targets(form, jitted, kernel if fast_kernel else None,
                                            targets),
        "declared_signature": inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params),
    })


def derived_targets(form: str, maths, exact_warp=None,
                    targets: Optional[TargetDeclaration] = None) -> Optional[TargetDeclaration]:
    """What a declaration does to targets (``DeclaredOp.declared_targets``): a table changes
    the image only; a warp moves every target kind by its matrix (``target_warps``: masks
    sampled as torchvision samples them, boxes and keypoints mapped), a mask by
    ``exact_warp`` instead when given, the image's own loop for a warp without draws that
    uncovers nothing (flips); a kernel says so itself (``targets``)."""
    if form in ("lut", "channel_luts"):
        return IMAGE_ONLY
    if form == "matrix":
        moved = {kind: _moved_by(maths, how.canvas, how.warp) for kind, how in TARGET_WARPS.items()}
        if exact_warp is not None:
            moved["mask"] = exact_warp
        return moved
    if targets is None or targets == IMAGE_ONLY:
        return targets
    return {kind: kernel if hasattr(kernel, "py_func") else njit(fastmath=False)(kernel)
            for kind, kernel in targets.items()}


def _moved_by(maths, canvas, warp):
    """The target kernel of a warp's ``maths`` for one kind (``target_warps.TargetWarp``)."""
    @njit
    def target_warp_kernel(src, dst, rng, fill, *args):
        height, width = canvas(src)
        warp(src, dst, maths(height, width, rng, *args), fill)

    return target_warp_kernel


def derived_kernel(form: str, maths, fast_kernel=None):
    """The per-image kernel ``(image_in, image_out, rng, *args)`` of a declaration's maths
    (a warp's: ``(image_in, image_out, rng, fill, *args)``)."""
    if form == "kernel":
        return maths
    if fast_kernel is not None:
        fast = njit(fast_kernel)

        @njit
        def warp_without_draws(src, dst, rng, fill, *args):
            fast(src, dst)

        return warp_without_draws
    if form == "lut":
        @njit
        def lut_kernel(src, dst, rng, *args):
            apply_lut(src, dst, maths(rng, *args))

        return lut_kernel
    if form == "channel_luts":
        @njit
        def channel_luts_kernel(src, dst, rng, *args):
            apply_channel_luts(src, dst, maths(channel_histograms(src), rng, *args))

        return channel_luts_kernel

    @njit
    def warp_kernel(src, dst, rng, fill, *args):
        affine_warp(src, dst, maths(src.shape[0], src.shape[1], rng, *args), fill)

    return warp_kernel


class TargetStep(KeepsShape, StepOf):
    """A per-sample kernel run over a target with an image op's key, gate and parameters:
    ``kernel(target_in, target_out, rng, *args)`` in ``keyed_batch_loop`` at the image op's
    position, so it fires for the same samples and draws the same values. The target keeps
    its shape and dtype (a warp of a mask)."""

    stage = "cpu"

    def __init__(self, kernel: Callable, args: tuple, p: float, gate: Gate, of: PureOperation):
        super().__init__(of)
        self.kernel, self.args, self.p, self.gate = kernel, args, p, gate
        self.of = type(of).__name__

    def generate_code(self):
        return keyed_batch_loop(KeyedLoop(self.kernel, self.args, self.p, self.gate),
                                self.clock, self.position, op=self)

    def __repr__(self):
        return f"TargetStep({self.of})"

