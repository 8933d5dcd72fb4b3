"""The ops an augmentation space (``policies``) may name, and what a magnitude m does with each
(timm's ``LEVEL_TO_ARG`` idea): ``POLICY_OPS`` maps torchvision's op names to a ``PolicyOp``
whose ``apply(m, src, dst, fill)`` runs the family modules' maths (``tone``, ``colour``,
``filters``) at m, or whose ``matrix(m, height, width)`` is its warp's, as ``policies``'
module doc defines it. ``apply_policy_op`` (images) and ``move_target`` (each target kind) are built
from that data; an op's code is its index in ``OP_NAMES``."""
from typing import Callable, NamedTuple, Optional

import numpy as np
from numba import njit

from .colour import adjust_saturation
from .filters import adjust_sharpness
from .pixels import apply_channel_luts, apply_lut, channel_histograms, copy_pixels
from .tone import (autocontrast_luts, brightness_lut, contrast_lut, equalize_luts, invert_lut,
                   posterize_lut, solarize_lut)
from .target_warps import TARGET_WARPS, TargetWarp, pixel_canvas
from .warp import affine_warp, rotation_matrix, shear_matrix, translate_matrix


@njit
def identity_at(magnitude, src, dst, fill):
    copy_pixels(src, dst)


@njit
def shear_x_matrix(magnitude, height, width):
    return shear_matrix(np.degrees(np.arctan(magnitude)), 0.0, 0.0, 0.0)


@njit
def shear_y_matrix(magnitude, height, width):
    return shear_matrix(0.0, np.degrees(np.arctan(magnitude)), 0.0, 0.0)


@njit
def translate_x_matrix(magnitude, height, width):
    return translate_matrix(float(int(magnitude)), 0.0)


@njit
def translate_y_matrix(magnitude, height, width):
    return translate_matrix(0.0, float(int(magnitude)))


@njit
def rotate_matrix(magnitude, height, width):
    return rotation_matrix(magnitude, width / 2, height / 2)


#: how an image is warped (PIL's sampling); targets: ``target_warps``
IMAGE_WARP = TargetWarp(pixel_canvas, affine_warp)


def warp_at(matrix, how: TargetWarp):
    """njit ``at(magnitude, src, dst, fill)``: ``how.warp(src, dst, matrix(magnitude,
    *how.canvas(src)), fill)``."""
    canvas, warp = how

    @njit
    def at(magnitude, src, dst, fill):
        height, width = canvas(src)
        warp(src, dst, matrix(magnitude, height, width), fill)

    return at


@njit
def brightness_at(magnitude, src, dst, fill):
    apply_lut(src, dst, brightness_lut(1.0 + magnitude))


@njit
def color_at(magnitude, src, dst, fill):
    adjust_saturation(src, dst, 1.0 + magnitude)


@njit
def contrast_at(magnitude, src, dst, fill):
    apply_lut(src, dst, contrast_lut(src, 1.0 + magnitude))


@njit
def sharpness_at(magnitude, src, dst, fill):
    adjust_sharpness(src, dst, 1.0 + magnitude)


@njit
def posterize_at(magnitude, src, dst, fill):
    apply_lut(src, dst, posterize_lut(int(magnitude)))


@njit
def solarize_at(magnitude, src, dst, fill):
    apply_lut(src, dst, solarize_lut(magnitude))


@njit
def autocontrast_at(magnitude, src, dst, fill):
    apply_channel_luts(src, dst, autocontrast_luts(channel_histograms(src)))


@njit
def equalize_at(magnitude, src, dst, fill):
    apply_channel_luts(src, dst, equalize_luts(channel_histograms(src)))


@njit
def invert_at(magnitude, src, dst, fill):
    apply_lut(src, dst, invert_lut())


class PolicyOp(NamedTuple):
    """What a magnitude m does (timm's ``LEVEL_TO_ARG`` idea): ``apply(m, src, dst, fill)``
    runs the family module's maths (``tone``, ``colour``, ``filters``) at m, as the module
    doc defines it, or, for a warp, ``matrix(m, height, width)`` is its matrix (the image
    is warped by ``affine_warp``, targets as ``target_warps`` moves their kind; other ops
    change the image only); ``rounded``: m is rounded half to even first (torchvision's ``.round()``);
    ``side``: a ``per_side`` m is a fraction of this side ("width" or "height")."""

    apply: Optional[Callable] = None
    rounded: bool = False
    side: Optional[str] = None
    matrix: Optional[Callable] = None

    def on_image(self) -> Callable:
        return self.apply if self.matrix is None else warp_at(self.matrix, IMAGE_WARP)

    def on_target(self, kind: str) -> Callable:
        return identity_at if self.matrix is None else warp_at(self.matrix, TARGET_WARPS[kind])


#: every op a space may name, by torchvision's name; adding an op to a space is one
#: ``SpaceOp`` line, adding an op here one line (and its ``*_at`` function above)
POLICY_OPS = {
    "Identity": PolicyOp(identity_at),
    "ShearX": PolicyOp(matrix=shear_x_matrix),
    "ShearY": PolicyOp(matrix=shear_y_matrix),
    "TranslateX": PolicyOp(side="width", matrix=translate_x_matrix),
    "TranslateY": PolicyOp(side="height", matrix=translate_y_matrix),
    "Rotate": PolicyOp(matrix=rotate_matrix),
    "Brightness": PolicyOp(brightness_at),
    "Color": PolicyOp(color_at),
    "Contrast": PolicyOp(contrast_at),
    "Sharpness": PolicyOp(sharpness_at),
    "Posterize": PolicyOp(posterize_at, rounded=True),
    "Solarize": PolicyOp(solarize_at),
    "AutoContrast": PolicyOp(autocontrast_at),
    "Equalize": PolicyOp(equalize_at),
    "Invert": PolicyOp(invert_at),
}
#: an op's code is its index here (what the compiled tables hold)
OP_NAMES = tuple(POLICY_OPS)


def dispatcher(actions) -> Callable:
    """njit ``apply(code, magnitude, src, dst, fill)`` running ``actions[code]`` (codes out of
    range copy): an if/elif chain over the data, built once. Numba cannot index a tuple of
    different functions by a runtime number; each link here tests one code."""
    @njit
    def chain(code, magnitude, src, dst, fill):
        copy_pixels(src, dst)

    for code in reversed(range(len(actions))):
        chain = _link(code, actions[code], chain)
    return chain


def _link(code: int, action, rest):
    @njit
    def link(k, magnitude, src, dst, fill):
        if k == code:
            action(magnitude, src, dst, fill)
        else:
            rest(k, magnitude, src, dst, fill)

    return link


#: torchvision's auto-augment op ``code`` at a (signed) ``magnitude``, as the module doc
#: defines it (``src`` and ``dst`` must be different arrays)
apply_policy_op = dispatcher(tuple(op.on_image() for op in POLICY_OPS.values()))
#: per target kind, what op ``code`` at ``magnitude`` does to a target: the warps move it
#: (with the target's fill), every other op leaves it as it is
move_target = {kind: dispatcher(tuple(op.on_target(kind) for op in POLICY_OPS.values()))
               for kind in TARGET_WARPS}
