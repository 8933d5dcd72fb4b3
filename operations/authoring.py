"""Declaring an op: one function holding its maths, parameters, draws and docstring; the FFCV
Operation — the parallel keyed batch loop, the probability gate, the validated signature and
the fusion protocol — is derived from it.

Four forms, by what the maths is (the passes can only fuse what they can see):

- ``cpu_op(kernel)``: ``kernel(image_in, image_out, rng, **params)`` writes one image;
- ``point_map(lut)``: ``lut(rng, **params) -> uint8[256]``, the table applied to every channel
  (brightness, solarize, ...); consecutive point maps fuse into one table;
- ``channel_map(luts)``: ``luts(hist, rng, **params) -> uint8[channels, 256]`` from the
  image's channel histograms (autocontrast, equalize); fuses like a point map;
- ``affine(matrix)``: ``matrix(height, width, rng, **params) -> float64[2, 3]``, the
  output-to-input map of a nearest-neighbour warp (``geometry.affine_warp``); consecutive
  warps fuse into one.

``rng`` is the sample's kernel key (draw with ``operations.rng.uniform(rng, k)`` etc.). Each
declaration takes ``p`` (the default probability of the ``p`` parameter every op gets, 1.0
unless said) and ``gate`` (where p is drawn, ``base.Gate``). A kernel that declares its own
``p`` parameter gets no gate (it handles p itself).
"""
import inspect
from functools import lru_cache
from typing import Callable, Optional

from numba import njit

from .base import FusionPart, Gate, PureOperation
from .cpu.pixels import apply_channel_luts, apply_lut, channel_histograms, copy_pixels
from .cpu.warp import affine_warp
from .params import Probability
from .pointers import ENTRY_FLAGS, by_pointer, int64_at, string_positions
from .cpu.values import Fill
from .rng import bernoulli, derive, sample_key, stream_key
from .types import ImageType

KERNEL_ARGS = ("image_in", "image_out", "rng")
#: each form's leading arguments (before the parameters) and fusion family
FORMS = {"kernel": (KERNEL_ARGS, None), "lut": (("rng",), "point_map"),
         "channel_luts": (("hist", "rng"), "point_map"),
         "matrix": (("height", "width", "rng"), "affine")}


def cpu_op(kernel: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
           probability: bool = True, p: float = 1.0, gate: Gate = Gate()):
    """An op from ``kernel(image_in, image_out, rng, **params)``.

    - ``output_type(image: ImageType, **params) -> ImageType``: for kernels that change the
      size or dtype (default: same as the input); raise ``OpTypeError`` to refuse an input.
    - ``probability``: add a ``p`` parameter (default ``p``) that applies the kernel to each
      image with probability p and copies it unchanged otherwise. Ignored if the kernel has
      its own p.

    Usable as ``@cpu_op`` or ``@cpu_op(output_type=...)``.
    """
    if kernel is None:
        return lambda k: cpu_op(k, output_type=output_type, probability=probability, p=p, gate=gate)
    return op_class("kernel", kernel, output_type, p if probability else None, gate)


def point_map(lut: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
              p: float = 1.0, gate: Gate = Gate()):
    """An op from ``lut(rng, **params) -> uint8[256]``: every value v of every channel
    becomes ``lut[v]``. Fuses with neighbouring point maps into one table."""
    if lut is None:
        return lambda f: point_map(f, output_type=output_type, p=p, gate=gate)
    return op_class("lut", lut, output_type, p, gate)


def channel_map(luts: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
                p: float = 1.0, gate: Gate = Gate()):
    """An op from ``luts(hist, rng, **params) -> uint8[channels, 256]``, tables computed from
    ``hist``, the image's int64[channels, 256] channel histograms."""
    if luts is None:
        return lambda f: channel_map(f, output_type=output_type, p=p, gate=gate)
    return op_class("channel_luts", luts, output_type, p, gate)


def affine(matrix: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
           p: float = 1.0, kernel: Optional[Callable] = None):
    """An op from ``matrix(height, width, rng, **params) -> float64[2, 3]``: a nearest-
    neighbour warp by that output-to-input matrix; the op gets a ``fill`` parameter (grey
    level or [r, g, b], default 0) for the pixels it uncovers. ``kernel(image_in,
    image_out)``: instead, a faster exact loop for a warp without draws that uncovers nothing
    (flips; no ``fill`` then), its speed-up measured in its docstring."""
    if matrix is None:
        return lambda f: affine(f, output_type=output_type, p=p, kernel=kernel)
    return op_class("matrix", matrix, output_type, p, Gate(), fast_kernel=kernel)


# --- the op class ---------------------------------------------------------------------------

def op_class(form: str, function: Callable, output_type: Optional[Callable],
             p: Optional[float], gate: Gate, fast_kernel: Optional[Callable] = None) -> type:
    """The PureOperation class of a declaration (see the module doc); ``p`` None: no gate."""
    leading, family = FORMS[form]
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
    arg_names = names[len(leading):]
    # fastmath=False, explicitly: Numba hands a caller's fastmath to callees that do not set
    # it (FFCV compiles the batch loop with fastmath=True), which changes roundings (PIL's)
    # and caches whichever version compiled first. Pinned, the maths and its helpers are exact.
    jitted = njit(fastmath=False)(function)
    kernel = derived_kernel(form, jitted, fast_kernel)
    init_sig = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)

    def __init__(self, **values):
        PureOperation.__init__(self)

    __init__.__signature__ = init_sig

    def args(self) -> tuple:
        return tuple(self.params[n] for n in arg_names)

    def gate_p(self) -> float:
        return self.params["p"] if gated else 1.0

    def kernel_args(self) -> tuple:
        if form != "matrix":
            return args(self)
        return (self.params["fill"] if filled else 0,) + args(self)  # a warp's fill first

    def generate_code(self):
        return keyed_batch_loop(kernel, kernel_args(self), gate_p(self), gate, self.clock,
                                self.position)

    def _output_type(self, image: ImageType) -> ImageType:
        if output_type is None:
            return image
        return output_type(image, **{n: self.params[n] for n in arg_names})

    def fusion_part(self) -> Optional[FusionPart]:
        if family is None:
            return None
        return FusionPart(family, form, jitted, args(self), gate_p(self), gate,
                          self.params["fill"] if filled else None)

    name = "".join(part.capitalize() for part in function.__name__.split("_"))
    return type(name, (PureOperation,), {
        "__init__": __init__, "generate_code": generate_code, "output_type": _output_type,
        "fusion_part": fusion_part, "__doc__": function.__doc__, "__module__": function.__module__,
        "__qualname__": name, "kernel": staticmethod(kernel), "maths": staticmethod(jitted),
        "stage": "cpu",
    })


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


# --- the one keyed batch loop --------------------------------------------------------------

def epoch_reader(clock):
    """An njit function ``() -> epoch`` reading the clock's epoch through its address (no
    GIL, no object mode; call it once per batch)."""
    address = clock.address

    @njit
    def read():
        return int64_at(address)

    return read


def batch_stream_reader(clock, position: int):
    """An njit function ``() -> stream key`` for one op: the op's stream for the clock's
    current epoch (call it once per batch). Shared by kernel ops and the keyed decoders."""
    seed, read_epoch = clock.seed, epoch_reader(clock)

    @njit
    def batch_stream():
        return stream_key(seed, read_epoch(), position)

    return batch_stream


@njit(inline="always")
def gate_fires(key, kernel_key, p, on_kernel_key, draw):
    """The one probability gate: whether an op with probability ``p`` applies to the sample
    of ``key`` (``base.Gate``: the draw ``draw`` of the kernel key or of the sample key)."""
    return p >= 1.0 or bernoulli(kernel_key if on_kernel_key else key, draw, p)


def gate_check(p: float, gate: Gate):
    """njit ``fires(sample key, kernel key) -> bool``: ``gate_fires`` with this op's
    probability and gate compiled in (the fused chains' links)."""
    on_kernel_key, draw = gate.on_kernel_key, gate.draw

    @njit(inline="always")
    def fires(key, kernel_key):
        return gate_fires(key, kernel_key, p, on_kernel_key, draw)

    return fires


@njit
def unchanged(image_in, image_out, *args):
    """What an image becomes when its op's gate does not fire: a copy."""
    copy_pixels(image_in, image_out)


def keyed_batch_loop(kernel, args: tuple, p: float, gate: Gate, clock, position: int,
                     otherwise=unchanged):
    """The per-batch function FFCV compiles for every per-sample op: read the op's stream
    for the epoch once, then ``sample_step(kernel, otherwise)`` for every sample in
    parallel, through its cached C entry (``pointers.by_pointer``). The parameters travel as
    arguments, not constants, so a new op instance (another parameter value) compiles only
    this thin closure: a fraction of a second, against tens of seconds for a kernel."""
    batch_stream = batch_stream_reader(clock, position)
    run = by_pointer(sample_step(kernel, otherwise), string_positions(args, first=8),
                     parallel=True)
    on_kernel_key, draw = gate.on_kernel_key, gate.draw

    def apply(images, dst, indices):
        run(images.shape[0], images, dst, indices, batch_stream(), p, on_kernel_key, draw,
            *args)
        return dst[:images.shape[0]]

    apply.with_indices = True
    return apply


@lru_cache(maxsize=None)
def sample_step(kernel, otherwise=unchanged):
    """njit ``step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args)`` for
    sample i: its key, the gate (probability ``p``, drawn as ``base.Gate`` says) and
    ``kernel(image_in, image_out, kernel key, *args)`` — or, where the gate does not fire,
    ``otherwise(image_in, image_out, *args)``. One per kernel, for all its instances."""
    @njit(**ENTRY_FLAGS)
    def step(i, images, dst, indices, stream, p, on_kernel_key, draw, *args):
        key = sample_key(stream, indices[i])
        kernel_key = derive(key, 1)
        if gate_fires(key, kernel_key, p, on_kernel_key, draw):
            kernel(images[i], dst[i], kernel_key, *args)
        else:
            otherwise(images[i], dst[i], *args)

    return step
