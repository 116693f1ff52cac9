"""Which OpenCL driver libraries this machine has installed (found without loading them or running ldconfig),
the compile target clmace gave each PoCL device, and the one place clmace sets drivers' environment variables."""

from __future__ import annotations

import functools
import os

NVIDIA_LIB = "libnvidia-opencl.so.1"
# Where distributions and NVIDIA's container toolkit put the driver libraries.
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64",
             "/usr/local/nvidia/lib", "/usr/local/cuda/lib64", "/usr/lib/aarch64-linux-gnu")
_LD_CACHE = "/etc/ld.so.cache"


@functools.cache
def nvidia_opencl_installed() -> bool:
    """True when NVIDIA's OpenCL driver library is installed.

    ctypes.util.find_library would answer too, but it runs ldconfig in a subprocess (~15 ms), which a warm
    start cannot afford; the dynamic linker's own cache lists the same libraries.
    """
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d] + list(_LIB_DIRS)
    if any(os.path.exists(os.path.join(d, NVIDIA_LIB)) for d in dirs):
        return True
    try:
        with open(_LD_CACHE, "rb") as f:
            return NVIDIA_LIB.encode() in f.read()
    except OSError:
        return False


# Device pointer -> the LLVM CPU name a PoCL device compiles for, as clmace set it (runtime.opencl.pocl_target).
# A process-wide fact like the patched device itself; the store reads it into the device fingerprint.
_COMPILE_TARGETS: dict[int, str] = {}


def set_compile_target(device_ptr: int, name: str) -> None:
    """Record the CPU target a PoCL device now compiles for."""
    _COMPILE_TARGETS[device_ptr] = name


def compile_target(device_ptr: int) -> str:
    """The CPU target recorded for a device ('' for devices clmace did not set one for)."""
    return _COMPILE_TARGETS.get(device_ptr, "")


def set_driver_variable(name: str, value: str) -> None:
    """Set a driver's environment variable for this process (and its children): the one place clmace does.

    Drivers read these once, when OpenCL starts, so callers set them before that: POCL_CACHE_DIR and
    CUDA_CACHE_PATH/CUDA_CACHE_DISABLE (store/pocl.py, store/nvidia.py: private driver caches) and
    POCL_KERNELLIB_NAME (runtime/opencl/pocl_target.py: the builtins variant of distro PoCL builds).
    """
    os.environ[name] = value
