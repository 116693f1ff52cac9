"""NVIDIA driver-level capture: the CUDA JIT cache that turns our PTX program binaries into machine code.

NVIDIA's OpenCL program binary is PTX; every new process JIT-compiles it again (0.3 s for MobileNetV2's 10
programs on an H200) unless the driver's compute cache holds the result, and creating the context itself
fills that cache too (0.84 s with the cache disabled). clmace points CUDA_CACHE_PATH at a directory it
manages (only when the user set neither CUDA_CACHE_PATH nor CUDA_CACHE_DISABLE), stores that directory's
files with the programs, and writes them back before OpenCL starts in a later process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from clmace.core import drivers
from clmace.store import trust
from clmace.store.format import check_blob_path

log = logging.getLogger("clmace.store")

PREFIX = "cuda/"  # driver blobs under this prefix belong to the CUDA JIT cache
MAX_CAPTURE_BYTES = 64 << 20


@dataclass(frozen=True)
class CudaCacheSetup:
    """Where the CUDA JIT cache lives for this process, and whether clmace chose it."""

    path: str | None
    managed: bool


_setup: CudaCacheSetup | None = None


def configure_cache_dir(cache_dir: str) -> CudaCacheSetup:
    """Point CUDA_CACHE_PATH at `<cache_dir>/cuda` unless the user configured the cache; call before OpenCL."""
    global _setup
    if _setup is not None:
        return _setup
    if os.environ.get("CUDA_CACHE_DISABLE") == "1" or not drivers.nvidia_opencl_installed():
        _setup = CudaCacheSetup(os.environ.get("CUDA_CACHE_PATH"), managed=False)
        return _setup
    user = trust.users_cache_dir("CUDA_CACHE_PATH")
    if user:
        _setup = CudaCacheSetup(user, managed=False)
        return _setup
    path = os.path.join(cache_dir, "cuda")
    problem = trust.private_dir_problem(path)
    if problem is not None:
        log.warning("CUDA JIT cache not put in %s (%s): caching disabled for this process", path, problem)
        drivers.set_driver_variable("CUDA_CACHE_DISABLE", "1")
        _setup = CudaCacheSetup(None, managed=False)
        return _setup
    drivers.set_driver_variable("CUDA_CACHE_PATH", path)
    _setup = CudaCacheSetup(path, managed=True)
    return _setup


def proc_gpus() -> tuple[set[str], str]:
    """GPU models and the kernel driver's version line, as /proc/driver/nvidia reports them (empty if absent)."""
    import glob

    models = set()
    for info in glob.glob("/proc/driver/nvidia/gpus/*/information"):
        try:
            with open(info, encoding="utf-8", errors="replace") as f:
                models |= {line.split(":", 1)[1].strip() for line in f if line.startswith("Model:")}
        except OSError:
            continue
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as f:
            version = f.readline()
    except OSError:
        version = ""
    return models, version


def present(fingerprint: object) -> bool:
    """True when a section's GPU and driver are on this machine (checked before OpenCL starts)."""
    models, version = proc_gpus()
    name = getattr(fingerprint, "device_name", "")
    driver = getattr(fingerprint, "driver_version", "")
    return bool(name in models and driver and driver in version)


def is_nvidia(platform_name: str) -> bool:
    """True for NVIDIA's OpenCL platform."""
    return "NVIDIA" in platform_name


def snapshot() -> dict[str, bytes]:
    """Every file of the clmace-managed CUDA JIT cache, by PREFIX + relative path (empty when unmanaged)."""
    if _setup is None or not _setup.managed or not _setup.path:
        return {}
    blobs: dict[str, bytes] = {}
    total = 0
    for root, _, files in os.walk(_setup.path):
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, _setup.path).replace(os.sep, "/")
            try:
                data = open(full, "rb").read()
            except OSError:
                continue  # the driver may be replacing it right now; the next save catches it
            total += len(data)
            if total > MAX_CAPTURE_BYTES:
                log.info("CUDA JIT cache larger than %d MiB: captured in part", MAX_CAPTURE_BYTES >> 20)
                return blobs
            blobs[PREFIX + rel] = data
    return blobs


def restore(blobs: dict[str, bytes]) -> int:
    """Write captured JIT-cache files that are missing from the managed directory; return how many."""
    if _setup is None or not _setup.managed or not _setup.path:
        return 0
    problem = trust.private_dir_problem(_setup.path)
    if problem:
        log.warning("CUDA JIT cache not restored: %s", problem)
        return 0
    written = 0
    for key, data in blobs.items():
        if not key.startswith(PREFIX) or check_blob_path(key[len(PREFIX):]) is not None:
            continue  # not ours, or a path that would leave the cache directory
        try:
            # No fsync: the cache is scratch that this file restores again (an fsync per file cost 70 ms of a
            # warm start on the H200); no symlink on the way is followed.
            written += trust.write_under(_setup.path, key[len(PREFIX):], data)
        except OSError as e:
            log.info("CUDA JIT cache file %s not restored: %s", key, e.strerror or e)
    return written
