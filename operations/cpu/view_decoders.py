"""Several views of one image from one decode (self-supervised recipes: SimCLR, BYOL, DINO's
multi-crop).

FFCV decodes a field once per pipeline, so N views of one image cost N decodes. Here one
``ViewsDecoder`` starts every view's pipeline: per sample it draws each view copy's crop box
from that copy's own crop op (its own keyed stream: the view's name and the copy's index are
in the key), decodes the union of the boxes once (crop-aware, at the largest DCT scale any
copy needs: ``jpeg.dct_scale``) and writes the decoded block behind a header into one row per
sample. Each copy's pipeline then starts with a ``ViewCrop``: it resizes its own box out of the
block, exactly as a crop decoder resizes out of its own decode (``jpeg.resize_from_block``).

A row: int64 header slots (the block's DCT scale, first row, first column, rows and columns in
scaled pixels, then ``(y, x, h, w)`` of every copy's box in source pixels), then the block's
uint8 HWC pixels. The copies' pipelines are FFCV pipelines whose source is the decoder (FFCV
1.0's ``PipelineSpec(source=operation)``), so FFCV runs the decoder once per batch.
"""
from functools import lru_cache
from typing import Callable, List, Optional, Sequence

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.pipeline.allocation_query import AllocationQuery
from numba import njit

from ..base import PureOperation
from ..batch_loop import epoch_reader
from ..kernel_errors import check_failure, raise_replayed, reporter_token
from ..pointers import ENTRY_FLAGS, by_pointer, bytes_at, int64s_at, replay
from ..rng import sample_key, stream_key
from ..types import ImageType
from .decoders import (CenterCrop, RandomResizedCrop, Resize, _sample_reader,
                       center_crop_box, random_resized_crop_box, whole_image_box)
from .jpeg import decode_region, dct_scale, resize_from_block
from .native import decode_jpeg, memcpy

#: header slots before the copies' boxes: DCT scale, first row, first column, rows, columns
GEOMETRY = 5
#: header slots per copy: its box (y, x, h, w) in source pixels
BOX = 4
#: the crop decoders a view may start with, and the number ``view_box`` knows each by
CROP_KINDS = {RandomResizedCrop: 0, CenterCrop: 1, Resize: 2}


def header_slots(copies: int) -> int:
    """int64 slots of a row's header for ``copies`` view copies."""
    return GEOMETRY + BOX * copies


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


class ViewsDecoder(PureOperation):
    """Decode each sample once for all its views' crops (``crops``: each view copy's crop op,
    bound to that copy's stream). Its output is one row per sample (header and decoded block),
    which each copy's ``ViewCrop`` reads."""

    stage = "decoder"
    from_spec = False

    def __init__(self, crops: Sequence[PureOperation]):
        self.params = {}
        super().__init__()
        self.crops = list(crops)
        self.row_bytes = 0

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        return ImageType(height=None, width=None)

    @property
    def header_bytes(self) -> int:
        return 8 * header_slots(len(self.crops))

    def declare_state_and_memory(self, previous_state):
        """A row per sample: the header, then room for the whole image at full scale (the
        union of the boxes can be all of it); a multiple of 8 bytes, so every header is
        aligned."""
        largest = int(self.metadata["height"].max()) * int(self.metadata["width"].max())
        self.row_bytes = -(-(self.header_bytes + 3 * largest) // 8) * 8
        shape, dtype = (self.row_bytes,), np.dtype(np.uint8)
        return (previous_state.__class__(jit_mode=True, device=previous_state.device,
                                         shape=shape, dtype=dtype),
                AllocationQuery(shape, dtype))

    def generate_code(self) -> Callable:
        """Per batch: every copy's stream for the epoch (serial), then per sample in
        parallel: the boxes, the union decode (``_views_decode_step``)."""
        kinds = np.array([CROP_KINDS[type(op)] for op in self.crops], np.int64)
        params = np.stack([crop_params(op) for op in self.crops])
        sizes = np.array([op.output_size for op in self.crops], np.int64)
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

        def decode(batch_indices, destination, metadata, storage_state):
            samples = read_samples(batch_indices, metadata, storage_state)
            indices = batch_indices.astype(np.int64)
            arguments = (len(batch_indices), samples, indices, streams_for_epoch(), kinds,
                         params, sizes, destination)
            check_failure(run(*arguments), token, arguments)
            return destination[:len(batch_indices)]

        token = reporter_token(report, decode)
        return decode


@lru_cache(maxsize=None)
def _views_decode_step():
    """njit ``step(i, samples, indices, streams, kinds, params, sizes, rows)``: sample i's
    boxes, one per copy, then the union of them decoded once into ``rows[i]`` behind the
    header (crop-aware; a raw image, or a JPEG the crop-aware decode refused, whole at 8/8)."""
    jpg = IMAGE_MODES['jpg']

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, streams, kinds, params, sizes, rows):
        image_data = bytes_at(samples[i, 0], samples[i, 1])
        height, width = samples[i, 2], samples[i, 3]
        row = rows[i]
        header = int64s_at(row.ctypes.data, GEOMETRY + BOX * len(kinds))
        block = row[8 * len(header):]
        top, left, bottom, right, m = height, width, 0, 0, 1
        for k in range(len(kinds)):
            y, x, h, w = view_box(kinds[k], params[k], sample_key(streams[k], indices[i]),
                                  height, width)
            box = GEOMETRY + BOX * k
            header[box], header[box + 1], header[box + 2], header[box + 3] = y, x, h, w
            top, left = min(top, y), min(left, x)
            bottom, right = max(bottom, y + h), max(right, x + w)
            m = max(m, dct_scale(h, w, sizes[k, 0], sizes[k, 1]))
        if samples[i, 4] == jpg:
            decoded, first_row, first_column, block_rows, block_columns = decode_region(
                image_data, block, height, width, m, top, left, bottom - top, right - left)
            if decoded:
                set_geometry(header, m, first_row, first_column, block_rows, block_columns)
                return
            decode_jpeg(image_data, block, np.uint32(height), np.uint32(width))
        else:
            memcpy(image_data, block[:3 * height * width])
        set_geometry(header, 8, 0, 0, height, width)

    return step


@njit(inline="always")
def set_geometry(header, m, first_row, first_column, rows, columns):
    """The block's slots of a row's header."""
    header[0], header[1], header[2], header[3], header[4] = (m, first_row, first_column, rows,
                                                             columns)


class ViewCrop(PureOperation):
    """The first step of one view copy's pipeline: its box (``copy``: its slot in the
    ``ViewsDecoder``'s header) resized out of the shared decode, to its crop op's size."""

    stage = "cpu"
    from_spec = False

    def __init__(self, crop: PureOperation, copy: int, copies: int):
        self.params = {}
        super().__init__()
        self.crop, self.copy, self.copies = crop, copy, copies
        self.bind(crop.clock, crop.position)
        self.origin = crop.origin

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        h, w = self.crop.output_size
        return ImageType(height=h, width=w)

    def generate_code(self) -> Callable:
        step, copy, slots = _view_crop_step, self.copy, header_slots(self.copies)
        run = by_pointer(step, parallel=True)

        def report(i, arguments):
            raise_replayed(self, i, lambda: replay(step, i, arguments))

        def crop(rows, destination):
            arguments = (len(rows), rows, slots, copy, destination)
            check_failure(run(*arguments), token, arguments)
            return destination[:len(rows)]

        token = reporter_token(report, crop)
        return crop


@njit(**ENTRY_FLAGS)
def _view_crop_step(i, rows, slots, copy, destination):
    """Copy ``copy``'s box of sample i resized out of the block its row holds (a header of
    ``slots`` int64 slots first)."""
    row = rows[i]
    header = int64s_at(row.ctypes.data, slots)
    box = GEOMETRY + BOX * copy
    block_rows, block_columns = header[3], header[4]
    block = row[8 * slots:8 * slots + 3 * block_rows * block_columns]
    resize_from_block(block.reshape(block_rows, block_columns, 3), header[0], header[1],
                      header[2], header[box], header[box + 1], header[box + 2],
                      header[box + 3], destination[i])


def view_crops(crops: List[PureOperation]) -> List[ViewCrop]:
    """Each copy's first step, for a ``ViewsDecoder`` over ``crops``."""
    return [ViewCrop(op, k, len(crops)) for k, op in enumerate(crops)]


def can_start_a_view(op_class: type) -> bool:
    """Whether a view may start with an op of ``op_class`` (a crop the shared decode serves)."""
    return op_class in CROP_KINDS

