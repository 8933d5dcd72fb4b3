"""Stored detection and pose targets: FFCV fields holding a variable number of instances per
image (boxes with class labels, or keypoints), and their plain decoders.

FFCV's answer to "a varying number of boxes per image" (libffcv/ffcv #70, #222, #282) was a
fixed-size array padded by hand plus the count in another field. ``BoxesField`` and
``KeypointsField`` store each sample's instances as they are, and their decoders pad a batch
to the largest count in the file.

Coordinates are absolute pixels of the **stored** image (after ``--max-resolution``), top-left
origin, continuous: pixel (x, y) covers [x, x+1) x [y, y+1), so a box covering a whole W x H
image is (0, 0, W, H).

- ``BoxesField()`` (type id ``BOXES_TYPE_ID``): a ``BoxesSample(boxes, labels, height,
  width)`` per sample: ``boxes`` float (n, 4) as x1, y1, x2, y2, ``labels`` int (n,)
  contiguous class ids >= 0, ``height``/``width`` of the stored image; n may be 0.
- ``KeypointsField(num_keypoints)`` (type id ``KEYPOINTS_TYPE_ID``): a
  ``KeypointsSample(points, height, width)``: ``points`` float (n, K, 3) as x, y, visibility
  (COCO's: 0 not labelled, 1 labelled but not visible, 2 visible). K is stored in the
  field's header arguments.

Storage (``payload_views`` reads it): per sample, raw little-endian bytes: boxes are float32
(n, 4) then int32 (n,) labels (20 n bytes); keypoints float32 (n, K, 3) (12 n K bytes). A
sample without instances allocates nothing (ptr 0). The metadata row
(``INSTANCES_METADATA``) is ptr, size (FFCV's own names, as in its BytesField), height, width,
count. ``instances_sample_reader`` turns a batch's rows into (address, size, height, width,
count); decoders of the augmentation side reuse it with ``payload_views``.

In plain FFCV code::

    from ffcv.loader import Loader
    from ffcv.transforms import ToTensor
    from operations.cpu.instances_field import BoxesDecoder  # registers the field types
    loader = Loader("coco.beton", batch_size=16, pipelines={"boxes": [BoxesDecoder(), ToTensor()]})
    for images, boxes in loader: ...  # boxes: (16, max count, 6) x1 y1 x2 y2 label valid

FFCV finds a field's class by the type id in the .beton's field table
(``ffcv.types.TYPE_ID_HANDLER``, FFCV 1.0.2's private table, as ``mask_field`` uses it):
importing this module adds both ids there (``operations.builtins`` imports it wherever FFCV
imports).
"""
from dataclasses import replace
from functools import lru_cache
from typing import Callable, NamedTuple, Tuple, Type

import numpy as np
from ffcv.fields.base import ARG_TYPE, Field
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from ffcv.types import TYPE_ID_HANDLER
from numba import njit

from ..errors import PureffcvError
from ..pointers import ENTRY_FLAGS, bytes_at
from .decode_loop import locate_samples, plain_decode_loop, sample_rows

#: the type ids in a .beton's field table (``mask_field.MASK_TYPE_ID`` is 32)
BOXES_TYPE_ID = 33
KEYPOINTS_TYPE_ID = 34
#: the most instances one sample may hold
MAX_INSTANCES = 65535
#: the largest image side (FFCV's RGBImageField stores sides as uint16)
MAX_SIDE = 65535
#: float32 columns per box in the payload (x1, y1, x2, y2); its int32 labels follow
BOX_COLUMNS = 4
#: bytes per instance: a box (4 float32 + 1 int32 label), a keypoint (3 float32)
BOX_BYTES, KEYPOINT_BYTES = 20, 12
#: per-sample metadata of both fields
INSTANCES_METADATA = np.dtype([("ptr", "<u8"), ("size", "<u8"), ("height", "<u4"),
                               ("width", "<u4"), ("count", "<u4")])
#: the columns of ``instances_sample_reader``'s rows
ADDRESS, SIZE, HEIGHT, WIDTH, COUNT = range(5)


class InstancesError(PureffcvError, ValueError):
    """Boxes or keypoints that cannot be stored or decoded as asked; ``str()`` is one line."""


class BoxesSample(NamedTuple):
    """One image's boxes: ``boxes`` (n, 4) x1, y1, x2, y2 in pixels of the stored image,
    ``labels`` (n,) class ids >= 0, the stored image's ``height`` and ``width``."""
    boxes: np.ndarray
    labels: np.ndarray
    height: int
    width: int


class KeypointsSample(NamedTuple):
    """One image's keypoints: ``points`` (n, K, 3) x, y, visibility (0 not labelled, 1
    labelled not visible, 2 visible) in pixels of the stored image, its ``height``,
    ``width``."""
    points: np.ndarray
    height: int
    width: int


# -- encoding and reading in Python ----------------------------------------------------------

def _shape(value) -> str:
    return str(value.shape) if isinstance(value, np.ndarray) else type(value).__name__


def _float_array(value, what: str, tail: Tuple[int, ...], layout: str) -> np.ndarray:
    """``value`` as a float64 array (n, *tail), n <= MAX_INSTANCES, every value finite."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise InstancesError(f"{what} must be a float array (n, {', '.join(map(str, tail))}) "
                             f"of {layout}; got {type(value).__name__}") from None
    if array.size == 0 and array.ndim <= 1:
        array = array.reshape((0,) + tail)
    if array.ndim != 1 + len(tail) or array.shape[1:] != tail:
        raise InstancesError(f"{what} must be a float array (n, {', '.join(map(str, tail))}) "
                             f"of {layout}; got shape {array.shape}")
    if len(array) > MAX_INSTANCES:
        raise InstancesError(f"{len(array)} {what} in one sample; at most {MAX_INSTANCES}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InstancesError(f"{what} row {row} is not finite: {array[row].tolist()}")
    return array


def _size(height, width) -> Tuple[int, int]:
    if not all(isinstance(v, (int, np.integer)) and 1 <= v <= MAX_SIDE for v in (height, width)):
        raise InstancesError(f"the image size must be two integers in [1, {MAX_SIDE}]; got "
                             f"height {height!r}, width {width!r}")
    return int(height), int(width)


def check_boxes(sample) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """(float32 boxes (n, 4), int32 labels (n,), height, width) of a ``BoxesSample`` (or any
    4-tuple of those); raises ``InstancesError`` for a wrong shape, a non-finite value, a box
    of negative size (x2 < x1 or y2 < y1), a label < 0 or not an integer, n > 65535."""
    try:
        boxes, labels, height, width = sample
    except (TypeError, ValueError):
        raise InstancesError(f"a boxes sample is BoxesSample(boxes, labels, height, width); "
                             f"got {type(sample).__name__}") from None
    boxes = _float_array(boxes, "boxes", (4,), "x1, y1, x2, y2")
    height, width = _size(height, width)
    wrong = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if len(wrong):
        raise InstancesError(f"box {wrong[0]} has a negative size: {boxes[wrong[0]].tolist()} "
                             f"(x1, y1, x2, y2 with x1 <= x2, y1 <= y2)")
    ids = np.asarray(labels)
    if ids.size == 0:
        ids = ids.reshape(0)
    if ids.shape != (len(boxes),) or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise InstancesError(f"labels must be integers (n,) = ({len(boxes)},), one per box; got "
                             f"{ids.dtype} {ids.shape}")
    if len(ids) and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise InstancesError(f"labels must lie in [0, {np.iinfo(np.int32).max}]; got "
                             f"{int(ids.min() if ids.min() < 0 else ids.max())}")
    return boxes.astype(np.float32), ids.astype(np.int32), height, width


def check_keypoints(sample, num_keypoints: int) -> Tuple[np.ndarray, int, int]:
    """(float32 points (n, K, 3), height, width) of a ``KeypointsSample``; raises
    ``InstancesError`` for a wrong shape or K, a non-finite value, a visibility other than
    0, 1, 2, n > 65535."""
    try:
        points, height, width = sample
    except (TypeError, ValueError):
        raise InstancesError(f"a keypoints sample is KeypointsSample(points, height, width); "
                             f"got {type(sample).__name__}") from None
    points = _float_array(points, "keypoints", (num_keypoints, 3), "x, y, visibility")
    height, width = _size(height, width)
    wrong = np.argwhere(~np.isin(points[..., 2], (0, 1, 2)))
    if len(wrong):
        n, k = wrong[0]
        raise InstancesError(f"keypoint {k} of instance {n} has visibility {points[n, k, 2]}; "
                             f"COCO's are 0 (not labelled), 1 (not visible), 2 (visible)")
    return points.astype(np.float32), height, width


def encode_boxes(boxes: np.ndarray, labels: np.ndarray) -> bytes:
    """The payload of checked boxes (``check_boxes``): float32 (n, 4) then int32 (n,)."""
    return boxes.astype("<f4").tobytes() + labels.astype("<i4").tobytes()


def read_boxes(data: bytes, count: int) -> Tuple[np.ndarray, np.ndarray]:
    """(boxes float32 (count, 4), labels int32 (count,)) stored as ``data`` (a sample's
    payload: ``Reader``'s bytes at its ``ptr``); raises ``InstancesError`` when ``data`` is
    not exactly ``count`` boxes."""
    if len(data) != count * BOX_BYTES:
        raise InstancesError(f"the stored boxes hold {len(data)} bytes; {count} boxes take "
                             f"{count * BOX_BYTES}")
    raw = np.frombuffer(data, np.uint8)
    boxes = raw[:count * 16].view("<f4").reshape(count, 4).astype(np.float32)
    return boxes, raw[count * 16:].view("<i4").astype(np.int32)


def read_keypoints(data: bytes, count: int, num_keypoints: int) -> np.ndarray:
    """The float32 (count, K, 3) keypoints stored as ``data``; raises ``InstancesError`` when
    ``data`` is not exactly that."""
    if len(data) != count * num_keypoints * KEYPOINT_BYTES:
        raise InstancesError(f"the stored keypoints hold {len(data)} bytes; {count} instances "
                             f"of {num_keypoints} take {count * num_keypoints * KEYPOINT_BYTES}")
    return np.frombuffer(data, "<f4").reshape(count, num_keypoints, 3).astype(np.float32)


# -- the fields ------------------------------------------------------------------------------

class _InstancesField(Field):
    """What both fields share: the metadata row and writing one payload."""

    @property
    def metadata_type(self) -> np.dtype:
        return INSTANCES_METADATA

    @staticmethod
    def _store(destination, payload: bytes, count: int, height: int, width: int, malloc):
        if payload:  # a sample without instances allocates nothing: FFCV's table would map
            destination["ptr"], storage = malloc(len(payload))  # its 0 bytes to a neighbour
            storage[:] = np.frombuffer(payload, np.uint8)
        else:
            destination["ptr"] = 0
        destination["size"] = len(payload)
        destination["height"], destination["width"] = height, width
        destination["count"] = count


class BoxesField(_InstancesField):
    """A variable number of boxes with class labels per sample (a ``BoxesSample``; the module
    doc gives the layout). ``encode`` raises ``InstancesError`` for anything else
    (``check_boxes``); inside FFCV's writer workers that hangs the writer, so check samples
    before writing (``pipelines.convert`` does)."""

    @staticmethod
    def from_binary(binary: ARG_TYPE) -> Field:
        return BoxesField()

    def to_binary(self) -> ARG_TYPE:
        return np.zeros(1, dtype=ARG_TYPE)[0]

    def encode(self, destination, field, malloc) -> None:
        boxes, labels, height, width = check_boxes(field)
        self._store(destination, encode_boxes(boxes, labels), len(boxes), height, width, malloc)

    def get_decoder_class(self) -> Type[Operation]:
        return BoxesDecoder


class KeypointsField(_InstancesField):
    """``num_keypoints`` (K >= 1) keypoints for each of a variable number of instances per
    sample (a ``KeypointsSample``); K is stored in the field's header arguments. ``encode``
    raises ``InstancesError`` for anything else (``check_keypoints``)."""

    def __init__(self, num_keypoints: int):
        if not isinstance(num_keypoints, (int, np.integer)) or not 1 <= num_keypoints <= 65535:
            raise InstancesError(f"num_keypoints must be an integer in [1, 65535]; got "
                                 f"{num_keypoints!r}")
        self.num_keypoints = int(num_keypoints)

    @staticmethod
    def from_binary(binary: ARG_TYPE) -> Field:
        return KeypointsField(int(np.asarray(binary)[:4].view("<u4")[0]))

    def to_binary(self) -> ARG_TYPE:
        result = np.zeros(1, dtype=ARG_TYPE)[0]
        result[0][:4] = np.array([self.num_keypoints], "<u4").view(np.uint8)
        return result

    def encode(self, destination, field, malloc) -> None:
        points, height, width = check_keypoints(field, self.num_keypoints)
        self._store(destination, points.astype("<f4").tobytes(), len(points), height, width,
                    malloc)

    def get_decoder_class(self) -> Type[Operation]:
        return KeypointsDecoder


for _id, _name in ((BOXES_TYPE_ID, "BoxesField"), (KEYPOINTS_TYPE_ID, "KeypointsField")):
    _holder = TYPE_ID_HANDLER.get(_id)
    if _holder is not None and (_holder.__module__, _holder.__qualname__) != (__name__, _name):
        raise ImportError(f"pureffcv: FFCV's field type {_id} is taken by {_holder.__name__}; "
                          f"{_name} needs another id")
TYPE_ID_HANDLER[BOXES_TYPE_ID] = BoxesField  # a reload of this module: its new classes
TYPE_ID_HANDLER[KEYPOINTS_TYPE_ID] = KeypointsField


# -- reading ----------------------------------------------------------------------------------

def instances_sample_reader(mem_read) -> Callable:
    """``read(batch_indices, metadata, storage_state)``: one int64 row per sample, (address,
    size, height, width, count) (columns ``ADDRESS`` ... ``COUNT``) of its stored instances
    (``mem_read``: FFCV's reader of the field's storage), with numpy. A sample without
    instances has address 0 and size 0. Decoding then runs per sample behind an entry."""

    def read(batch_indices, metadata, storage_state):
        fields = metadata[batch_indices]
        stored = fields["size"] > 0
        addresses, sizes = np.zeros(len(fields), np.int64), np.zeros(len(fields), np.int64)
        if stored.any():
            found, available = locate_samples(mem_read, fields["ptr"][stored], storage_state)
            addresses[stored] = found
            sizes[stored] = np.minimum(fields["size"][stored].astype(np.int64), available)
        return sample_rows(addresses, sizes, fields["height"], fields["width"], fields["count"])

    return read


@njit(inline="always")
def payload_views(data, count, columns):
    """The float32 (count, columns) view of the start of a payload (``data``: its uint8
    bytes, e.g. ``bytes_at(address, size)``): boxes with ``columns`` 4 (their int32 labels
    follow: ``payload_labels``), keypoints with ``columns`` 3 K. The caller checks the size
    first (``payload_fits``)."""
    return data[:count * columns * 4].view(np.float32).reshape(count, columns)


@njit(inline="always")
def payload_labels(data, count):
    """The int32 (count,) labels that follow ``count`` boxes in a boxes payload."""
    return data[count * 16:count * 20].view(np.int32)


@njit(inline="always")
def payload_fits(size, count, bytes_per_instance) -> bool:
    """Whether a payload of ``size`` bytes holds exactly ``count`` instances."""
    return size == count * bytes_per_instance


def _largest_count(metadata) -> int:
    """The padded instance count of a decoder's output: the largest in the file, >= 1."""
    return max(1, int(metadata["count"].max())) if len(metadata) else 1


class BoxesDecoder(Operation):
    """Decode a ``BoxesField`` into float32 (max_count, 6) per sample, rows [x1, y1, x2,
    y2, label, valid], ``valid`` 1.0 for the sample's boxes and 0.0 for the zero rows that pad
    it to ``max_count``, the largest count in the file (at least 1). Usable in plain FFCV
    code: ``Loader(path, pipelines={"boxes": [BoxesDecoder(), ToTensor()]})``; then
    ``[b[b[:, 5] > 0] for b in batch]`` is each sample's boxes. A sample whose stored bytes
    do not match its count stops the epoch with one line naming it."""

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, AllocationQuery]:
        shape = (_largest_count(self.metadata), 6)
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=np.dtype("float32")),
                AllocationQuery(shape, np.dtype("float32")))

    def generate_code(self) -> Callable:
        return plain_decode_loop(self, instances_sample_reader(self.memory_read), _boxes_step())


class KeypointsDecoder(Operation):
    """Decode a ``KeypointsField`` into float32 (max_count, K, 3) per sample (x, y,
    visibility), padded with zero rows (visibility 0: not labelled) to the largest count in
    the file (at least 1). Usable in plain FFCV code like ``BoxesDecoder``."""

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, AllocationQuery]:
        shape = (_largest_count(self.metadata), self.field.num_keypoints, 3)
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=np.dtype("float32")),
                AllocationQuery(shape, np.dtype("float32")))

    def generate_code(self) -> Callable:
        return plain_decode_loop(self, instances_sample_reader(self.memory_read),
                                 _keypoints_step())


@njit(inline="always")
def check_payload(size, count, bytes_per_instance, capacity):
    """Nothing when a payload of ``size`` bytes holds ``count`` instances that fit in
    ``capacity`` rows, else a ValueError saying what is wrong with the stored sample."""
    if count > capacity:
        raise ValueError("the stored sample holds more instances than the file's largest "
                         "count (damaged metadata)")
    if not payload_fits(size, count, bytes_per_instance):
        raise ValueError("the stored instances' bytes do not match their count (damaged "
                         "data)")


@lru_cache(maxsize=None)
def _boxes_step():
    """njit ``step(i, samples, destination)``: sample i's boxes as padded rows."""

    @njit(**ENTRY_FLAGS)
    def step(i, samples, destination):
        out = destination[i]
        count = samples[i, 4]
        check_payload(samples[i, 1], count, 20, out.shape[0])
        out[:] = 0
        if count == 0:
            return
        data = bytes_at(samples[i, 0], samples[i, 1])
        boxes, labels = payload_views(data, count, 4), payload_labels(data, count)
        for n in range(count):
            for c in range(4):
                out[n, c] = boxes[n, c]
            out[n, 4] = labels[n]
            out[n, 5] = 1.0

    return step


@lru_cache(maxsize=None)
def _keypoints_step():
    """njit ``step(i, samples, destination)``: sample i's keypoints, padded with zeros."""

    @njit(**ENTRY_FLAGS)
    def step(i, samples, destination):
        out = destination[i]
        count, k = samples[i, 4], out.shape[1]
        check_payload(samples[i, 1], count, 12 * k, out.shape[0])
        out[:] = 0
        if count == 0:
            return
        points = payload_views(bytes_at(samples[i, 0], samples[i, 1]), count, 3 * k)
        for n in range(count):
            for j in range(k):
                for c in range(3):
                    out[n, j, c] = points[n, 3 * j + c]

    return step
