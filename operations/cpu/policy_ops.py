"""The ops an augmentation space (``policies``) may name, and what a magnitude m does with each
(timm's ``LEVEL_TO_ARG`` idea): ``POLICY_OPS`` maps torchvision's op names to a ``PolicyOp``
whose ``apply(m, src, dst, fill)`` runs the family modules' maths (``tone``, ``colour``,
``filters``, ``warp``) at m, as ``policies``' module doc defines it. ``apply_policy_op`` is
built from that data; an op's code is its index in ``OP_NAMES``."""
from typing import Callable, NamedTuple, Optional

import numpy as np
from numba import njit

from .colour import adjust_saturation
from .filters import adjust_sharpness
from .pixels import apply_channel_luts, apply_lut, channel_histograms, copy_pixels
from .tone import (autocontrast_luts, brightness_lut, contrast_lut, equalize_luts, invert_lut,
                   posterize_lut, solarize_lut)
from .warp import affine_warp, rotation_matrix, shear_matrix, translate_matrix


@njit
def identity_at(magnitude, src, dst, fill):
    copy_pixels(src, dst)


@njit
def shear_x_at(magnitude, src, dst, fill):
    affine_warp(src, dst, shear_matrix(np.degrees(np.arctan(magnitude)), 0.0, 0.0, 0.0), fill)


@njit
def shear_y_at(magnitude, src, dst, fill):
    affine_warp(src, dst, shear_matrix(0.0, np.degrees(np.arctan(magnitude)), 0.0, 0.0), fill)


@njit
def translate_x_at(magnitude, src, dst, fill):
    affine_warp(src, dst, translate_matrix(float(int(magnitude)), 0.0), fill)


@njit
def translate_y_at(magnitude, src, dst, fill):
    affine_warp(src, dst, translate_matrix(0.0, float(int(magnitude))), fill)


@njit
def rotate_at(magnitude, src, dst, fill):
    affine_warp(src, dst, rotation_matrix(magnitude, src.shape[1] / 2, src.shape[0] / 2), fill)


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
    runs the family module's maths (``tone``, ``colour``, ``filters``, ``warp``) at m, as
    the module doc defines it; ``rounded``: m is rounded half to even first (torchvision's
    ``.round()``); ``side``: a ``per_side`` m is a fraction of this side ("width" or
    "height"); ``moves_targets``: the op moves pixels (a warp), so targets (masks) move by
    the same ``apply`` with their own fill; the others change the image only."""

    apply: Callable
    rounded: bool = False
    side: Optional[str] = None
    moves_targets: bool = False


#: every op a space may name, by torchvision's name; adding an op to a space is one
#: ``SpaceOp`` line, adding an op here one line (and its ``*_at`` function above)
POLICY_OPS = {
    "Identity": PolicyOp(identity_at),
    "ShearX": PolicyOp(shear_x_at, moves_targets=True),
    "ShearY": PolicyOp(shear_y_at, moves_targets=True),
    "TranslateX": PolicyOp(translate_x_at, side="width", moves_targets=True),
    "TranslateY": PolicyOp(translate_y_at, side="height", moves_targets=True),
    "Rotate": PolicyOp(rotate_at, moves_targets=True),
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
apply_policy_op = dispatcher(tuple(op.apply for op in POLICY_OPS.values()))
#: what op ``code`` at ``magnitude`` does to a target (a mask): the warps move it (with the
#: target's fill), every other op leaves it as it is
move_target = dispatcher(tuple(op.apply if op.moves_targets else identity_at
                               for op in POLICY_OPS.values()))
