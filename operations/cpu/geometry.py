"""Geometric per-sample ops: flips, translations, rotations, shears, affine warps."""
from ..registry import register_op


@register_op("horizontal_flip")
def horizontal_flip(image_in, image_out, rng):
    """Mirror the image left-right (with probability ``p``, default 1.0; use the device
    ``flip`` for the usual p=0.5 flip fused with normalization)."""
    width = image_in.shape[1]
    for x in range(width):
        image_out[:, x] = image_in[:, width - 1 - x]
