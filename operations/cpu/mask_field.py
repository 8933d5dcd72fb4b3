"""The stored segmentation mask: an FFCV field holding a per-pixel class map (uint8 or
uint16, height x width) losslessly, zlib-compressed, and its decoding.

Why zlib: label maps are large flat regions, which deflate shrinks 10-100x (100x for a
512x512 map of a few shapes, 85x for VOC-sized ones in the tests), and inflating is one C
call per sample (0.6 ms for that 512x512 map on one core, less than decoding its image's
JPEG), made from Numba code through the symbol ``pureffcv_zlib_uncompress``
(``native.declare``: cacheable, unlike a ctypes call).

FFCV finds a field's class by the type id in the .beton's field table
(``ffcv.types.TYPE_ID_HANDLER``, a private table of FFCV 1.0.2, which pureffcv pins);
importing this module adds ``MASK_TYPE_ID`` there, so FFCV's ``Reader`` and ``Loader`` open a
.beton holding masks (``operations.builtins`` imports it wherever FFCV imports).
"""
import ctypes
import ctypes.util
import zlib
from dataclasses import replace
from functools import lru_cache
from typing import Callable, Tuple, Type

import numpy as np
from ffcv.fields.base import ARG_TYPE, Field
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from ffcv.types import TYPE_ID_HANDLER
from numba import njit, types

from ..errors import PureffcvError
from ..pointers import ENTRY_FLAGS, bytes_at
from .decode_loop import locate_samples, plain_decode_loop, sample_rows
from .native import declare

#: the type id of ``MaskField`` in a .beton's field table: FFCV 1.0.2's own fields use 0-6
#: and 255 means "no handler"; 32 leaves room for FFCV's next ones
MASK_TYPE_ID = 32
#: the dtypes a mask may have, by the code stored in its metadata
MASK_DTYPES = (np.dtype("uint8"), np.dtype("uint16"))
#: what ``inflate_mask`` returns when the data inflated to fewer bytes than the mask holds
#: (zlib's own statuses are 0 and negative)
Z_SHORT = -100
Z_OK, Z_DATA_ERROR, Z_BUF_ERROR = 0, -3, -5


class MaskError(PureffcvError, ValueError):
    """A mask that cannot be stored or decoded as asked; ``str()`` is one line."""


def _load_zlib():
    """libz's ``uncompress`` (the library CPython's zlib module links); ``find_library``,
    which runs ``ldconfig``, only where ``libz.so.1`` is not found by that name."""
    try:
        return ctypes.CDLL("libz.so.1").uncompress
    except OSError:
        name = ctypes.util.find_library("z")
    if name is None:
        raise ImportError("pureffcv: libz (zlib's C library) not found; install zlib1g")
    return ctypes.CDLL(name).uncompress


# int uncompress(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen)
_uncompress = declare("pureffcv_zlib_uncompress", _load_zlib(),
                      types.int32(types.uint64, types.uint64, types.uint64, types.uint64))


@njit
def inflate_mask(data, out_flat) -> int:
    """Inflate the zlib bytes ``data`` into ``out_flat`` (uint8, flat, exactly the mask's
    bytes): ``Z_OK`` (0), zlib's error status (``Z_DATA_ERROR``: corrupt or truncated data;
    ``Z_BUF_ERROR``: ``out_flat`` filled but the stream goes on, or its end is cut off;
    Z_MEM_ERROR, -4), or ``Z_SHORT`` when the data held fewer bytes than ``out_flat`` (its
    tail would be stale)."""
    length = np.full(1, out_flat.size, np.uint64)
    status = _uncompress(out_flat.ctypes.data, length.ctypes.data, data.ctypes.data, data.size)
    if status == Z_OK and length[0] != out_flat.size:
        return Z_SHORT
    return status


@njit
def check_inflated(status) -> None:
    """Nothing when ``status`` (``inflate_mask``'s) is ``Z_OK``, else a ValueError saying what
    is wrong with the stored mask (raised in a per-sample step, it reaches the user through
    ``kernel_errors`` naming the sample)."""
    if status == Z_OK:
        return
    if status == Z_DATA_ERROR:
        raise ValueError("the stored mask is damaged (zlib: invalid or truncated data)")
    if status == Z_BUF_ERROR:
        raise ValueError("the stored mask does not end after its height x width (truncated, "
                         "or longer)")
    if status == Z_SHORT:
        raise ValueError("the stored mask inflates to fewer bytes than its height x width")
    raise ValueError("zlib could not inflate the stored mask (Z_MEM_ERROR: out of memory)")


def encode_mask(array: np.ndarray) -> bytes:
    """The zlib bytes of ``array``, a 2-D uint8 or uint16 class map (uint16 little-endian, as
    FFCV stores every number); raises ``MaskError`` for anything else."""
    if not isinstance(array, np.ndarray) or array.ndim != 2 or 0 in array.shape or \
            array.dtype.type not in (np.uint8, np.uint16):
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) \
            else type(array).__name__
        raise MaskError(f"a mask must be a 2-D uint8 or uint16 array (height, width) with "
                        f"height, width > 0; got {got}")
    return zlib.compress(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())


def decode_mask(data: bytes, height: int, width: int, dtype) -> np.ndarray:
    """The (height, width) class map of ``dtype`` (uint8 or uint16) that ``encode_mask``
    stored as ``data``; raises ``MaskError`` when the bytes do not inflate to exactly that."""
    dtype = np.dtype(dtype)
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise MaskError(f"the stored mask is damaged (zlib: {exc})") from None
    if len(raw) != height * width * dtype.itemsize:
        raise MaskError(f"the stored mask inflates to {len(raw)} bytes; a {height}x{width} "
                        f"{dtype} mask has {height * width * dtype.itemsize}")
    return np.frombuffer(raw, dtype.newbyteorder("<")).reshape(height, width).astype(dtype)


class MaskField(Field):
    """A segmentation mask per sample: a 2-D uint8 or uint16 class map, stored losslessly as
    zlib bytes (``encode_mask``), its size and dtype in the sample's metadata. Masks of one
    .beton may differ in size (the keyed crop decoders read each one's); ``MaskDecoder``
    needs one size and dtype. ``encode`` raises ``MaskError`` on anything else than a mask,
    which inside FFCV's writer workers hangs the writer: check the masks before writing
    (``pipelines.convert`` does)."""

    @property
    def metadata_type(self) -> np.dtype:
        return np.dtype([("data_ptr", "<u8"), ("nbytes", "<u8"), ("height", "<u4"),
                         ("width", "<u4"), ("dtype", "<u1")])

    @staticmethod
    def from_binary(binary: ARG_TYPE) -> Field:
        return MaskField()

    def to_binary(self) -> ARG_TYPE:
        return np.zeros(1, dtype=ARG_TYPE)[0]

    def encode(self, destination, field, malloc) -> None:
        data = encode_mask(field)
        destination["data_ptr"], storage = malloc(len(data))
        storage[:] = np.frombuffer(data, np.uint8)
        destination["nbytes"] = len(data)
        destination["height"], destination["width"] = field.shape
        destination["dtype"] = MASK_DTYPES.index(field.dtype)

    def get_decoder_class(self) -> Type[Operation]:
        return MaskDecoder


_holder = TYPE_ID_HANDLER.get(MASK_TYPE_ID)
if _holder is not None and (_holder.__module__, _holder.__qualname__) != (__name__, "MaskField"):
    raise ImportError(f"pureffcv: FFCV's field type {MASK_TYPE_ID} is taken by "
                      f"{_holder.__name__}; MaskField needs another id")
TYPE_ID_HANDLER[MASK_TYPE_ID] = MaskField  # a reload of this module: its new class


def mask_sample_reader(mem_read) -> Callable:
    """``read(batch_indices, metadata, storage_state)``: one int64 row per sample, (address,
    nbytes, height, width, dtype code) of its stored mask (``mem_read``: FFCV's reader of the
    field's storage), with numpy. The inflating then runs behind an entry."""

    def read(batch_indices, metadata, storage_state):
        fields = metadata[batch_indices]
        addresses, sizes = locate_samples(mem_read, fields["data_ptr"], storage_state)
        nbytes = np.minimum(fields["nbytes"].astype(np.int64), sizes)  # never past its bytes
        return sample_rows(addresses, nbytes, fields["height"], fields["width"], fields["dtype"])

    return read


class MaskDecoder(Operation):
    """Decode masks as stored, for data sets whose masks all have one size and dtype (FFCV's
    SimpleRGBImageDecoder rule, checked when the Loader is built): a uint8 or uint16 array
    (height, width, 1) per sample, the trailing 1 so that image kernels (warps, flips) run on
    masks. Usable in plain FFCV code:
    ``Loader(path, pipelines={"mask": [MaskDecoder(), ToTensor()]})``. A sample whose data
    does not inflate stops the epoch with one line naming it (``kernel_errors``)."""

    def declare_state_and_memory(self, previous_state: State) -> Tuple[State, AllocationQuery]:
        kinds = np.unique(np.stack([self.metadata["height"], self.metadata["width"],
                                    self.metadata["dtype"]], axis=1), axis=0)
        if len(kinds) != 1:
            shown = ", ".join(f"{w}x{h} {MASK_DTYPES[d]}" for h, w, d in kinds[:3])
            raise MaskError(f"MaskDecoder needs masks of one size and dtype; this .beton has "
                            f"{len(kinds)} kinds ({shown}{', ...' if len(kinds) > 3 else ''})")
        height, width, code = (int(v) for v in kinds[0])
        shape, dtype = (height, width, 1), MASK_DTYPES[code]
        return (replace(previous_state, jit_mode=True, shape=shape, dtype=dtype),
                AllocationQuery(shape, dtype))

    def generate_code(self) -> Callable:
        """Each sample's address and size read serially, then the masks inflated in parallel
        through a cached C entry (as ``decoders.Decode`` decodes images)."""
        return plain_decode_loop(self, mask_sample_reader(self.memory_read), _inflate_step())


@lru_cache(maxsize=None)
def _inflate_step():
    """njit ``step(i, samples, destination)``: sample i's mask inflated into
    ``destination[i]``, or a ValueError saying why not."""

    @njit(**ENTRY_FLAGS)
    def step(i, samples, destination):
        out = destination[i].reshape(-1).view(np.uint8)
        check_inflated(inflate_mask(bytes_at(samples[i, 0], samples[i, 1]), out))

    return step
