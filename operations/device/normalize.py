"""Normalization on the device (the device backend of ``normalize``; its CPU backend is in
``cpu/normalize.py``), and the fused normalize+flip kernel.

The fused op reads each uint8 pixel once and writes it once: normalized, converted to
float16/bfloat16/float32, mirrored for the samples whose keyed draw says so, channels_last.
Normalization is a per-channel lookup table computed in float64 and rounded once to the output
dtype, so every path (cupy on CUDA, Numba on the CPU, torch elsewhere) gives the correctly
rounded value of ``(x - mean) / std``, bit for bit the same on every device.
"""
from typing import Dict, Literal, Optional

import torch

from ..cpu.geometry import HorizontalFlipOnDevice, horizontal_flip
from ..cpu.normalize import JitNormalizeFlip
from ..normalization import MeanParam, StdParam, lookup_table
from ..params import Probability
from ..registry import register_op
from ..types import TORCH_DTYPES, ImageType, OpTypeError
from . import cuda_kernel, numba_kernel
from .stage import DeviceOperation, TargetMirrorOnDevice, mirrored, nhwc

OutDtype = Optional[Literal["float16", "bfloat16", "float32"]]


def normalize_flip_torch(images: torch.Tensor, out: torch.Tensor, table: torch.Tensor,
                         flips: Optional[torch.Tensor]) -> None:
    """The fused op in plain torch (any device): ``out[b, c, y, x] = table[images[b, c, y,
    x'], c]`` with x' = W-1-x where ``flips[b]``. Both tensors channels_last."""
    src = nhwc(images)
    if flips is not None:
        src = mirrored(src, flips)
    channels = src.shape[-1]
    index = src.to(torch.int32) * channels + torch.arange(channels, dtype=torch.int32,
                                                          device=src.device)
    torch.index_select(table.reshape(-1), 0, index.reshape(-1), out=nhwc(out).reshape(-1))


def normalize_flip(images: torch.Tensor, out: torch.Tensor, table: torch.Tensor,
                   flips: Optional[torch.Tensor]) -> None:
    """The fused op: the cupy kernel for CUDA tensors when cupy is installed, the Numba loop
    on the CPU, torch elsewhere. All three give the same bits."""
    if images.device.type == "cpu":
        numba_kernel.normalize_flip(images, out, table, flips)
        return
    if images.is_cuda and images.numel() < 2 ** 31:
        if cuda_kernel.available():
            cuda_kernel.normalize_flip(images, out, table, flips)
            return
    normalize_flip_torch(images, out, table, flips)


@register_op("normalize")
class Normalize(DeviceOperation):
    """uint8 -> ``(x - mean) / std`` per channel, as float16/bfloat16/float32, channels_last
    (``normalize`` in ``image.device.ops``; in ``image.cpu`` the CPU backend runs).

    - ``mean``: a name (imagenet, cifar10, cifar100, none) or three numbers in 0-255 pixel
      units (FFCV's NormalizeImage convention), default imagenet.
    - ``std``: likewise, positive, default imagenet.
    - ``dtype``: float16, bfloat16 or float32; None (the default) means the spec's device
      dtype, which the compiler fills in; float32 when the op is built directly.

    No randomness. Values are correctly rounded (float64 table, one rounding), where
    torchvision's Normalize computes in the input's float dtype. Refuses non-uint8 input.
    """

    def __init__(self, mean: MeanParam = "imagenet", std: StdParam = "imagenet",
                 dtype: OutDtype = None):
        super().__init__()
        self.params["dtype"] = dtype or "float32"
        self.table = lookup_table(mean, std, TORCH_DTYPES[self.params["dtype"]])
        self._tables: Dict[torch.device, torch.Tensor] = {}

    @property
    def dtype(self) -> str:
        return self.params["dtype"]

    @property
    def flip_p(self) -> float:
        """The probability of the flip this op does too (0: none)."""
        return 0.0

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        if image.dtype != "uint8":
            raise OpTypeError(f"'{self.op_name}' expects uint8 images but gets {image.dtype}: "
                              f"they are normalized already (normalize once: in image.cpu "
                              f"or in image.device.ops)")
        if image.channels != len(self.params["mean"]):
            raise OpTypeError(f"'{self.op_name}' has {len(self.params['mean'])} mean/std values but the "
                              f"images have {image.channels} channels")
        return image.but(dtype=self.dtype, layout="channels_last", jit=False)

    def table_on(self, device: torch.device) -> torch.Tensor:
        """The lookup table, copied once to each device it is used on."""
        if device not in self._tables:
            self._tables[device] = self.table.to(device)
        return self._tables[device]

    def flips(self, indices: torch.Tensor) -> Optional[torch.Tensor]:
        """Which samples this op mirrors (None: it does not flip)."""
        return None

    def forward(self, images, out, indices):
        normalize_flip(images, out, self.table_on(images.device), self.flips(indices))

    def for_target(self, target):
        """Normalization changes the image only; a fused flip mirrors the target for the
        same samples."""
        return TargetMirrorOnDevice(self, target) if self.flip_p > 0 else None

    def absorb(self, other):
        """normalize + an adjacent flip -> ``normalize_flip`` drawing as the flip does."""
        if type(self) is not Normalize or not isinstance(other, HorizontalFlipOnDevice):
            return None
        fused = NormalizeFlip(mean=self.params["mean"], std=self.params["std"],
                              dtype=self.dtype, p=other.params["p"])
        fused.bind(other.clock, other.position)
        return fused

    def jit_equivalent(self, image: ImageType):
        """Normalize (and flip) per image in the JIT stage: the same table and flip draws.
        None for bfloat16 (Numba has no bfloat16)."""
        if self.dtype == "bfloat16":
            return None
        jit = JitNormalizeFlip(mean=self.params["mean"], std=self.params["std"],
                               dtype=self.dtype, p=self.flip_p)
        jit.bind(self.clock, self.position)
        return jit


@register_op("normalize_flip")
class NormalizeFlip(Normalize):
    """``normalize`` and ``horizontal_flip`` in one pass: one read of the uint8 batch, one write of the
    normalized, per-sample mirrored, channels_last result (see both ops for the parameters).

    The planner creates it (``Normalize.absorb``, from ``fuse_adjacent_device_ops``) with the flip's position, so its flip
    decisions equal the separate flip's. Flip and normalization commute (both act per
    pixel), so fusing is exact whichever order the spec lists them in. On CUDA with cupy it
    runs one kernel on the tensor's own device and torch's current stream; on the CPU one
    parallel Numba loop; elsewhere torch.
    """

    def __init__(self, mean: MeanParam = "imagenet", std: StdParam = "imagenet",
                 dtype: OutDtype = None, p: Probability = 0.5):
        super().__init__(mean=mean, std=std, dtype=dtype)

    @property
    def flip_p(self) -> float:
        return self.params["p"]

    def flips(self, indices: torch.Tensor) -> torch.Tensor:
        return self.fires(indices, self.flip_p, horizontal_flip.gate)
