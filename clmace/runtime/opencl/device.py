"""OpenCL platforms and devices: listing, selection, and the context/queue a runtime runs on."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from clmace import drivers
from clmace.drivers import NVIDIA_LIB
from clmace.errors import DeviceError

log = logging.getLogger("clmace.opencl")

POCL_PLATFORM = "Portable Computing Language"
# PoCL 3.0 (pyopencl's wheel) stores the LLVM CPU name as a char* at this offset of its cl_device_id;
# only written after the old value reads back as "generic", so another layout is left untouched.
_POCL_LLVM_CPU_OFFSET = 0x280
# LLVM 14 CPU names, best first, with the /proc/cpuinfo flags each needs (measured: icelake-server is
# the fastest on Zen 5 of those that compile).
_AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "fma", "bmi2", "movbe", "f16c"}
_CPU_LEVELS = (
    ("icelake-server", _AVX512 | {"avx512ifma", "avx512vbmi", "avx512_vnni", "avx512_vbmi2", "gfni", "vaes",
                                  "vpclmulqdq", "avx512_bitalg", "avx512_vpopcntdq", "clwb"}),
    ("skylake-avx512", _AVX512),
    ("haswell", {"avx2", "fma", "bmi2", "movbe", "f16c"}),
    ("corei7-avx", {"avx", "sse4_2", "popcnt"}),
    ("nehalem", {"sse4_2", "popcnt"}),
)


@dataclass(frozen=True)
class DeviceInfo:
    """One OpenCL device as `list_devices` reports it."""

    index: int
    type: str
    name: str
    vendor: str
    platform: str
    driver_version: str
    opencl_c_version: str
    compute_units: int
    global_memory: int
    fp16: bool

    def describe(self) -> str:
        """One line: index, type, name, platform and the key capabilities."""
        return (f"opencl:{self.index} {self.type} {self.name!r} on {self.platform!r} (driver {self.driver_version}, "
                f"{self.opencl_c_version}, {self.compute_units} CUs, {self.global_memory >> 20} MiB"
                f"{', fp16' if self.fp16 else ''})")


def _type_name(device: Any) -> str:
    import pyopencl as cl

    kind = device.type
    for flag, name in ((cl.device_type.GPU, "GPU"), (cl.device_type.CPU, "CPU"),
                       (cl.device_type.ACCELERATOR, "ACCELERATOR")):
        if kind & flag:
            return name
    return "OTHER"


def _nvidia_hint() -> str:
    return (f"the NVIDIA OpenCL driver ({NVIDIA_LIB}) is installed but no NVIDIA platform is registered: "
            f"create a directory with a file nvidia.icd containing the line {NVIDIA_LIB}, and set "
            f"OCL_ICD_VENDORS to that directory, e.g.\n  mkdir -p ~/.clmace-icd && echo {NVIDIA_LIB} > "
            f"~/.clmace-icd/nvidia.icd && export OCL_ICD_VENDORS=~/.clmace-icd")


def _host_llvm_cpu() -> str:
    """An LLVM 14 CPU name whose features this CPU has and which matches PoCL's kernel-library variant.

    PoCL links the builtins built for the host's widest vector ISA (its avx512 library on any AVX-512 CPU),
    so the name must enable that ISA: a mismatch fails in codegen. Generic levels (x86-64-v4) compile but
    run ~6x slower here (measured), so named CPUs are used.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    have = set(flags)
    for name, needs in _CPU_LEVELS:
        if needs <= have:
            return name
    return "x86-64"


def fix_pocl_cpu(device: Any) -> bool:
    """Give PoCL 3.0 a CPU name its LLVM 14 accepts when it detected 'generic' (new CPUs, e.g. Zen 5).

    Without this every build fails with "unknown target CPU 'generic'". CLMACE_POCL_CPU overrides the
    chosen name. Returns True when the device was patched (now or earlier).
    """
    try:
        if device.platform.name != POCL_PLATFORM or not device.version.rstrip().endswith("-generic"):
            return False
    except Exception:  # noqa: BLE001 - an odd device just is not patched
        return False
    slot = ctypes.c_void_p.from_address(device.int_ptr + _POCL_LLVM_CPU_OFFSET)
    if not slot.value:
        return False
    current = ctypes.string_at(slot.value, 16).split(b"\0")[0]
    if current != b"generic":
        return current.startswith(b"x86-64") or bool(os.environ.get("CLMACE_POCL_CPU"))
    name = (os.environ.get("CLMACE_POCL_CPU") or _host_llvm_cpu()).encode()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    buf = libc.malloc(len(name) + 1)  # PoCL frees this string at shutdown: it must come from malloc
    ctypes.memmove(buf, name + b"\0", len(name) + 1)
    slot.value = buf
    log.info("PoCL did not recognise this CPU; compiling kernels for %s", name.decode())
    return True


_DEVICES: list[Any] | None = None
_DEVICES_LOCK = threading.Lock()


def _all_devices() -> list[Any]:
    """Every device of every platform, enumerated once per process (with the pyopencl import, ~80 ms)."""
    global _DEVICES
    with _DEVICES_LOCK:
        if _DEVICES is None:
            _DEVICES = _enumerate_devices()
        return list(_DEVICES)


def prefetch_devices() -> None:
    """Import pyopencl and enumerate the devices on a background thread.

    A session calls this before it reads the model: file reads and hashing release the GIL, so the two
    overlap on a warm start. Call it only once the driver caches' environment variables are in place.
    """
    if _DEVICES is None:
        threading.Thread(target=_prefetch, name="clmace-devices", daemon=True).start()


def _prefetch() -> None:
    try:
        _all_devices()
    except Exception:  # noqa: BLE001 - the foreground call enumerates again and reports the error
        log.debug("background device enumeration failed", exc_info=True)


def _enumerate_devices() -> list[Any]:
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:  # the ICD loader raises when it finds no platform at all
        platforms = []
        log.debug("clGetPlatformIDs failed: %s", exc)
    devices = []
    for platform in platforms:
        try:
            devices.extend(platform.get_devices())
        except cl.Error as exc:
            log.debug("platform %s lists no devices: %s", platform.name, exc)
    for device in devices:
        fix_pocl_cpu(device)
    return devices


def describe(index: int, device: Any) -> DeviceInfo:
    """The DeviceInfo of one pyopencl device."""
    return DeviceInfo(
        index=index, type=_type_name(device), name=device.name.strip(), vendor=device.vendor.strip(),
        platform=device.platform.name.strip(), driver_version=device.driver_version.strip(),
        opencl_c_version=device.opencl_c_version.strip(), compute_units=int(device.max_compute_units),
        global_memory=int(device.global_mem_size), fp16="cl_khr_fp16" in device.extensions.split(),
    )


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device of every platform, numbered as 'opencl:N' selects them."""
    return [describe(i, d) for i, d in enumerate(_all_devices())]


def _check_nvidia(devices: list[Any]) -> None:
    if drivers.nvidia_opencl_installed() and not any("NVIDIA" in d.platform.name for d in devices):
        raise DeviceError(_nvidia_hint())


def select_device(spec: str) -> Any:
    """The pyopencl device for 'opencl' / 'gpu' (first GPU, else first CPU) or 'opencl:N' (N-th listed)."""
    devices = _all_devices()
    if not devices:
        if drivers.nvidia_opencl_installed():
            raise DeviceError(f"no OpenCL platform found; {_nvidia_hint()}")
        raise DeviceError("no OpenCL platform found: install a driver (e.g. pip install pocl-binary-distribution "
                          "for the CPU) or point OCL_ICD_VENDORS at a directory of .icd files")
    kind, _, index = spec.partition(":")
    if kind not in ("opencl", "gpu"):
        raise DeviceError(f"unknown OpenCL device {spec!r}; expected 'opencl', 'gpu' or 'opencl:N'")
    if index:
        if not index.isdigit() or int(index) >= len(devices):
            listing = "\n  ".join(describe(i, d).describe() for i, d in enumerate(devices))
            raise DeviceError(f"device {spec!r} does not exist; devices:\n  {listing}")
        return devices[int(index)]
    gpus = [d for d in devices if _type_name(d) == "GPU"]
    if gpus:
        return gpus[0]
    if kind == "gpu" or spec == "opencl":
        _check_nvidia(devices)  # a GPU machine silently running on PoCL would be a nasty surprise
    cpus = [d for d in devices if _type_name(d) == "CPU"]
    return (cpus or devices)[0]


def device_index(device: Any) -> int:
    """The 'opencl:N' index of a device."""
    for i, d in enumerate(_all_devices()):
        if d.int_ptr == device.int_ptr:
            return i
    return -1


_CONTEXTS: dict[int, tuple[Any, Any]] = {}


def create_context(device: Any) -> tuple[Any, Any]:
    """A context on device and an in-order queue with profiling enabled."""
    import pyopencl as cl

    context = cl.Context([device])
    queue = cl.CommandQueue(context, device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    return context, queue


def shared_context(device: Any) -> tuple[Any, Any]:
    """The process-wide context and queue of a device: runtimes on one device share built programs."""
    key = int(device.int_ptr)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = create_context(device)
    return _CONTEXTS[key]


def drop_context(device: Any) -> None:
    """Forget a device's shared context and queue (after a fault left them unusable); the next runtime
    on the device gets new ones."""
    from clmace.runtime.opencl.programs import drop_builders

    entry = _CONTEXTS.pop(int(device.int_ptr), None)
    if entry is not None:
        drop_builders(entry[0])
