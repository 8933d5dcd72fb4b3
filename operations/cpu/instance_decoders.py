"""The decoders of boxes and keypoints targets: each sample's stored instances
(``instances_field``) cut to the box the image's decoder draws for the same sample and scaled
to its output size, as instance arrays (``instances``).

As for masks (``mask_decoders``), the crop box comes from the image decoder's own crop
function keyed by its position, so boxes and image are cut alike without sharing anything at
run time. ``target_decoder`` picks the decoder of any target kind.
"""
from dataclasses import replace
from typing import Callable, Tuple

import numpy as np
from numba import njit

from ..base import PureOperation, StepOf
from ..ffcv_api import AllocationQuery, State
from ..pointers import ENTRY_FLAGS, bytes_at
from ..rng import sample_key
from .decode_loop import keyed_decode_loop
from .instances import BOX_ROW_LENGTH, crop_boxes, crop_points, mirror_permutation
from .instances_field import (BoxesDecoder, KeypointsDecoder, check_payload,
                              instances_sample_reader, payload_labels, payload_views)
from .mask_decoders import MaskCropDecoder


class InstancesCropDecoder(StepOf):
    """A boxes or keypoints target's decoder, built by an image decoder's ``for_target``:
    the box its ``crop(key, height, width) -> (y, x, h, w)`` draws (keyed by the image
    decoder's position when ``keyed``) mapped to the image decoder's current
    ``output_size`` when ``resized``, else to the stored size. Subclasses name the field's
    own decoder as a base, which FFCV requires of a pipeline's first op."""

    def __init__(self, crop: Callable, keyed: bool, resized: bool, of: PureOperation, target):
        super().__init__(of)
        self.crop, self.keyed, self.resized, self.image_decoder = crop, keyed, resized, of
        self.target = target

    def rows(self) -> int:
        """Instance rows per sample: the most any sample of the file holds (at least 1)."""
        return max(1, int(self.metadata["count"].max())) if len(self.metadata) else 1

    def columns(self) -> int:
        raise NotImplementedError

    def declare_state_and_memory(self, previous_state: State):
        shape, dtype = (1 + self.rows(), self.columns()), np.dtype("float64")
        unused = AllocationQuery((1,), np.dtype(np.uint8))  # the keyed decode loop's scratch
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=dtype),
                (AllocationQuery(shape, dtype), unused))

    def output_size(self) -> Tuple[int, int]:
        """(height, width) the instances are scaled to; (0, 0): each sample's stored size."""
        return tuple(self.image_decoder.output_size) if self.resized else (0, 0)

    def generate_code(self) -> Callable:
        step = _instances_step(self.crop, self.output_size(), self.sample_writer())
        return keyed_decode_loop(self, instances_sample_reader(self.memory_read), step, self.keyed)

    def __repr__(self):
        return f"{type(self).__name__}(of={type(self.image_decoder).__name__})"


class BoxesCropDecoder(InstancesCropDecoder, BoxesDecoder):
    """Boxes cut and scaled with the image, clipped to it (``instances.crop_boxes``)."""

    def columns(self) -> int:
        return BOX_ROW_LENGTH

    def sample_writer(self) -> Callable:
        @njit(inline="always")
        def write(data, size, count, y, x, h, w, out_h, out_w, dst):
            check_payload(size, count, 20, dst.shape[0] - 1)
            crop_boxes(payload_views(data, count, 4), payload_labels(data, count),
                       y, x, h, w, out_h, out_w, dst)

        return write


class KeypointsCropDecoder(InstancesCropDecoder, KeypointsDecoder):
    """Keypoints cut and scaled with the image (``instances.crop_points``), with the
    target's mirror permutation in the header."""

    def columns(self) -> int:
        return 1 + 3 * self.field.num_keypoints

    def sample_writer(self) -> Callable:
        count_k = self.field.num_keypoints
        bad = [pair for pair in self.target.flip_pairs if max(pair) >= count_k]
        if bad:
            raise ValueError(f"target '{self.target.name}': flip_pairs {bad} name points past "
                             f"the field's {count_k} keypoints (0..{count_k - 1})")
        perm = mirror_permutation(count_k, self.target.flip_pairs)

        @njit(inline="always")
        def write(data, size, count, y, x, h, w, out_h, out_w, dst):
            check_payload(size, count, 12 * count_k, dst.shape[0] - 1)
            points = payload_views(data, count, 3 * count_k).reshape(count, count_k, 3)
            crop_points(points, perm, y, x, h, w, out_h, out_w, dst)

        return write


def _instances_step(crop: Callable, size: Tuple[int, int], write: Callable):
    """njit ``step(i, samples, indices, stream, temp, destination)``: sample i's crop box
    (the image decoder's ``crop``), its instances written into ``destination[i]`` by
    ``write`` at ``size`` ((0, 0): the stored size)."""
    out_height, out_width = size

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, stream, temp, destination):
        height, width, count = samples[i, 2], samples[i, 3], samples[i, 4]
        y, x, h, w = crop(sample_key(stream, indices[i]), height, width)
        out_h = out_height if out_height > 0 else height
        out_w = out_width if out_width > 0 else width
        data = bytes_at(samples[i, 0], samples[i, 1])  # none: address 0, size 0
        write(data, samples[i, 1], count, y, x, h, w, out_h, out_w, destination[i])

    return step


#: the decoder class of each instance kind
INSTANCE_DECODERS = {"boxes": BoxesCropDecoder, "keypoints": KeypointsCropDecoder}


def target_decoder(target, crop: Callable, keyed: bool, resized: bool, of: PureOperation):
    """The first step of ``target``'s pipeline for an image decoder ``of`` whose crop
    function is ``crop`` (see ``MaskCropDecoder`` and ``InstancesCropDecoder``)."""
    if target.kind == "mask":
        return MaskCropDecoder(crop, keyed, resized, of)
    return INSTANCE_DECODERS[target.kind](crop, keyed, resized, of, target)
