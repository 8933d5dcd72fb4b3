"""Flat pixel loops: the fast way to walk a C-contiguous HWC image in Numba.

Numba vectorizes a 1-D loop over contiguous memory but not the same work written as a 3-D
``image[y, x, c]`` loop or a slice assignment: on one core of the 2-core CI machine, copying a
160x160x3 uint8 image takes 3 us flat against 75 us as ``dst[:] = src``, and a lookup table
20 us against 60 us. Kernels receive C-contiguous HWC arrays (the Loader's buffers and
``PureOperation.apply`` guarantee it), so the hot loops below walk ``flat(image)``, where
pixel (y, x) channel c sits at ``(y * width + x) * channels + c``.

The loops that both the exact maths (``fastmath=False``) and the C entries (``fastmath=True``)
call set their own flags (``SHARED_HELPER``): integer work compiles to the same code under
either, and one build serves both callers (``compile_flags``).
"""
import numpy as np
from numba import njit

#: the compile flags of a helper that entries and exact maths share
SHARED_HELPER = {"fastmath": False, "error_model": "numpy"}


@njit(inline="always")
def flat(image):
    """The 1-D view of a C-contiguous array (no copy)."""
    return image.reshape(-1)


@njit(**SHARED_HELPER)
def copy_pixels(src, dst):
    """``dst[...] = src`` for two C-contiguous arrays of the same size; nothing when they are
    one array (an op running in place: ``DeclaredOp.in_place``)."""
    if src.ctypes.data == dst.ctypes.data:
        return
    s, d = flat(src), flat(dst)
    for i in range(s.size):
        d[i] = s[i]


@njit(inline="always")
def copy_run(src, src_at, dst, dst_at, count):
    """``dst[dst_at:dst_at + count] = src[src_at:src_at + count]`` for 1-D arrays, by
    unsigned indices: no slice (whose reference counting costs more than a short row's
    copy) and no negative-index wraparound, so Numba vectorizes it as a memcpy."""
    source, destination = np.uint64(src_at), np.uint64(dst_at)
    for k in range(np.uint64(count)):
        dst[destination + k] = src[source + k]


# --- lookup tables: the pixel pass of every point map and of their fused runs ------------

@njit(**SHARED_HELPER)
def apply_lut(src, dst, lut):
    """dst[y, x, c] = lut[src[y, x, c]]: one uint8[256] table for every channel."""
    s, d = flat(src), flat(dst)
    for i in range(s.size):
        d[i] = lut[s[i]]


@njit(**SHARED_HELPER)
def apply_channel_luts(src, dst, luts):
    """dst[y, x, c] = luts[c, src[y, x, c]]: one uint8[256] table per channel."""
    channels, pixels = src.shape[2], src.shape[0] * src.shape[1]
    s, d = flat(src), flat(dst)
    for k in range(channels):  # channel by channel: 2.7x faster than pixel by pixel
        lut = luts[k]
        for p in range(pixels):
            d[p * channels + k] = lut[s[p * channels + k]]


@njit(**SHARED_HELPER)
def channel_histograms(image):
    """int64[channels, 256]: how often each value occurs in each channel."""
    channels, pixels = image.shape[2], image.shape[0] * image.shape[1]
    values = flat(image)
    hist = np.zeros((channels, 256), np.int64)
    for k in range(channels):  # channel by channel: 2x faster than pixel by pixel
        counts = hist[k]
        for p in range(pixels):
            counts[values[p * channels + k]] += 1
    return hist


@njit
def identity_lut():
    """The table that changes nothing (the start of a fused chain)."""
    return np.arange(256).astype(np.uint8)


@njit
def identity_luts(channels):
    """``identity_lut`` for each of ``channels`` channels."""
    luts = np.empty((channels, 256), np.uint8)
    for k in range(channels):
        luts[k] = identity_lut()
    return luts


@njit(inline='always')
def rounded(v):
    """A float level rounded half up and clipped to a uint8."""
    return np.uint8(min(max(np.floor(v + 0.5), 0.0), 255.0))
