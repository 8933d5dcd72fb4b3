"""Importing this module registers every built-in op (``operations/__init__`` does)."""
from .cpu import colour, decoders, erasing, filters, geometry, normalize, policies, tone  # noqa: F401
from .device import erasing as device_erasing, mix, normalize as device_normalize, temporal  # noqa: F401
