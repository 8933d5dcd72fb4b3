"""Several views of one image from one decode (self-supervised recipes: SimCLR, BYOL, DINO's
multi-crop).

FFCV decodes a field once per pipeline, so N views of one image cost N decodes. Here one
``ViewsDecoder`` starts every view's pipeline: per sample it draws each view copy's crop box
from that copy's own crop op (its own keyed stream: the view's name and the copy's index are
in the key), decodes the union of the boxes once (crop-aware, at the largest DCT scale any
copy needs: ``jpeg.dct_scale``) and, while that block is still in cache, resizes every copy's
box out of it (``jpeg.resize_from_block``, as a crop decoder resizes out of its own decode).

Its output holds all copies of the batch, copy by copy: copy k's n images are one contiguous
(n, h, w, 3) run. Each copy's pipeline starts with a ``ViewCrop`` that returns its run as a
view of that memory (no copy). The copies' pipelines are FFCV pipelines whose source is the
decoder (FFCV 1.0's ``PipelineSpec(source=operation)``), so FFCV runs the decoder once per
batch.
"""
from dataclasses import replace
from functools import lru_cache
from typing import Callable, List, Optional, Sequence

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.pipeline.allocation_query import AllocationQuery
from numba import njit

from ..base import PureOperation
from ..batch_loop import epoch_reader
from ..kernel_errors import check_failure, raise_replayed, reporter_token
from ..pointers import ENTRY_FLAGS, by_pointer, bytes_at, replay
from ..rng import sample_key, stream_key
from ..types import ImageType
from .decoders import (CenterCrop, RandomResizedCrop, Resize, _sample_reader,
                       center_crop_box, random_resized_crop_box, whole_image_box)
from .jpeg import decode_region, dct_scale, resize_from_block
from .native import decode_jpeg, resize_crop

#: the crop decoders a view may start with, and the number ``view_box`` knows each by
CROP_KINDS = {RandomResizedCrop: 0, CenterCrop: 1, Resize: 2}


@njit
def view_box(kind, params, key, height, width):
    """The box ``(y, x, h, w)`` the crop of ``kind`` (``CROP_KINDS``) with ``params`` draws:
    random_resized_crop [scale min, max, ratio min, max], center_crop [ratio], resize."""
    if kind == 0:
        return random_resized_crop_box(key, height, width, (params[0], params[1]),
                                       (params[2], params[3]))
    if kind == 1:
        return center_crop_box(height, width, params[0])
    return whole_image_box(key, height, width)


def crop_params(op) -> np.ndarray:
    """A view's crop op as ``view_box``'s four parameters."""
    if isinstance(op, RandomResizedCrop):
        return np.array([*op.params["scale"], *op.params["ratio"]], np.float64)
    if isinstance(op, CenterCrop):
        return np.array([op.params["ratio"], 0, 0, 0], np.float64)
    return np.zeros(4, np.float64)


def image_bytes(op) -> int:
    """Bytes of one image of a crop op's output (HWC uint8)."""
    h, w = op.output_size
    return 3 * int(h) * int(w)


def first_bytes(crops: Sequence[PureOperation]) -> np.ndarray:
    """Per copy, the bytes of one image of every copy before it: copy k's run of n images
    starts at n times this in the decoder's output."""
    return np.cumsum([0] + [image_bytes(op) for op in crops[:-1]]).astype(np.int64)


class ViewsDecoder(PureOperation):
    """Decode each sample once for all its views' crops (``crops``: each view copy's crop op,
    bound to that copy's stream) and resize every copy's box out of that decode. Its output
    is the batch's copies, copy by copy (``ViewCrop`` hands each its run)."""

    stage = "decoder"
    from_spec = False

    def __init__(self, crops: Sequence[PureOperation]):
        self.params = {}
        super().__init__()
        self.crops = list(crops)

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        return ImageType(height=None, width=None)

    def declare_state_and_memory(self, previous_state):
        """Per sample: every copy's image (flat), and a scratch block for the decode, the size
        of the largest image (the union of the boxes can be all of it)."""
        largest = int(self.metadata["height"].max()) * int(self.metadata["width"].max())
        shape, dtype = (sum(image_bytes(op) for op in self.crops),), np.dtype(np.uint8)
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=dtype),
                (AllocationQuery(shape, dtype), AllocationQuery((3 * largest,), dtype)))

    def generate_code(self) -> Callable:
        """Per batch: every copy's stream for the epoch (serial), then per sample in
        parallel: the boxes, the union decode, the resizes (``_views_decode_step``)."""
        kinds = np.array([CROP_KINDS[type(op)] for op in self.crops], np.int64)
        params = np.stack([crop_params(op) for op in self.crops])
        sizes = np.array([op.output_size for op in self.crops], np.int64)
        firsts = first_bytes(self.crops)
        positions = np.array([op.position for op in self.crops], np.int64)
        seed, read_epoch = self.clock.seed, epoch_reader(self.clock)
        read_samples = _sample_reader(self.memory_read)
        step = _views_decode_step()
        run = by_pointer(step, parallel=True)

        @njit
        def streams_for_epoch():
            epoch = read_epoch()
            streams = np.empty(len(positions), np.uint64)
            for k in range(len(positions)):
                streams[k] = stream_key(seed, epoch, positions[k])
            return streams

        def report(i, arguments):  # arguments: run's (count, samples, indices, ...)
            raise_replayed(self, arguments[2][i], lambda: replay(step, i, arguments))

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp = my_storage
            count = len(batch_indices)
            samples = read_samples(batch_indices, metadata, storage_state)
            indices = batch_indices.astype(np.int64)
            arguments = (count, samples, indices, streams_for_epoch(), kinds, params, sizes,
                         firsts, temp, destination.reshape(-1))
            check_failure(run(*arguments), token, arguments)
            return destination[:count]

        token = reporter_token(report, decode)
        return decode


@lru_cache(maxsize=None)
def _views_decode_step():
    """njit ``step(i, samples, indices, streams, kinds, params, sizes, firsts, temp, flat)``:
    sample i's boxes, one per copy, the union of them decoded once into ``temp[i]``
    (crop-aware), then each copy's box resized out of it into its place in ``flat`` (copy by
    copy, each a run of ``count`` images: the batch's size is ``samples``' length). A raw
    image, or a JPEG the crop-aware decode or resize refused (decoded whole), is cropped and
    resized as a crop decoder does it (FFCV's resize), so a one-copy view gives that
    decoder's bytes."""
    jpg = IMAGE_MODES['jpg']

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, streams, kinds, params, sizes, firsts, temp, flat):
        image_data = bytes_at(samples[i, 0], samples[i, 1])
        height, width, count = samples[i, 2], samples[i, 3], len(samples)
        copies = len(kinds)
        boxes = np.empty((copies, 4), np.int64)
        top, left, bottom, right, m = height, width, 0, 0, 1
        for k in range(copies):
            y, x, h, w = view_box(kinds[k], params[k], sample_key(streams[k], indices[i]),
                                  height, width)
            boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = y, x, h, w
            top, left = min(top, y), min(left, x)
            bottom, right = max(bottom, y + h), max(right, x + w)
            m = max(m, dct_scale(h, w, sizes[k, 0], sizes[k, 1]))
        if samples[i, 4] == jpg:
            decoded, first_row, first_column, rows, columns = decode_region(
                image_data, temp[i], height, width, m, top, left, bottom - top, right - left)
            if decoded:
                block = temp[i][:3 * rows * columns].reshape(rows, columns, 3)
                resized = True
                for k in range(copies):
                    resized &= resize_from_block(block, m, first_row, first_column,
                                                 boxes[k, 0], boxes[k, 1], boxes[k, 2],
                                                 boxes[k, 3],
                                                 copy_image(flat, firsts, sizes, count, i, k))
                if resized:
                    return
            decode_jpeg(image_data, temp[i], np.uint32(height), np.uint32(width))
            image = temp[i][:3 * height * width].reshape(height, width, 3)
        else:
            image = image_data.reshape(height, width, 3)
        for k in range(copies):  # as a crop decoder does with a whole image: FFCV's resize
            y, x, h, w = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
            resize_crop(image, y, y + h, x, x + w, copy_image(flat, firsts, sizes, count, i, k))

    return step


@njit(inline="always")
def copy_image(flat, firsts, sizes, count, i, k):
    """Where sample i's image of copy k goes in the decoder's output ``flat`` (copy k's run
    of ``count`` images starts at ``count * firsts[k]``)."""
    h, w = sizes[k, 0], sizes[k, 1]
    start = count * firsts[k] + i * 3 * h * w
    return flat[start:start + 3 * h * w].reshape(h, w, 3)


class ViewCrop(PureOperation):
    """The first step of one view copy's pipeline: its run of the ``ViewsDecoder``'s output
    (copy ``copy`` of ``crops``), as (n, h, w, 3) images: a view of that memory, no copy."""

    stage = "cpu"
    from_spec = False

    def __init__(self, crops: Sequence[PureOperation], copy: int):
        self.params = {}
        super().__init__()
        self.crop, self.copy = crops[copy], copy
        self.first = int(first_bytes(crops)[copy])
        self.bind(self.crop.clock, self.crop.position)
        self.origin = self.crop.origin

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        h, w = self.crop.output_size
        return ImageType(height=h, width=w)

    def declare_state_and_memory(self, previous_state):
        """The copy's images already exist (the decoder wrote them): no memory of its own."""
        state, _ = super().declare_state_and_memory(previous_state)
        return state, None

    def generate_code(self) -> Callable:
        h, w = (int(side) for side in self.crop.output_size)
        first = self.first

        def crop(rows, _destination):
            count = rows.shape[0]
            start = count * first
            return rows.reshape(-1)[start:start + count * h * w * 3].reshape(count, h, w, 3)

        return crop


def view_crops(crops: List[PureOperation]) -> List[ViewCrop]:
    """Each copy's first step, for a ``ViewsDecoder`` over ``crops``."""
    return [ViewCrop(crops, k) for k in range(len(crops))]


def can_start_a_view(op_class: type) -> bool:
    """Whether a view may start with an op of ``op_class`` (a crop the shared decode serves)."""
    return op_class in CROP_KINDS
