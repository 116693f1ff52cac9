"""Runtimes that execute an IR graph: NumPy (the reference) and OpenCL."""
