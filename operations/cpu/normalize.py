"""CPU normalize: uint8 HWC -> float HWC, (x - mean) / std per channel, before the boundary
(for runs without a GPU; on a GPU the fused device ``normalize`` is faster)."""
from typing import Literal

from ..authoring import cpu_op
from ..normalization import MeanParam, StdParam
from ..registry import register_op
from ..types import ImageType, OpTypeError


def _normalized_type(image: ImageType, mean, std, dtype) -> ImageType:
    image.require_dtype("cpu_normalize", "uint8")
    if dtype == "float16":
        raise OpTypeError("'cpu_normalize' cannot produce float16: Numba has no float16 on the "
                          "CPU; use dtype float32, or normalize on the device with dtype float16")
    return image.but(dtype=dtype)


@register_op("cpu_normalize")
@cpu_op(output_type=_normalized_type, probability=False)
def cpu_normalize(image_in, image_out, rng, mean: MeanParam = "imagenet",
                  std: StdParam = "imagenet", dtype: Literal["float32", "float16"] = "float32"):
    """``(x - mean[c]) / std[c]`` for every pixel, computed in float64 and stored as ``dtype``;
    uint8 in, float out (any other input is refused). No randomness, no ``p``.

    - ``mean``: a name from ``operations.normalization.MEAN`` (imagenet, cifar10, cifar100,
      none) or three numbers in 0-255 pixel units (like FFCV's NormalizeImage), default imagenet.
    - ``std``: a name from ``STD`` or three positive numbers in 0-255 units, default imagenet.
    - ``dtype``: float32 (default). float16 is refused when the pipeline is compiled (Numba
      cannot store float16 on the CPU); use the device ``normalize`` for float16.
    """
    for y in range(image_in.shape[0]):
        for x in range(image_in.shape[1]):
            for c in range(image_in.shape[2]):
                image_out[y, x, c] = (image_in[y, x, c] - mean[c]) / std[c]
