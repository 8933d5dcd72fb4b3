"""Per-sample CPU ops (Numba, JIT-parallel over the batch), one op family per module."""
