"""OpenCL platforms and devices: enumeration (with each PoCL device's target applied), listing, selection."""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from clmace.backends.opencl.quirks import health, pocl_target
from clmace.core import drivers
from clmace.core.drivers import NVIDIA_LIB
from clmace.core.errors import DeviceError

log = logging.getLogger("clmace.opencl")

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
    compile_target: str = ""  # the LLVM CPU PoCL compiles for (PoCL only)
    driver_check: str = ""  # clmace's canary verdict, when asked for (list_devices(with_check=True))

    def describe(self) -> str:
        """Two lines: index, type, name, platform and key capabilities; then target and driver check."""
        target = f"compiles for {self.compile_target}; " if self.compile_target else ""
        return (f"opencl:{self.index} {self.type} {self.name!r} on {self.platform!r} (driver {self.driver_version}, "
                f"{self.opencl_c_version}, {self.compute_units} CUs, {self.global_memory >> 20} MiB"
                f"{', fp16' if self.fp16 else ''})"
                + (f"\n    {target}driver check: {self.driver_check}" if target or self.driver_check else ""))


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


def apply_target(device: Any) -> None:
    """Give a PoCL device the LLVM CPU target clmace chose for this host (other devices: nothing to do)."""
    if pocl_target.is_pocl(device) and pocl_target.state(device) is None:
        pocl_target.apply(device, health.initial_target(device))


_DEVICES: list[Any] | None = None
_EMPTY_PLATFORMS: list[str] = []  # platforms that listed no device, with the driver's answer
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

    health.prepare()  # before the driver starts: PoCL reads its variables once
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:  # the ICD loader raises when it finds no platform at all
        platforms = []
        log.debug("clGetPlatformIDs failed: %s", exc)
    devices = []
    for platform in platforms:
        try:
            found = platform.get_devices()
        except cl.Error as exc:
            found, why = [], str(exc)
        else:
            why = "no devices"
        if not found:
            log.debug("platform %s lists no devices: %s", platform.name, why)
            _EMPTY_PLATFORMS.append(f"{platform.name.strip()} {platform.version.strip()[:30]!r}: {why}")
        devices.extend(found)
    for device in devices:
        apply_target(device)
    return devices


def describe(index: int, device: Any, with_check: bool = False) -> DeviceInfo:
    """The DeviceInfo of one pyopencl device; with_check adds the driver-check verdict (reads the cache dir)."""
    return DeviceInfo(
        index=index, type=_type_name(device), name=device.name.strip(), vendor=device.vendor.strip(),
        platform=device.platform.name.strip(), driver_version=device.driver_version.strip(),
        opencl_c_version=device.opencl_c_version.strip(), compute_units=int(device.max_compute_units),
        global_memory=int(device.global_mem_size), fp16="cl_khr_fp16" in device.extensions.split(),
        compile_target=st.target if (st := pocl_target.state(device)) else "",
        driver_check=health.describe(device) if with_check else "",
    )


def list_devices(with_check: bool = False) -> list[DeviceInfo]:
    """Every OpenCL device of every platform, numbered as 'opencl:N' selects them (with_check: see describe)."""
    return [describe(i, d, with_check) for i, d in enumerate(_all_devices())]


def _check_nvidia(devices: list[Any]) -> None:
    if drivers.nvidia_opencl_installed() and not any("NVIDIA" in d.platform.name for d in devices):
        raise DeviceError(_nvidia_hint())


def select_device(spec: str) -> Any:
    """The pyopencl device for 'opencl' / 'gpu' (first GPU, else first CPU) or 'opencl:N' (N-th listed)."""
    devices = _all_devices()
    if not devices:
        if drivers.nvidia_opencl_installed():
            raise DeviceError(f"no OpenCL platform found; {_nvidia_hint()}")
        if _EMPTY_PLATFORMS:
            raise DeviceError("no OpenCL device: the platforms found list none (" + "; ".join(_EMPTY_PLATFORMS)
                              + "); check the driver's settings, e.g. POCL_DEVICES for PoCL")
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
    chosen = (cpus or devices)[0]
    if kind == "gpu":  # asked for a GPU, gets a CPU driver: say so
        warnings.warn(f"no GPU OpenCL device here; device='gpu' runs on {chosen.name.strip()!r} "
                      f"({chosen.platform.name.strip()})", stacklevel=3)
    return chosen


def device_index(device: Any) -> int:
    """The 'opencl:N' index of a device."""
    for i, d in enumerate(_all_devices()):
        if d.int_ptr == device.int_ptr:
            return i
    return -1
