"""The OpenCL runtime: device selection, static plans, kernels in kernels/*.cl, NumPy fallback per node."""

from clmace.backends.opencl.discovery import DeviceInfo, list_devices
from clmace.backends.opencl.runtime import OpenCLRuntime

__all__ = ["DeviceInfo", "OpenCLRuntime", "list_devices"]
