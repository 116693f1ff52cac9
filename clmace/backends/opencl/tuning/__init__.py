"""The OpenCL auto-tuner: the search space of kernel variants and local sizes, and the timed search."""
