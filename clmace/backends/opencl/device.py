"""The device handle: one OpenCL device's context, queue and program cache; the one place programs are built.

A handle asks its program cache (core.program_cache: bytes in, bytes out) for a binary before compiling from
source, and hands it what it compiled; tuned launch records go through it too. Runtimes on one device and
one cache share a handle, so a session that re-plans for a new shape reuses its programs.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from clmace.backends.opencl import native
from clmace.backends.opencl.programs import BASE_OPTIONS, define_options, describe_key, kernel_source
from clmace.backends.opencl.quirks.health import ensure_compilable
from clmace.core.drivers import compile_target
from clmace.core.fingerprint import DeviceFingerprint
from clmace.core.program_cache import ProgramCache, ProgramKey

log = logging.getLogger("clmace.opencl")

ProgramId = tuple[str, tuple[str, ...]]  # (kernel file, full option list)


def fingerprint(device: Any) -> DeviceFingerprint:
    """The fingerprint of a pyopencl.Device, with the CPU target clmace gave it (PoCL reports its own guess)."""
    platform = device.platform
    version = device.version.strip()
    target = compile_target(int(device.int_ptr))
    if target:
        version = f"{version} [target {target}]"
    return DeviceFingerprint(
        platform_name=platform.name.strip(), platform_vendor=platform.vendor.strip(),
        platform_version=platform.version.strip(), device_name=device.name.strip(),
        device_vendor=device.vendor.strip(), device_version=version,
        driver_version=device.driver_version.strip(), opencl_c_version=device.opencl_c_version.strip(),
        address_bits=int(device.address_bits))


def build_program(context: Any, device: Any, name: str, source: str, options: list[str],
                  cache: ProgramCache | None = None) -> Any:
    """Build one program: from the cache's binary when it has one the driver accepts, else from source.

    Before the first compile from source on a device, health.ensure_compilable proves (in a child process)
    that its driver survives our kernels; a build from a stored binary needs no such check.
    """
    import pyopencl as cl

    key = ProgramKey(name, source, tuple(options))
    if cache is not None:
        fp = fingerprint(device)
        binary = cache.get_program(fp, key)
        if binary is not None:
            try:
                return cl.Program(context, [device], [binary]).build(options=list(options), devices=[device])
            except Exception as e:  # pyopencl raises several error types; any means "use the source"
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                cache.refuse_program(fp, key, first)
    ensure_compilable(device)  # may change a PoCL device's target, hence its fingerprint: read it after
    log.debug("building %s %s", name, " ".join(options))
    program = cl.Program(context, source).build(options=list(options), devices=[device])
    if cache is not None:
        # Deferred: PoCL compiles every kernel of the program for any work-group size to hand out its binary,
        # so the cache asks for it when it saves (on a background thread, after the first results).
        cache.put_program(fingerprint(device), key, lambda: program_binary(program, device))
    return program


def program_binary(program: Any, device: Any) -> bytes:
    """The driver's binary of a built program for device (b'' when the driver hands out none); read without
    holding the GIL where ctypes can reach the OpenCL library."""
    import pyopencl as cl

    try:
        binary = native.program_binary(program, device)
        if binary is not None:
            return binary
    except (OSError, ValueError) as e:  # ctypes could not read it: ask pyopencl
        log.debug("program binary through ctypes failed (%s)", e)
    try:
        devices = program.get_info(cl.program_info.DEVICES)
        return bytes(program.get_info(cl.program_info.BINARIES)[devices.index(device)])
    except Exception as e:  # noqa: BLE001 - a driver that cannot hand out binaries: nothing to keep
        log.info("no binary from the driver (%s)", e)
        return b""


class DeviceHandle:
    """One device in use: context, queue and program cache; builds each distinct (file, options) once."""

    def __init__(self, device: Any, context: Any, queue: Any, cache: ProgramCache | None = None,
                 run_queue: Any = None) -> None:
        self.device, self.context, self.queue = device, context, queue
        # Runs that keep no profiling events go to a queue without profiling: a launch there costs the host
        # ~10 us instead of ~16 us on NVIDIA's driver (bench/launch_cost.py, H200).
        self.run_queue = run_queue if run_queue is not None else queue
        # Weak: the shared-handle table is keyed by the cache, and a strong reference would keep it alive.
        self._cache = weakref.ref(cache) if cache is not None else None
        self._programs: dict[ProgramId, Any] = {}
        self.build_seconds = 0.0
        self._lock = threading.Lock()
        self._fingerprint: tuple[str, DeviceFingerprint] | None = None

    @property
    def cache(self) -> ProgramCache | None:
        """The program cache (None: none, or its session is gone)."""
        return self._cache() if self._cache is not None else None

    @staticmethod
    def key(file: str, defines: dict[str, Any]) -> ProgramId:
        """The dedup key of a program: kernel file and full option list."""
        return file, tuple(list(BASE_OPTIONS) + define_options(defines))

    def program(self, file: str, defines: dict[str, Any]) -> Any:
        """The built program for this kernel file and -D set."""
        return self.program_by_key(self.key(file, defines))

    def program_by_key(self, key: ProgramId) -> Any:
        """The built program for a key made by `key()`."""
        with self._lock:
            prog = self._programs.get(key)
            if prog is None:
                file, options = key
                start = time.perf_counter()
                prog = build_program(self.context, self.device, file, kernel_source(file), list(options), self.cache)
                self.build_seconds += time.perf_counter() - start
                self._programs[key] = prog
        return prog

    def kernel(self, file: str, name: str, defines: dict[str, Any]) -> Any:
        """A fresh kernel object (its arguments are bound once, by the caller)."""
        import pyopencl as cl

        return cl.Kernel(self.program(file, defines), name)

    @property
    def fingerprint(self) -> DeviceFingerprint:
        """The device's fingerprint, read once per compile target (the driver check may change a PoCL target)."""
        target = compile_target(int(self.device.int_ptr))
        if self._fingerprint is None or self._fingerprint[0] != target:
            self._fingerprint = (target, fingerprint(self.device))
        return self._fingerprint[1]

    def tuned(self, key: str) -> dict | None:
        """The cache's tuned record under key for this device (None without a cache)."""
        cache = self.cache
        return cache.get_tuned(self.fingerprint, key) if cache is not None else None

    def put_tuned(self, key: str, record: dict) -> None:
        """Give the cache a tuned record for this device (dropped without a cache)."""
        cache = self.cache
        if cache is not None:
            cache.put_tuned(self.fingerprint, key, record)

    def child(self) -> DeviceHandle:
        """A handle without a cache that starts with this one's programs (the tuner's trial variants are
        built through it, so only the variants a plan uses reach the compiled-program file)."""
        child = DeviceHandle(self.device, self.context, self.queue, None, self.run_queue)
        with self._lock:
            child._programs.update(self._programs)
        return child

    @property
    def count(self) -> int:
        """Number of distinct programs built."""
        return len(self._programs)

    def keys(self) -> list[str]:
        """Readable 'file options' keys of the programs built."""
        return [describe_key(k) for k in self._programs]


# One context and its queues per device for the process (creating one costs ~100 ms; drivers keep them anyway).
_CONTEXTS: dict[int, tuple[Any, Any, Any]] = {}
# Handles per (program cache, context): keyed weakly by the cache, so a dropped session's cache, handle and
# programs go with it; sessions without a cache share one handle per context while any of their runtimes lives.
_HANDLES: weakref.WeakKeyDictionary[Any, dict[int, DeviceHandle]] = weakref.WeakKeyDictionary()
_CACHELESS: weakref.WeakValueDictionary[int, DeviceHandle] = weakref.WeakValueDictionary()


def create_context(device: Any) -> tuple[Any, Any, Any]:
    """A context on device, an in-order queue with profiling enabled (uploads, tuning, profiled runs) and one
    without (plain runs)."""
    import pyopencl as cl

    context = cl.Context([device])
    queue = cl.CommandQueue(context, device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    return context, queue, cl.CommandQueue(context, device)


def shared_handle(device: Any, cache: ProgramCache | None = None) -> DeviceHandle:
    """The handle of (device, cache), on the device's process-wide context and queue."""
    dev = int(device.int_ptr)
    if dev not in _CONTEXTS:
        _CONTEXTS[dev] = create_context(device)
    context, queue, run_queue = _CONTEXTS[dev]
    per_context: Any = _CACHELESS if cache is None else _HANDLES.setdefault(cache, {})
    ctx = int(context.int_ptr)
    handle = per_context.get(ctx)
    if handle is None:
        handle = per_context[ctx] = DeviceHandle(device, context, queue, cache, run_queue)
    return handle


def drop_context(device: Any) -> None:
    """Forget a device's context, queue and handles (after a fault left them unusable); the next runtime
    on the device gets new ones."""
    entry = _CONTEXTS.pop(int(device.int_ptr), None)
    if entry is None:
        return
    ctx = int(entry[0].int_ptr)
    _CACHELESS.pop(ctx, None)
    for per_context in list(_HANDLES.values()):
        per_context.pop(ctx, None)
