"""What flows between two pipeline steps, as the planner tracks it."""
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from .errors import PureffcvError

#: dtypes a pipeline step may produce, by the name a spec uses.
DTYPES = ("uint8", "float16", "bfloat16", "float32")
#: the torch dtype of each spec dtype name
TORCH_DTYPES = {"uint8": torch.uint8, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "float32": torch.float32}


class OpTypeError(PureffcvError, ValueError):
    """An op cannot accept its input type. The message is in the user's vocabulary;
    the compiler adds the file position."""


@dataclass(frozen=True)
class ImageType:
    """One sample's image as it leaves a step: size, dtype, layout, device, JIT-ness.

    ``height``/``width`` are None while they vary per sample (a raw decode of mixed sizes).
    """

    height: Optional[int]
    width: Optional[int]
    channels: int = 3
    dtype: str = "uint8"
    #: "HWC" (per-sample numpy, JIT stage) or "channels_last" (torch NCHW views with NHWC
    #: memory, after ToTorchImage)
    layout: str = "HWC"
    device: str = "cpu"
    jit: bool = True

    def but(self, **changes) -> "ImageType":
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def sample_shape(self) -> tuple:
        """The per-sample array shape FFCV allocates (HWC in the JIT stage)."""
        if self.layout == "HWC":
            return (self.height, self.width, self.channels)
        return (self.channels, self.height, self.width)

    def describe(self) -> str:
        """e.g. ``224x224x3 uint8 HWC cpu``."""
        size = f"{self.height or '?'}x{self.width or '?'}x{self.channels}"
        return f"{size} {self.dtype} {self.layout} {self.device}"

    def require_dtype(self, op: str, *allowed: str) -> None:
        """Raise OpTypeError unless this image's dtype is one of ``allowed``."""
        if self.dtype not in allowed:
            raise OpTypeError(
                f"'{op}' expects {' or '.join(allowed)} images but gets {self.dtype}; "
                f"move it before the step that converts to {self.dtype} (normalize)")

    def require_fixed_size(self, op: str) -> None:
        if self.height is None or self.width is None:
            raise OpTypeError(
                f"'{op}' needs images of one size; decode with a crop "
                f"(random_resized_crop or center_crop) first")


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype of a JIT-stage buffer holding images of the spec dtype ``name``.

    Numba has no float16, so float16 images live in the JIT stage as their IEEE bit patterns
    (uint16); the compiler reinterprets them as float16 right after ToTensor
    (``operations.boundary.Float16FromBits``). bfloat16 exists only on the device."""
    if name == "bfloat16":
        raise OpTypeError("bfloat16 exists only on the device; use float16 or float32 on the CPU")
    return np.dtype(np.uint16) if name == "float16" else np.dtype(name)


def requires_uint8(name: str, rgb: bool = False):
    """An ``output_type`` for op ``name`` refusing what colour ops cannot take: non-uint8
    images, and (``rgb``) images without three channels."""
    def output_type(image, **params):
        image.require_dtype(name, "uint8")
        if rgb and image.channels != 3:
            raise OpTypeError(f"'{name}' expects RGB images (3 channels) but gets {image.channels}")
        return image
    return output_type
