"""Several views of one image from one decode (self-supervised recipes: SimCLR, BYOL, DINO's
multi-crop).

FFCV decodes a field once per pipeline, so N views of one image cost N decodes. Here one
``ViewsDecoder`` starts every view's pipeline: per sample it draws each view copy's crop box
from that copy's own crop op (its own keyed stream: the view's name and the copy's index are
in the key), decodes the union of the boxes once (crop-aware, at the largest DCT scale any
copy needs: ``jpeg.dct_scale``) and, while that block is still in cache, resizes every copy's
box out of it (``jpeg.resize_from_block``, as a crop decoder resizes out of its own decode).
When every copy goes straight from its crop to the CPU-lowered normalize (+ flip)
(``JitNormalizeFlip``, one dtype), the decoder also normalizes each resized copy while it is
still in cache (``finishes``): one pass over memory per copy instead of two, same bytes.

Its output holds all copies of the batch, copy by copy: copy k's n images are one contiguous
(n, h, w, 3) run. Each copy's pipeline starts with a ``ViewCrop`` that returns its run as a
view of that memory (no copy). The copies' pipelines are FFCV pipelines whose source is the
decoder (FFCV 1.0's ``PipelineSpec(source=operation)``), so FFCV runs the decoder once per
batch.
"""
from dataclasses import replace
from functools import lru_cache
from typing import Callable, List, Optional, Sequence

import numba
import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.pipeline.allocation_query import AllocationQuery
from numba import njit

from ..base import PureOperation
from ..batch_loop import epoch_streams, gate_fires
from ..ffcv_api import uncompiled
from ..kernel_errors import check_failure, raise_replayed
from ..pointers import ENTRY_FLAGS, by_pointer, bytes_at, replay
from ..rng import derive, sample_key
from ..types import ImageType
from .decoders import (CenterCrop, RandomResizedCrop, Resize, image_sample_reader,
                       center_crop_box, random_resized_crop_box, whole_image_box)
from .geometry import horizontal_flip
from .jpeg import decode_region, dct_scale, resize_from_block, resize_normalized_from_block
from .native import decode_jpeg, resize_crop
from .normalize import JitNormalizeFlip, lookup_pixels

#: the threads in Numba's pool: every ``numba.get_thread_id()`` is below it
POOL_THREADS = numba.config.NUMBA_NUM_THREADS
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
    is the batch's copies, copy by copy (``ViewCrop`` hands each its run). With ``finishes``
    (each copy's ``JitNormalizeFlip``, see ``can_finish``) it writes them normalized."""

    stage = "decoder"
    from_spec = False

    def __init__(self, crops: Sequence[PureOperation],
                 finishes: Optional[Sequence[JitNormalizeFlip]] = None):
        self.params = {}
        super().__init__()
        self.crops = list(crops)
        self.finishes = list(finishes) if finishes else None

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        return ImageType(height=None, width=None)

    def declare_state_and_memory(self, previous_state):
        """Per sample: every copy's image (flat, uint8 or the finishes' dtype), a scratch block
        for the decode, the size of the largest image (the union of the boxes can be all of
        it), and with finishes a scratch image for a copy's crop before it is normalized."""
        largest = int(self.metadata["height"].max()) * int(self.metadata["width"].max())
        uint8 = np.dtype(np.uint8)
        dtype = self.finishes[0].table.dtype if self.finishes else uint8
        shape = (sum(image_bytes(op) for op in self.crops),)
        crop = max(image_bytes(op) for op in self.crops) if self.finishes else 1
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=dtype),
                (AllocationQuery(shape, dtype), AllocationQuery((3 * largest,), uint8),
                 AllocationQuery((crop,), uint8)))

    def generate_code(self) -> Callable:
        """Per batch: every copy's streams for the epoch (serial), then per sample in
        parallel: the boxes, the union decode, the resizes and the finishes
        (``_views_decode_step``)."""
        kinds = np.array([CROP_KINDS[type(op)] for op in self.crops], np.int64)
        params = np.stack([crop_params(op) for op in self.crops])
        sizes = np.array([op.output_size for op in self.crops], np.int64)
        firsts = first_bytes(self.crops)
        finishes = self.finishes or []
        positions = [op.position for op in self.crops + finishes]
        tables = (np.stack([op.table for op in finishes]) if finishes
                  else np.zeros((1, 3, 256), np.uint8))
        flip_p = np.array([op.params["p"] for op in finishes], np.float64)
        read_samples = image_sample_reader(self.memory_read)
        step = _views_decode_step(bool(finishes))
        run = by_pointer(step, parallel=True)

        def report(i, arguments):  # arguments: run's (count, samples, indices, ...)
            raise_replayed(self, arguments[2][i], lambda: replay(step, i, arguments))

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp, crop = my_storage
            count = len(batch_indices)
            samples = read_samples(batch_indices, metadata, storage_state)
            indices = batch_indices.astype(np.int64)
            # the crops' streams, then the finishes'
            streams = epoch_streams(self.clock, positions)
            arguments = (count, samples, indices, streams, kinds, params, sizes,
                         firsts, temp, rows_per_thread(len(temp)), destination.reshape(-1), crop,
                         tables, flip_p)
            check_failure(run(*arguments), report, arguments)
            return destination[:count]

        return uncompiled(decode)


def can_finish(op) -> bool:
    """Whether ``op``, right after a view copy's crop, can run inside the shared decode: the
    CPU-lowered normalize (+ flip) of a CPU device."""
    return isinstance(op, JitNormalizeFlip)


@lru_cache(maxsize=None)
def _views_decode_step(finished: bool):
    """njit ``step(i, samples, indices, streams, kinds, params, sizes, firsts, temp, by_thread,
    flat, crop, tables, flip_p)``: sample i's boxes, one per copy, the union of them decoded
    once into a row of ``temp`` (crop-aware; ``scratch_row``), then each copy's box resized
    out of it into its place in ``flat`` (copy by copy, each a run of ``count`` images: the
    batch's size is ``samples``' length). A raw image, or a JPEG the crop-aware decode or
    resize refused (decoded whole), is cropped and resized as a crop decoder does it (FFCV's
    resize), so a one-copy view gives that decoder's bytes.

    ``finished``: each copy is resized into ``crop[i]`` and then normalized into its place
    through ``tables[k]``, mirrored where its flip's gate fires (probability ``flip_p[k]``,
    the stream ``streams[copies + k]``): ``JitNormalizeFlip``'s draws and bytes."""
    jpg = IMAGE_MODES['jpg']
    from_block, from_image = _finished_copies() if finished else _plain_copies()

    @njit(**ENTRY_FLAGS)
    def step(i, samples, indices, streams, kinds, params, sizes, firsts, temp, by_thread, flat,
             crop, tables, flip_p):
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
        scratch = temp[scratch_row(by_thread, i)]
        if samples[i, 4] == jpg:
            decoded, first_row, first_column, rows, columns = decode_region(
                image_data, scratch, height, width, m, top, left, bottom - top, right - left)
            if decoded:
                block = scratch[:3 * rows * columns].reshape(rows, columns, 3)
                resized = True
                for k in range(copies):
                    resized &= from_block(block, m, first_row, first_column, boxes[k], flat,
                                          crop, firsts, sizes, count, i, k, streams, indices,
                                          tables, flip_p)
                if resized:
                    return
            decode_jpeg(image_data, scratch, np.uint32(height), np.uint32(width))
            image = scratch[:3 * height * width].reshape(height, width, 3)
        else:
            image = image_data.reshape(height, width, 3)
        for k in range(copies):  # as a crop decoder does with a whole image: FFCV's resize
            from_image(image, boxes[k], flat, crop, firsts, sizes, count, i, k, streams,
                       indices, tables, flip_p)

    return step


def _plain_copies():
    """``(from_block, from_image)`` for a decoder without finishes: copy k's box resized into
    its place in ``flat`` out of the decoded block (``jpeg.resize_from_block``; False if it
    failed) or out of a whole image (FFCV's resize)."""
    @njit(inline="always")
    def from_block(block, m, row, column, box, flat, crop, firsts, sizes, count, i, k,
                   streams, indices, tables, flip_p):
        return resize_from_block(block, m, row, column, box[0], box[1], box[2], box[3],
                                 copy_image(flat, firsts, sizes, count, i, k))

    @njit(inline="always")
    def from_image(image, box, flat, crop, firsts, sizes, count, i, k, streams, indices,
                   tables, flip_p):
        y, x, h, w = box[0], box[1], box[2], box[3]
        resize_crop(image, y, y + h, x, x + w, copy_image(flat, firsts, sizes, count, i, k))

    return from_block, from_image


def _finished_copies():
    """``(from_block, from_image)`` for a decoder with finishes: as ``_plain_copies``, each
    resized copy normalized through ``tables[k]`` on its way into ``flat`` (in the area
    resize's rows, else through ``crop[i]``), mirrored where its flip fires (``mirrors``)."""
    on_kernel_key, draw = horizontal_flip.gate.on_kernel_key, horizontal_flip.gate.draw

    @njit(inline="always")
    def mirrors(streams, indices, flip_p, i, k):
        """Whether copy k's flip fires for sample i: its own stream follows the crops'."""
        key = sample_key(streams[len(flip_p) + k], indices[i])
        return gate_fires(key, derive(key, 1), flip_p[k], on_kernel_key, draw)

    @njit(inline="always")
    def cropped(crop, sizes, i, k):
        h, w = sizes[k, 0], sizes[k, 1]
        return crop[i][:3 * h * w].reshape(h, w, 3)

    @njit(inline="always")
    def from_block(block, m, row, column, box, flat, crop, firsts, sizes, count, i, k,
                   streams, indices, tables, flip_p):
        return resize_normalized_from_block(
            block, m, row, column, box[0], box[1], box[2], box[3], cropped(crop, sizes, i, k),
            copy_image(flat, firsts, sizes, count, i, k), tables[k],
            mirrors(streams, indices, flip_p, i, k))

    @njit(inline="always")
    def from_image(image, box, flat, crop, firsts, sizes, count, i, k, streams, indices,
                   tables, flip_p):
        y, x, h, w = box[0], box[1], box[2], box[3]
        resized = cropped(crop, sizes, i, k)
        resize_crop(image, y, y + h, x, x + w, resized)
        lookup_pixels(resized, copy_image(flat, firsts, sizes, count, i, k), tables[k],
                      mirrors(streams, indices, flip_p, i, k))

    return from_block, from_image


@njit(inline="always")
def scratch_row(by_thread, i):
    """The row of a per-sample scratch buffer sample i's decode may use: with ``by_thread``
    (the buffer has a row per thread: ``rows_per_thread``), its thread's, so each thread's
    block stays in its core's cache from one sample to the next (two views 1.23-1.27x one
    view's cost, against 1.29-1.31x with row i); else row i."""
    if by_thread:
        return np.int64(numba.get_thread_id())
    return np.int64(i)


@njit(inline="always")
def rows_per_thread(rows):
    """Whether a per-sample buffer of ``rows`` rows has one for every thread of Numba's pool
    (``get_thread_id`` is below its size, whatever thread count a loop runs with)."""
    return rows >= POOL_THREADS


@njit(inline="always")
def copy_image(flat, firsts, sizes, count, i, k):
    """Where sample i's image of copy k goes in the decoder's output ``flat`` (copy k's run
    of ``count`` images starts at ``count * firsts[k]``)."""
    h, w = sizes[k, 0], sizes[k, 1]
    start = count * firsts[k] + i * 3 * h * w
    return flat[start:start + 3 * h * w].reshape(h, w, 3)


class ViewCrop(PureOperation):
    """The first step of one view copy's pipeline: its run of the ``ViewsDecoder``'s output
    (copy ``copy`` of ``crops``), as (n, h, w, 3) images: a view of that memory, no copy.
    ``finish``: the copy's normalize the decoder ran (its output type), or None."""

    stage = "cpu"
    from_spec = False

    def __init__(self, crops: Sequence[PureOperation], copy: int,
                 finish: Optional[PureOperation] = None):
        self.params = {}
        super().__init__()
        self.crop, self.copy, self.finish = crops[copy], copy, finish
        self.first = int(first_bytes(crops)[copy])
        self.bind(self.crop.clock, self.crop.position)
        self.origin = self.crop.origin

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        h, w = self.crop.output_size
        cropped = ImageType(height=h, width=w)
        return self.finish.output_type(cropped) if self.finish else cropped

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

        return uncompiled(crop)


def view_crops(crops: List[PureOperation],
               finishes: Optional[Sequence[PureOperation]] = None) -> List[ViewCrop]:
    """Each copy's first step, for a ``ViewsDecoder`` over ``crops`` (and ``finishes``)."""
    return [ViewCrop(crops, k, finishes[k] if finishes else None) for k in range(len(crops))]


def can_start_a_view(op_class: type) -> bool:
    """Whether a view may start with an op of ``op_class`` (a crop the shared decode serves)."""
    return op_class in CROP_KINDS
