"""Planning an IR graph for one OpenCL device: the buffer arena and the launch schedule."""
