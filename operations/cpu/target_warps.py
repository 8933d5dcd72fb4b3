"""How a warp moves each kind of target: the canvas size its matrix is drawn for and the
function that applies the matrix (``warp(src, dst, matrix, fill)``, ``matrix`` output ->
input as ``warp.affine_warp``'s). Every geometric op, fused warp and policy op moves targets
through this table, so a new target kind is one entry here."""
from typing import Callable, NamedTuple

from numba import njit

from .instances import box_warp, canvas, point_warp
from .pixels import SHARED_HELPER
from .warp import mask_warp


@njit(**SHARED_HELPER)
def pixel_canvas(array):
    """(height, width) of an image or mask (H, W, C)."""
    return array.shape[0], array.shape[1]


class TargetWarp(NamedTuple):
    """``canvas(target) -> (height, width)`` and ``warp(src, dst, matrix, fill)``."""

    canvas: Callable
    warp: Callable


TARGET_WARPS = {
    "mask": TargetWarp(pixel_canvas, mask_warp),  # torchvision's sampling of masks
    "boxes": TargetWarp(canvas, box_warp),
    "keypoints": TargetWarp(canvas, point_warp),
}
