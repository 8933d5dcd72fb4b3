"""Importing this module registers every built-in op (``operations/__init__`` does); the
decoders only where FFCV imports (they subclass FFCV's and call its C library), and there
also the mask, boxes and keypoints fields (``cpu.mask_field``, ``cpu.instances_field``), so
that FFCV reads a .beton holding them."""
from .cpu import colour, erasing, filters, geometry, normalize, policies, tone  # noqa: F401
from .device import mix, normalize as device_normalize, temporal  # noqa: F401
from .ffcv_api import FFCV_MISSING

if FFCV_MISSING is None:
    from .cpu import decoders, instances_field, mask_field  # noqa: F401
