"""Boxes and keypoints at the end of their pipeline: mirrored on the device for the samples a
device flip picks, then turned from instance arrays (``operations.cpu.instances``) into the
padded batch a detection or pose model takes.

A batch of boxes is a ``BoxBatch``: ``boxes`` (N, M, 4) float32 in the target's ``format``,
``labels`` (N, M) int64 and ``valid`` (N, M) bool, M the most instance rows any sample of
this batch still uses. Rows keep their instance's index (row i of boxes and of keypoints is
one instance); a row that is padding, lost everything to clips, or fails the target's
``min_area`` / ``min_visibility`` / ``min_size`` has ``valid`` False, zero coordinates and
label -1. ``detection_targets`` turns a batch into torchvision's list of dicts.
"""
from typing import Dict, List, NamedTuple

import torch

from ..cpu.instances import SHARE


class BoxBatch(NamedTuple):
    """A batch's boxes: (N, M, 4) float32, (N, M) int64 labels (-1 where not valid), (N, M)
    bool valid."""

    boxes: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor


class KeypointBatch(NamedTuple):
    """A batch's keypoints: (N, M, K, 2) float32 x, y; (N, M, K) uint8 visibility (as
    stored, 0 for points off the image or not labelled); (N, M) bool valid (an instance)."""

    points: torch.Tensor
    visibility: torch.Tensor
    valid: torch.Tensor


def mirrored_boxes(instances: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """(B, 1 + M, 6) box arrays mirrored left-right (x -> width - x) where ``flips``."""
    out = instances.clone()
    width = instances[:, :1, 1]
    rows, moved = out[:, 1:], instances[:, 1:]
    mirror = flips.to(instances.device).view(-1, 1) & (moved[..., SHARE] > 0)
    rows[..., 0] = torch.where(mirror, width - moved[..., 2], moved[..., 0])
    rows[..., 2] = torch.where(mirror, width - moved[..., 0], moved[..., 2])
    return out


def mirrored_points(instances: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """(B, 1 + M, 1 + 3K) keypoint arrays mirrored left-right where ``flips``: x -> width
    - x, the points reordered by the header's mirror permutation."""
    out = instances.clone()
    count = (instances.shape[2] - 1) // 3
    perm = instances[:, 0, 2:2 + count].long()  # (B, K)
    triples = instances[:, 1:, 1:].reshape(instances.shape[0], -1, count, 3)
    swapped = torch.gather(triples, 2, perm[:, None, :, None].expand_as(triples))
    swapped[..., 0] = instances[:, :1, 1, None] - swapped[..., 0]
    mirror = flips.to(instances.device).view(-1, 1, 1, 1) & (instances[:, 1:, :1, None] > 0)
    out[:, 1:, 1:] = torch.where(mirror, swapped, triples).reshape(out[:, 1:, 1:].shape)
    return out


def used_rows(present: torch.Tensor) -> int:
    """How many leading rows of a (N, M) ``present`` mask some sample uses."""
    used = present.any(0).nonzero()
    return int(used[-1]) + 1 if len(used) else 0


def box_batch(instances: torch.Tensor, target) -> BoxBatch:
    """The ``BoxBatch`` of (N, 1 + M, 6) box arrays, filtered and formatted as ``target``
    (``operations.targets.Target``) says."""
    height, width = instances[:, :1, 0], instances[:, :1, 1]
    rows = instances[:, 1:]
    rows = rows[:, :used_rows(rows[..., SHARE] > 0)]
    x1, y1, x2, y2 = rows[..., 0], rows[..., 1], rows[..., 2], rows[..., 3]
    w, h = x2 - x1, y2 - y1
    valid = ((rows[..., SHARE] > 0) & (rows[..., SHARE] >= target.min_visibility) &
             (w * h >= target.min_area) & (w >= target.min_size) & (h >= target.min_size))
    if target.box_format == "xywh":
        coords = (x1, y1, w, h)
    elif target.box_format == "cxcywh":
        coords = ((x1 + x2) / 2, (y1 + y2) / 2, w, h)
    else:
        coords = (x1, y1, x2, y2)
    boxes = torch.stack(coords, -1)
    if target.normalized:
        boxes = boxes / torch.stack((width, height, width, height), -1)
    boxes = torch.where(valid[..., None], boxes, torch.zeros_like(boxes)).to(torch.float32)
    labels = torch.where(valid, rows[..., 4].long(), torch.full_like(valid, -1, dtype=torch.long))
    return BoxBatch(boxes, labels, valid)


def keypoint_batch(instances: torch.Tensor, target) -> KeypointBatch:
    """The ``KeypointBatch`` of (N, 1 + M, 1 + 3K) keypoint arrays."""
    rows = instances[:, 1:]
    rows = rows[:, :used_rows(rows[..., 0] > 0)]
    triples = rows[..., 1:].reshape(rows.shape[0], rows.shape[1], -1, 3)
    return KeypointBatch(triples[..., :2].to(torch.float32), triples[..., 2].to(torch.uint8),
                         rows[..., 0] > 0)


def detection_targets(boxes: BoxBatch) -> List[Dict[str, torch.Tensor]]:
    """The list of ``{"boxes": (n, 4), "labels": (n,)}`` per sample that torchvision's
    detection models take: each sample's valid rows."""
    return [{"boxes": b[v], "labels": l[v]} for b, l, v in zip(*boxes)]
