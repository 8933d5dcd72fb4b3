"""Importing this module registers every built-in op."""
from .cpu import decoders, geometry  # noqa: F401
