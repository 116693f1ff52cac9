"""Backends that execute an IR graph: `numpy` (the reference) and `opencl` (device plans and kernels)."""
