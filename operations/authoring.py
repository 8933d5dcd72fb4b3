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

Targets (masks) follow from the form: a warp moves them by its matrix, a table leaves them
alone, a kernel declares ``targets`` (``IMAGE_ONLY`` or a kernel per target kind).

``rng`` is the sample's kernel key (draw with ``operations.rng.uniform(rng, k)`` etc.). Each
declaration takes ``p`` (the default probability of the ``p`` parameter every op gets, 1.0
unless said) and ``gate`` (where p is drawn, ``base.Gate``). A kernel that declares its own
``p`` parameter gets no gate (it handles p itself).

The class each form builds is ``declared.op_class``'s; the loop it runs in, per batch, is
``batch_loop.keyed_batch_loop``.
"""
from typing import Callable, Optional

from .base import SAMPLE_KEY_GATE, Gate
from .declared import op_class
from .targets import TargetDeclaration


def cpu_op(kernel: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
           probability: bool = True, p: float = 1.0, gate: Gate = SAMPLE_KEY_GATE,
           targets: Optional[TargetDeclaration] = None):
    """An op from ``kernel(image_in, image_out, rng, **params)``.

    - ``output_type(image: ImageType, **params) -> ImageType``: for kernels that change the
      size or dtype (default: same as the input); raise ``OpTypeError`` to refuse an input.
    - ``probability``: add a ``p`` parameter (default ``p``) that applies the kernel to each
      image with probability p and copies it unchanged otherwise. Ignored if the kernel has
      its own p.
    - ``targets``: what the op does to targets (masks) that travel with the image
      (``operations.targets``): ``IMAGE_ONLY`` (colour, filters, erasing), or per target
      kind a kernel ``(target_in, target_out, rng, fill, **params)`` that makes the image
      kernel's draws and moves the target as the image moved. Undeclared, a spec with
      targets refuses the op.

    Usable as ``@cpu_op`` or ``@cpu_op(output_type=...)``.
    """
    if kernel is None:
        return lambda k: cpu_op(k, output_type=output_type, probability=probability, p=p,
                                gate=gate, targets=targets)
    return op_class("kernel", kernel, output_type, p if probability else None, gate,
                    targets=targets)


def point_map(lut: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
              p: float = 1.0, gate: Gate = SAMPLE_KEY_GATE):
    """An op from ``lut(rng, **params) -> uint8[256]``: every value v of every channel
    becomes ``lut[v]``. Fuses with neighbouring point maps into one table."""
    if lut is None:
        return lambda f: point_map(f, output_type=output_type, p=p, gate=gate)
    return op_class("lut", lut, output_type, p, gate)


def channel_map(luts: Optional[Callable] = None, *, output_type: Optional[Callable] = None,
                p: float = 1.0, gate: Gate = SAMPLE_KEY_GATE):
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
    return op_class("matrix", matrix, output_type, p, SAMPLE_KEY_GATE, fast_kernel=kernel)
