"""Facts about the target device for the report: OpenCL device info, else the host CPU."""

from __future__ import annotations

import os
import platform
import sys


def _cpuinfo_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "unknown"


def host_info() -> list[tuple[str, str]]:
    """Host rows: OS, CPU model, cores, memory, Python and library versions."""
    import numpy as np

    rows = [("host OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
            ("CPU", _cpuinfo_model()), ("CPU cores available", str(len(os.sched_getaffinity(0))
                                                                if hasattr(os, "sched_getaffinity")
                                                                else os.cpu_count())),
            ("host memory", _gib(_meminfo_bytes())), ("Python", sys.version.split()[0]), ("NumPy", np.__version__)]
    try:
        import onnxruntime

        rows.append(("onnxruntime", onnxruntime.__version__))
    except ImportError:
        rows.append(("onnxruntime", "not installed"))
    return rows


def opencl_info(device: str) -> list[tuple[str, str]]:
    """Rows describing the OpenCL device that `device` ('opencl', 'gpu', 'opencl:N') selects."""
    from clmace.backends.opencl.discovery import describe, device_index, select_device

    dev = select_device(device)
    info = describe(device_index(dev), dev)
    return [("OpenCL device", f"opencl:{info.index} — {info.name} ({info.type})"), ("vendor", info.vendor),
            ("platform", f"{info.platform}, {dev.platform.version.strip()}"),
            ("driver version", info.driver_version), ("OpenCL C", info.opencl_c_version),
            ("compute units", str(info.compute_units)), ("global memory", _gib(info.global_memory)),
            ("local memory", f"{dev.local_mem_size // 1024} KiB"),
            ("max work-group size", str(dev.max_work_group_size)),
            ("max clock", f"{dev.max_clock_frequency} MHz"), ("fp16 (cl_khr_fp16)", "yes" if info.fp16 else "no")]


def device_info(device: str) -> dict:
    """{'kind', 'rows', 'error', 'fp16'}: the OpenCL device when device is not cpu, plus host rows."""
    if device == "cpu":
        return {"kind": "cpu", "rows": [("device", "cpu (clmace's NumPy runtime)")] + host_info(), "error": None}
    try:
        rows = opencl_info(device)
        fp16 = dict(rows).get("fp16 (cl_khr_fp16)") == "yes"
        return {"kind": "opencl", "rows": rows + host_info(), "error": None, "fp16": fp16}
    except Exception as exc:  # noqa: BLE001 - a missing driver is reported in the page, not a crash
        return {"kind": "opencl", "rows": host_info(), "error": f"{type(exc).__name__}: {exc}"}
