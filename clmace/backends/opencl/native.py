"""Calls into the OpenCL library through ctypes where pyopencl would hold the GIL for a long driver call.

Reading a program's binary is one: PoCL compiles every kernel of the program for any work-group size before
it hands the binary out (0.5-0.9 s a program here), and pyopencl keeps the GIL meanwhile. A ctypes call releases
it, so the store can read binaries on a background thread while the session runs.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from typing import Any

log = logging.getLogger("clmace.opencl")

_NUM_DEVICES, _DEVICES, _BINARY_SIZES, _BINARIES = 0x1162, 0x1163, 0x1165, 0x1166


@functools.cache
def _library() -> Any:
    """The OpenCL library pyopencl loaded (its wheel bundles one under another name), else the system's."""
    import pyopencl  # noqa: F401 - maps the library pyopencl links against into this process

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = [line.split()[-1] for line in maps if "libOpenCL" in line]
    except OSError:
        paths = []
    for path in [*dict.fromkeys(p for p in paths if os.path.isabs(p)), "libOpenCL.so.1"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        fn = lib.clGetProgramInfo
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_size_t)]
        fn.restype = ctypes.c_int
        return lib
    return None


def _info(program: int, what: int, size: int, out: Any) -> None:
    err = _library().clGetProgramInfo(ctypes.c_void_p(program), what, size, out, None)
    if err:
        raise OSError(f"clGetProgramInfo({what:#x}) returned {err}")


def program_binary(program: Any, device: Any) -> bytes | None:
    """The binary of a built pyopencl program for device, read without the GIL; None when ctypes cannot."""
    if _library() is None:
        return None
    ptr = int(program.int_ptr)
    count = ctypes.c_uint()
    _info(ptr, _NUM_DEVICES, ctypes.sizeof(count), ctypes.byref(count))
    devices = (ctypes.c_void_p * count.value)()
    _info(ptr, _DEVICES, ctypes.sizeof(devices), devices)
    index = [d or 0 for d in devices].index(int(device.int_ptr))
    sizes = (ctypes.c_size_t * count.value)()
    _info(ptr, _BINARY_SIZES, ctypes.sizeof(sizes), sizes)
    buffers = [ctypes.create_string_buffer(max(int(n), 1)) for n in sizes]
    pointers = (ctypes.c_void_p * count.value)(*[ctypes.addressof(b) for b in buffers])
    _info(ptr, _BINARIES, ctypes.sizeof(pointers), pointers)
    return buffers[index].raw[: int(sizes[index])]
