"""Importing this module registers every built-in op."""
from .cpu import decoders, erasing, geometry, normalize  # noqa: F401
from .cpu import color, policies  # noqa: F401
from .device import erasing as device_erasing, mix, normalize as device_normalize, temporal  # noqa: F401
