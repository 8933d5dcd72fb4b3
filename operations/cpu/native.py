"""The C functions the decoders call (FFCV's decode, resize and copy; the crop-aware JPEG
decode), declared to Numba by symbol so that the code calling them can be cached.

A ctypes function called from Numba is its address compiled into the machine code, and
Numba refuses to cache such code ("dynamic globals"); an ``ExternalFunction`` is a symbol
that LLVM resolves when it loads the code, in this process or a later one. Each function is
registered with LLVM under a ``pureffcv_`` name bound to the address ctypes found, so a
generic name such as FFCV's ``resize`` never resolves into another library. Pointers travel
as uint64 (the same registers in the C calling convention).
"""
import ctypes
import glob
import os
import warnings

import llvmlite.binding as llvm
from ffcv.libffcv import ctypes_imdecode, ctypes_memcopy, ctypes_resize
from numba import njit, types

u64, i64, u32, f64, i32 = types.uint64, types.int64, types.uint32, types.float64, types.int32


def declare(name: str, function, signature) -> types.ExternalFunction:
    """``function`` (a ctypes function) as the Numba external function ``name``."""
    llvm.add_symbol(name, ctypes.cast(function, ctypes.c_void_p).value)
    return types.ExternalFunction(name, signature)


_imdecode = declare("pureffcv_ffcv_imdecode", ctypes_imdecode,
                    i32(u64, u64, u32, u32, u64, u32, u32, u32, u32, u32, u32, types.uint8,
                        types.uint8))
_resize = declare("pureffcv_ffcv_resize", ctypes_resize, i64(*(11 * [i64])))
_memcpy = declare("pureffcv_ffcv_memcpy", ctypes_memcopy, i64(u64, u64, u64))


@njit
def decode_jpeg(source, destination, height, width):
    """Decode the JPEG bytes ``source`` (height x width) into ``destination`` (FFCV's
    libjpeg-turbo call, fast DCT)."""
    _imdecode(source.ctypes.data, source.size, height, width, destination.ctypes.data,
              height, width, 0, 0, 1, 1, 0, 0)


@njit
def resize_crop(source, start_row, end_row, start_col, end_col, destination):
    """Resize ``source[start_row:end_row, start_col:end_col]`` into ``destination`` (FFCV's
    OpenCV INTER_AREA call)."""
    _resize(0, source.ctypes.data, source.shape[0], source.shape[1], start_row, end_row,
            start_col, end_col, destination.ctypes.data, destination.shape[0],
            destination.shape[1])


@njit
def memcpy(source, destination):
    """Copy ``source``'s bytes into ``destination``."""
    _memcpy(source.ctypes.data, destination.ctypes.data, source.size * source.itemsize)


#: the version of roi_jpeg.c's functions' signatures this module calls (its ROI_ABI)
ROI_ABI = 2


def _load_roi_library():
    """The crop-aware decode and area resize of ``_roi_jpeg*.so`` (roi_jpeg.c, built by
    ``make install``), or (None, None) where it is not built, or built from an older
    roi_jpeg.c (a warning: calling it would pass arguments it does not read)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "_roi_jpeg*.so"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        abi = getattr(library, "pureffcv_roi_abi", None)
        if abi is None or abi() != ROI_ABI:
            warnings.warn(f"{path} was built from an older roi_jpeg.c; decoding without it "
                          f"(slower) until it is rebuilt: make install, or python setup.py "
                          f"build_ext --inplace", RuntimeWarning)
            return None, None
        return library.pureffcv_roi_decode, library.pureffcv_area_resize
    return None, None


ROI_DECODE, AREA_RESIZE = _load_roi_library()
#: whether the crop-aware JPEG library is built and loaded
AVAILABLE = ROI_DECODE is not None

if AVAILABLE:
    _roi_decode = declare("pureffcv_roi_decode_c", ROI_DECODE,
                          i32(u64, u64, u64, u64, i64, i64, i64, i64, i64, u64))
    _area_resize = declare("pureffcv_area_resize_c", AREA_RESIZE,
                           i32(u64, i64, i64, f64, f64, f64, f64, u64, i64, i64, u64, i64, i64))

    @njit
    def roi_decode(source, destination, scale, y0, y1, x0, x1, region):
        """Decode rows [y0, y1) and at least columns [x0, x1) of the JPEG ``source`` scaled by
        ``scale``/8 into ``destination`` (uint8, flat); ``region`` (int64[4]) receives the
        first row, rows, first column and columns decoded. 0 on success (see roi_jpeg.c)."""
        return _roi_decode(source.ctypes.data, source.size, destination.ctypes.data,
                           destination.size, scale, y0, y1, x0, x1, region.ctypes.data)

    @njit
    def area_resize(image, y0, y1, x0, x1, destination):
        """Area-average ``image[y0:y1, x0:x1]`` (fractional bounds) into ``destination``
        (shrinking only): OpenCV's INTER_AREA for a box off the pixel grid. 0 on success."""
        return _area_resize(image.ctypes.data, image.shape[0], image.shape[1], y0, y1, x0, x1,
                            destination.ctypes.data, destination.shape[0], destination.shape[1],
                            0, 0, 0)

    @njit
    def area_resize_normalized(image, y0, y1, x0, x1, destination, table, mirror):
        """``area_resize`` with each resized row written through ``table`` (channels x 256 of
        destination's dtype) and mirrored when ``mirror``: ``lookup_pixels`` of the resize,
        fused (normalize.py)."""
        return _area_resize(image.ctypes.data, image.shape[0], image.shape[1], y0, y1, x0, x1,
                            destination.ctypes.data, destination.shape[0], destination.shape[1],
                            table.ctypes.data, table.itemsize, mirror)
else:
    @njit
    def roi_decode(source, destination, scale, y0, y1, x0, x1, region):
        return -100

    @njit
    def area_resize(image, y0, y1, x0, x1, destination):
        return -100

    @njit
    def area_resize_normalized(image, y0, y1, x0, x1, destination, table, mirror):
        return -100
