"""Device backends derived from a CPU declaration, so that an op declared once
(``authoring.point_map``, ``channel_map`` or ``affine``) also runs in ``image.device.ops``
with the same bytes, without a second implementation:

- a point map's table is a gather on the device;
- a channel map's tables come from the images' histograms, taken on the device, then gathered;
- a matrix is the same nearest-neighbour warp (``cpu.warp.affine_warp``'s sampling) in torch.

The per-image draws (tables, matrices) come from the declaration's own njit maths on the
host, keyed exactly as the CPU loop keys them (``batch_loop.sample_step``), so the backends
cannot drift apart; only the per-pixel work runs in torch. A backend written by hand beside
the declaration (``horizontal_flip``'s) takes the derived one's place.
"""
import inspect
from typing import ClassVar, Optional

import numpy as np
import torch

from ..declared import DeclaredOp
from ..types import ImageType, OpTypeError
from . import rng
from .stage import DeviceOperation, nhwc

#: the declaration forms whose per-pixel work has a torch equivalent here, and how
DERIVED_WORK = {"lut": "its table, drawn per image as on the CPU, is gathered on the device",
                "channel_luts": "the channel histograms are taken on the device, the tables "
                                "drawn per image as on the CPU, then gathered",
                "matrix": "the same nearest-neighbour warp by the same matrix, in torch"}


class DerivedOnDevice(DeviceOperation):
    """The device backend of a declaration (``declaration``, a ``DeclaredOp`` subclass): its
    parameters, output type and draws are the declaration's; ``forward`` does the per-pixel
    work of its form in torch."""

    declaration: ClassVar[type]
    #: a backend written by hand for the same op replaces this one (``registry.register_op``)
    derived: ClassVar[bool] = True

    @classmethod
    def signature(cls):
        return cls.declaration.signature()

    def __init__(self, **values):
        super().__init__()
        self.twin = self.declaration(**values)

    def bind(self, clock, position: int) -> None:
        super().bind(clock, position)
        self.twin.bind(clock, position)

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        return self.twin.output_type(image).but(layout="channels_last", jit=False)

    def jit_equivalent(self, image: ImageType):
        """On a CPU device, for uint8 images, the CPU backend at this op's position does the
        same per image in FFCV's parallel stage (same draws, same bytes). None for floats: the
        JIT stage carries float16 as its bits, which a warp's fill would not respect."""
        return self.twin if image.dtype == "uint8" else None

    def for_target(self, target):
        """A table changes the image only. A warp on the device does not move targets yet:
        the declaration's CPU backend does (on a CPU device the compiler runs it anyway)."""
        if self.twin.form != "matrix":
            return None
        raise OpTypeError(f"'{self.op_name}' in image.device.ops cannot move {target.kind} "
                          f"targets yet; write it under image.cpu, where it moves them")

    def forward(self, images, out, indices):
        twin = self.twin
        keys = self.sample_keys(indices)  # once: the gate and the draws both read them
        fires = rng.gate_fires(keys, twin.gate_p(), twin.gate.on_kernel_key, twin.gate.draw)
        kernel_keys = rng.derive(keys, 1).numpy().view(np.uint64)
        source = nhwc(images)
        if twin.form == "matrix":
            result = warped(source, nhwc(out).shape, matrices(twin, source.shape, kernel_keys),
                            twin.params["fill"] if twin.filled else 0)
        else:
            result = gathered(source, tables(twin, source, kernel_keys))
        nhwc(out).copy_(torch.where(fires.to(source.device).view(-1, 1, 1, 1), result, source))


def tables(op: DeclaredOp, images_nhwc: torch.Tensor, kernel_keys: np.ndarray) -> torch.Tensor:
    """uint8 (B, C, 256): each image's table per channel, from the declaration's maths (a
    point map's one table serves every channel)."""
    b, _, _, c = images_nhwc.shape
    args = op.args()
    if op.form == "lut":
        luts = np.stack([op.maths(key, *args) for key in kernel_keys])
        luts = np.repeat(luts[:, None, :], c, axis=1)
    else:
        hist = histograms(images_nhwc).cpu().numpy()
        luts = np.stack([op.maths(hist[i], key, *args) for i, key in enumerate(kernel_keys)])
    return torch.from_numpy(np.ascontiguousarray(luts)).to(images_nhwc.device)


def histograms(images_nhwc: torch.Tensor) -> torch.Tensor:
    """int64 (B, C, 256): how often each value occurs in each channel of each image
    (``cpu.pixels.channel_histograms`` of every image at once)."""
    b, h, w, c = images_nhwc.shape
    bins = (torch.arange(b * c, device=images_nhwc.device).view(b, 1, 1, c) * 256
            + images_nhwc.to(torch.int64))
    return torch.bincount(bins.flatten(), minlength=b * c * 256).view(b, c, 256)


def gathered(images_nhwc: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) uint8: ``luts[b, c, image[b, y, x, c]]``."""
    b, _, _, c = images_nhwc.shape
    rows = torch.arange(b * c, device=images_nhwc.device).view(b, 1, 1, c) * 256
    return luts.flatten()[rows + images_nhwc.to(torch.int64)]


def matrices(op: DeclaredOp, shape, kernel_keys: np.ndarray) -> torch.Tensor:
    """float64 (B, 2, 3): each image's output-to-input matrix from the declaration's maths."""
    _, h, w, _ = shape
    args = op.args()
    return torch.from_numpy(np.stack([op.maths(h, w, key, *args) for key in kernel_keys]))


def warped(images_nhwc: torch.Tensor, out_shape, matrix: torch.Tensor, fill) -> torch.Tensor:
    """``cpu.warp.affine_warp`` of every image at once, the same float64 sums in the same
    order (so the same source pixel for every output pixel): output pixel (x, y) samples
    the source at ``floor(matrix @ (x + 0.5, y + 0.5, 1))``, ``fill`` outside it."""
    b, height, width, channels = images_nhwc.shape
    _, out_height, out_width, _ = out_shape
    device = images_nhwc.device
    matrix = matrix.to(device)
    x = torch.arange(out_width, dtype=torch.float64, device=device) + 0.5
    y = torch.arange(out_height, dtype=torch.float64, device=device) + 0.5
    a, bb, c, d, e, f = (matrix[:, i, j].view(b, 1, 1) for i in range(2) for j in range(3))
    u = (a * x.view(1, 1, -1) + bb * y.view(1, -1, 1)) + c
    v = (d * x.view(1, 1, -1) + e * y.view(1, -1, 1)) + f
    inside = (u >= 0.0) & (u < width) & (v >= 0.0) & (v < height)
    column = u.clamp(0.0, width - 1.0).to(torch.int64)
    line = v.clamp(0.0, height - 1.0).to(torch.int64)
    where = torch.where(inside, line * width + column, height * width)
    filler = torch.tensor(fill, dtype=images_nhwc.dtype, device=device).expand(b, 1, channels)
    source = torch.cat([images_nhwc.reshape(b, height * width, channels), filler], dim=1)
    index = where.view(b, -1, 1).expand(-1, -1, channels)
    return torch.gather(source, 1, index).view(b, out_height, out_width, channels)


def derived_device_backend(op: type) -> Optional[type]:
    """The device backend of a CPU declaration whose form allows one, else None."""
    if not (isinstance(op, type) and issubclass(op, DeclaredOp)) or op.form not in DERIVED_WORK:
        return None
    name = f"{op.__name__}OnDevice"
    return type(name, (DerivedOnDevice,), {
        "__doc__": f"{inspect.cleandoc(op.__doc__ or '')}\n\nOn the device: {DERIVED_WORK[op.form]} (the same bytes as "
                   f"the CPU backend; on a CPU device, uint8 images run it per image in the "
                   f"JIT stage).",
        "__module__": op.__module__, "__qualname__": name, "declaration": op})
