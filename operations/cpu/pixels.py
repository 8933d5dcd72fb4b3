"""Flat pixel loops: the fast way to walk a C-contiguous HWC image in Numba.

Numba vectorizes a 1-D loop over contiguous memory but not the same work written as a 3-D
``image[y, x, c]`` loop or a slice assignment: on one core of the 2-core CI machine, copying a
160x160x3 uint8 image takes 3 us flat against 75 us as ``dst[:] = src``, and a lookup table
20 us against 60 us. Kernels receive C-contiguous HWC arrays (the Loader's buffers and
``PureOperation.apply`` guarantee it), so the hot loops below walk ``flat(image)``, where
pixel (y, x) channel c sits at ``(y * width + x) * channels + c``.
"""
from numba import njit


@njit(inline="always")
def flat(image):
    """The 1-D view of a C-contiguous array (no copy)."""
    return image.reshape(-1)


@njit
def copy_pixels(src, dst):
    """``dst[...] = src`` for two C-contiguous arrays of the same size."""
    s, d = flat(src), flat(dst)
    for i in range(s.size):
        d[i] = s[i]

