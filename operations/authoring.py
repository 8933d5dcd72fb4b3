"""Turn a per-sample Numba kernel into a registered, parallel, keyed-random FFCV Operation.

Writing a raw FFCV Operation means closures in ``generate_code``, State, AllocationQuery and
Numba typing errors on ``self``. A kernel is just the maths for one image::

    @register_op("invert")
    def invert(image_in, image_out, rng):
        for y in range(image_in.shape[0]):
            ...

``cpu_op`` (which ``register_op`` applies to plain functions) builds the Operation: it
JIT-compiles the kernel, runs it over the batch in ``prange``, hands it the sample's RNG key
(draw with ``operations.rng.uniform(rng, k)``), adds a probability ``p`` unless the kernel
declares its own, and exposes the kernel's keyword parameters as the op's validated signature.
"""
import inspect
import warnings
from typing import Callable, Optional

import numpy as np
from ffcv.pipeline.compiler import Compiler
from numba import njit, objmode

from .base import PureOperation
from .cpu.pixels import copy_pixels
from .params import Probability, constraints_of
from .rng import GATE_DRAW, bernoulli, derive, sample_key, stream_key
from .types import ImageType

KERNEL_ARGS = ("image_in", "image_out", "rng")

# The epoch is read in object mode once per batch, outside the parallel loop; Numba's warning
# about it is expected and harmless (the loop itself stays parallel and nogil).
warnings.filterwarnings("ignore", message="Code running in object mode won't allow parallel")


def cpu_op(kernel: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
           probability: bool = True):
    """Build a PureOperation class from ``kernel(image_in, image_out, rng, **params)``.

    - ``output_type(image: ImageType, **params) -> ImageType``: for kernels that change the
      size or dtype (default: same as the input); raise ``OpTypeError`` to refuse an input.
    - ``probability``: add a ``p`` parameter (default 1.0) that applies the kernel to each image
      with probability p and copies it unchanged otherwise. Ignored if the kernel has its own p.

    Usable as ``@cpu_op`` or ``@cpu_op(output_type=...)``.
    """
    if kernel is None:
        return lambda k: cpu_op(k, output_type=output_type, probability=probability)
    return _kernel_op_class(kernel, output_type, probability)


def _kernel_op_class(kernel, output_type, probability):
    sig = inspect.signature(kernel)
    names = list(sig.parameters)
    if names[:3] != list(KERNEL_ARGS):
        raise TypeError(f"{kernel.__qualname__}: a kernel's first parameters must be "
                        f"{', '.join(KERNEL_ARGS)}; got {', '.join(names[:3])}")
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in list(sig.parameters.values())[3:]]
    gated = probability and "p" not in sig.parameters
    if gated:
        params.append(inspect.Parameter("p", inspect.Parameter.KEYWORD_ONLY, default=1.0,
                                        annotation=Probability))
    kernel_names = names[3:]
    # fastmath=False, explicitly: Numba hands a caller's fastmath to callees that do not set
    # it (FFCV compiles the batch loop with fastmath=True), which changes roundings (PIL's)
    # and caches whichever version compiled first. Pinned, the kernel and its helpers are exact.
    jitted = njit(fastmath=False)(kernel)
    init_sig = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)

    def __init__(self, **values):
        PureOperation.__init__(self)  # FFCV's Operation fields
        bound = init_sig.bind(self, **values)
        bound.apply_defaults()
        self.params = {k: _plain(_resolve(init_sig.parameters[k].annotation, v))
                       for k, v in bound.arguments.items() if k != "self"}

    __init__.__signature__ = init_sig

    def generate_code(self):
        return _batch_loop(jitted, tuple(self.params[n] for n in kernel_names),
                           self.params.get("p", 1.0) if gated else 1.0,
                           self.clock, self.position)

    def _output_type(self, image: ImageType) -> ImageType:
        if output_type is None:
            return image
        return output_type(image, **{n: self.params[n] for n in kernel_names})

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    name = "".join(part.capitalize() for part in kernel.__name__.split("_"))
    return type(name, (PureOperation,), {
        "__init__": __init__, "generate_code": generate_code, "output_type": _output_type,
        "__repr__": __repr__, "__doc__": kernel.__doc__, "__module__": kernel.__module__,
        "__qualname__": name, "kernel": staticmethod(jitted), "stage": "cpu",
    })


def _resolve(annotation, value):
    """A named constant (``mean: imagenet``) becomes its value, so kernels see numbers."""
    for constraint in constraints_of(annotation):
        value = constraint.convert(value)
    return value


def _plain(value):
    """YAML lists become tuples (Numba-typable, hashable)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def epoch_reader(clock):
    """An njit function ``() -> epoch`` reading the clock in object mode: one GIL acquisition,
    so call it once per batch, outside the parallel loop."""
    read_epoch = clock.read

    @njit
    def read():
        with objmode(epoch="int64"):
            epoch = read_epoch()
        return epoch

    return read


def batch_stream_reader(clock, position: int):
    """An njit function ``() -> stream key`` for one op: the op's stream for the clock's
    current epoch (call it once per batch). Shared by kernel ops and the keyed decoders."""
    seed, read_epoch = clock.seed, epoch_reader(clock)

    @njit
    def batch_stream():
        return stream_key(seed, read_epoch(), position)

    return batch_stream


def _batch_loop(kernel, args: tuple, p: float, clock, position: int):
    """The per-batch function FFCV compiles: read the epoch once, then one kernel call per
    sample in parallel, each with that sample's own key."""
    batch_stream = batch_stream_reader(clock, position)
    loop = Compiler.get_iterator()
    gate = p < 1.0

    def apply(images, dst, indices):
        stream = batch_stream()
        for i in loop(images.shape[0]):
            key = sample_key(stream, indices[i])
            if gate and not bernoulli(key, GATE_DRAW, p):
                copy_pixels(images[i], dst[i])
            else:
                kernel(images[i], dst[i], derive(key, 1), *args)
        return dst[:images.shape[0]]

    apply.is_parallel = True
    apply.with_indices = True
    return apply
