"""The device-stage contract: an FFCV Operation in the non-JIT stage, after
ToTensor -> ToDevice -> ToTorchImage(channels_last=True).

Its input is a (B, C, H, W) torch tensor with NHWC memory (channels_last) on the target
device; it writes into a buffer FFCV allocates on that same device and returns a
channels_last view of it. Draws are keyed exactly like the CPU ops' (``operations.rng``),
computed in torch from FFCV's batch indices, with the epoch read from the clock per batch.
"""
from dataclasses import replace
from typing import Optional, Tuple

import numpy as np
import torch

from ..base import Gate, PureOperation, StepOf
from ..ffcv_api import AllocationQuery, State
from ..types import TORCH_DTYPES, ImageType
from . import rng
from .instance_batch import box_batch, keypoint_batch, mirrored_boxes, mirrored_points

FLOAT_DTYPES = ("float16", "bfloat16", "float32")


def dtype_name(dtype) -> str:
    """The spec name of a torch (or numpy) dtype: ``torch.float16`` -> ``"float16"``."""
    return str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else np.dtype(dtype).name


def nhwc(batch: torch.Tensor) -> torch.Tensor:
    """The (B, H, W, C) contiguous view of a channels_last (B, C, H, W) tensor."""
    return batch.permute(0, 2, 3, 1)


def mirrored(images_nhwc: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) images, mirrored left-right where ``flips`` (B bools) is true."""
    flips = flips.to(images_nhwc.device).view(-1, 1, 1, 1)
    return torch.where(flips, images_nhwc.flip(2), images_nhwc)


def device_image_type(state: State) -> ImageType:
    """Our ImageType for an FFCV State after ToTorchImage (shape C, H, W)."""
    c, h, w = state.shape
    return ImageType(height=h, width=w, channels=c, dtype=dtype_name(state.dtype),
                     layout="channels_last", device=str(state.device), jit=False)


class DeviceOperation(PureOperation):
    """Base of the device ops: subclasses implement ``forward(images, out, indices)`` writing
    every element of ``out`` (B, C, H, W channels_last, dtype from ``output_type``)."""

    stage = "device"

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        return image.but(layout="channels_last", jit=False)

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, Optional[AllocationQuery]]:
        out = self.output_type(device_image_type(previous_state))
        dtype = TORCH_DTYPES[out.dtype]
        # NHWC buffer: viewed as NCHW it is channels_last-contiguous
        return (replace(previous_state, jit_mode=False, dtype=dtype),
                AllocationQuery((out.height, out.width, out.channels), dtype,
                                device=previous_state.device))

    def generate_code(self):
        def device_step(images, dst, indices):
            out = dst[:images.shape[0]].permute(0, 3, 1, 2)
            self.forward(images, out, torch.from_numpy(np.asarray(indices, dtype=np.int64)))
            return out

        device_step.with_indices = True
        return device_step

    def forward(self, images: torch.Tensor, out: torch.Tensor, indices: torch.Tensor) -> None:
        raise NotImplementedError

    def sample_keys(self, indices: torch.Tensor) -> torch.Tensor:
        """Each sample's key for this op at the clock's current epoch (int64, on CPU)."""
        stream = rng.stream_key(self.clock.seed, self.clock.epoch, self.position)
        return rng.sample_keys(stream, indices)

    def fires(self, indices: torch.Tensor, p: float, gate: Gate) -> torch.Tensor:
        """Which samples an op with probability ``p`` and ``gate`` applies to: the CPU
        loop's gate (``batch_loop.gate_fires``), the same decision per sample."""
        return rng.gate_fires(self.sample_keys(indices), p, gate.on_kernel_key, gate.draw)

    def apply(self, images: torch.Tensor, indices=None) -> torch.Tensor:
        """Run this op on a (B, C, H, W) torch batch outside a Loader, with the same code and
        draws a Loader would use; ``indices`` default to 0..B-1."""
        b, c, h, w = images.shape
        state = State(jit_mode=False, device=images.device, shape=(c, h, w), dtype=images.dtype)
        _, query = self.declare_state_and_memory(state)
        dst = torch.empty((b,) + tuple(query.shape), dtype=query.dtype, device=images.device)
        return self.generate_code()(images, dst, np.arange(b) if indices is None else indices)


#: how a device flip mirrors each target kind's batch: ``mirror(batch, flips)``
TARGET_MIRRORS = {"mask": mirrored, "boxes": mirrored_boxes, "keypoints": mirrored_points}


class TargetMirrorOnDevice(StepOf):
    """A target batch on the device (masks (B, H, W, 1), boxes or keypoints as instance
    arrays), mirrored left-right for the samples ``flips(indices)`` picks: the decisions of
    the image op whose ``for_target`` built it (``horizontal_flip``'s device backend,
    ``normalize_flip``)."""

    stage = "device"

    def __init__(self, of: PureOperation, target):
        super().__init__(of)
        self.flips, self.mirror = of.flips, TARGET_MIRRORS[target.kind]

    def declare_state_and_memory(self, previous_state: State):
        return (replace(previous_state, jit_mode=False),
                AllocationQuery(tuple(previous_state.shape), previous_state.dtype,
                                device=previous_state.device))

    def generate_code(self):
        def mirror_targets(targets, dst, indices):
            out = dst[:targets.shape[0]]
            out.copy_(self.mirror(targets, self.flips(torch.from_numpy(np.asarray(indices, np.int64)))))
            return out

        mirror_targets.with_indices = True
        return mirror_targets


def mask_batch(masks: torch.Tensor, target) -> torch.Tensor:
    """(B, H, W, 1) masks -> the (B, H, W) batch, uint8 as uint8, uint16 as int32 (torch's
    uint16 has few operations; class indices want a signed type)."""
    out = masks[..., 0]
    return out if out.dtype == torch.uint8 else out.to(torch.int32)


#: each target kind's batch (``TargetBatch``): ``batch_of(pipeline_output, target)``
TARGET_BATCHES = {"mask": mask_batch, "boxes": box_batch, "keypoints": keypoint_batch}


class TargetBatch(StepOf):
    """The last step of a target's pipeline: its kind's batch (``TARGET_BATCHES``): masks
    (B, H, W), boxes a ``BoxBatch``, keypoints a ``KeypointBatch``."""

    stage = "device"

    def __init__(self, of: PureOperation, target):
        super().__init__(of)
        self.target, self.batch_of = target, TARGET_BATCHES[target.kind]

    def declare_state_and_memory(self, previous_state: State):
        if self.target.kind != "mask":
            return replace(previous_state, jit_mode=False), None
        dtype = torch.uint8 if previous_state.dtype == torch.uint8 else torch.int32
        return replace(previous_state, jit_mode=False, shape=tuple(previous_state.shape)[:-1],
                       dtype=dtype), None

    def generate_code(self):
        def batch(targets, _dst):
            return self.batch_of(targets, self.target)

        return batch
