"""Spec values that may be a number or a tuple (``fill: 0`` or ``fill: [0, 127, 255]``,
``degrees: 30`` or ``degrees: [-10, 30]``), read inside Numba kernels.

A kernel receives the value as the spec gave it; these helpers are resolved by Numba at compile
time from the value's type, so the kernel reads the same for both forms.
"""
from typing import Annotated, Tuple, Union

from numba import types
from numba.extending import overload

from ..params import Range

#: a fill colour: one grey level for all channels or [r, g, b], each in 0..255
Fill = Annotated[Union[int, Tuple[int, int, int]], Range(0, 255)]


def fill_value(fill, channel):
    """The fill level of ``channel``: ``fill`` itself for a number, ``fill[channel]`` for a
    tuple or an array."""


def symmetric_range(value):
    """``(low, high)``: ``(-v, v)`` for a number v, the pair itself for a pair (torchvision's
    ``degrees`` convention)."""


def shear_ranges(value):
    """``(x_low, x_high, y_low, y_high)`` from torchvision's ``shear``: a number s gives x in
    [-s, s] and no y shear, a pair gives the x range, four numbers give both ranges."""


@overload(fill_value, inline='always')
def _fill_value(fill, channel):
    if isinstance(fill, types.Number):
        return lambda fill, channel: fill
    if isinstance(fill, (types.UniTuple, types.Array)):
        return lambda fill, channel: fill[channel]


@overload(symmetric_range, inline='always')
def _symmetric_range(value):
    if isinstance(value, types.Number):
        return lambda value: (-float(value), float(value))
    if isinstance(value, types.BaseTuple) and len(value) == 2:
        return lambda value: (float(value[0]), float(value[1]))


@overload(shear_ranges, inline='always')
def _shear_ranges(value):
    if isinstance(value, types.Number):
        return lambda value: (-float(value), float(value), 0.0, 0.0)
    if isinstance(value, types.BaseTuple) and len(value) == 2:
        return lambda value: (float(value[0]), float(value[1]), 0.0, 0.0)
    if isinstance(value, types.BaseTuple) and len(value) == 4:
        return lambda value: (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
