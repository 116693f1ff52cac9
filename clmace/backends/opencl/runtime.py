"""OpenCLRuntime: runs a planned graph on one OpenCL device (kernels, with NumPy fallback per node)."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from clmace.backends.opencl.device import shared_handle
from clmace.backends.opencl.discovery import DeviceInfo, describe, device_index, select_device
from clmace.backends.opencl.execute import in_graph_dtype, read, run_host
from clmace.backends.opencl.lower import chain as ops_chain
from clmace.backends.opencl.lower import control as ops_control
from clmace.backends.opencl.lower import conv as ops_conv
from clmace.backends.opencl.lower import data as ops_data
from clmace.backends.opencl.lower import eltwise as ops_eltwise
from clmace.backends.opencl.lower import gemm as ops_gemm
from clmace.backends.opencl.lower import guarded as ops_guarded
from clmace.backends.opencl.lower import recurrent as ops_recurrent
from clmace.backends.opencl.lower import reduce as ops_reduce
from clmace.backends.opencl.lower import resize as ops_resize
from clmace.backends.opencl.plan.fusion import CHAIN_OP
from clmace.backends.opencl.plan.schedule import ControlStep, HostStep, Launch, Plan
from clmace.backends.opencl.profile import format_profile
from clmace.backends.opencl.programs import describe_key
from clmace.core.errors import ConfigError, DeviceError, ModelError, UnsupportedOpError
from clmace.core.ir import Graph

log = logging.getLogger("clmace.opencl")

LOWERINGS = {**ops_eltwise.LOWER, **ops_data.LOWER, **ops_reduce.LOWER, **ops_gemm.LOWER, **ops_conv.LOWER,
             **ops_recurrent.LOWER, **ops_resize.LOWER, **ops_control.LOWER, **ops_chain.LOWER,
             **ops_guarded.LOWER}
OPTIONS = {
    # Half storage through vload_half/vstore_half (core OpenCL) on devices without cl_khr_fp16.
    "fp16_without_extension": False,
    # Use the tuned records of the program store (variants and local sizes); False: device defaults only.
    "tuned": True,
    # Keep every launch's profiling event (node_times, profile_table); off: runs go to a queue without
    # profiling, which costs the host less per launch.
    "profiling": False,
    # {family: variant name} forced for every launch of that family (tests, experiments), e.g.
    # {"conv1x1": "tiled_32x32"}; families: conv1x1, conv_dw, conv_general, conv_transpose, gemm, matmul.
    "variants": None,
}


def _label(node: Any, plan: Plan) -> str:
    """Op type with what was fused into it, e.g. Conv+Clip+Add+Relu."""
    own = f"+{node.attrs['activation']}" if node.attrs.get("activation") else ""
    op = node.attrs["ops"] if node.op_type == CHAIN_OP else node.op_type
    return op + own + plan.epilogue(node).label()


def device_info(device: str) -> DeviceInfo:
    """The DeviceInfo of the device `device` names ('opencl', 'gpu', 'opencl:N'); DeviceError when none."""
    dev = select_device(device)
    return describe(device_index(dev), dev)


def check_precision(info: DeviceInfo, precision: str, without_extension: bool = False) -> None:
    """DeviceError when the device cannot store fp16 (and the user did not ask for half storage anyway)."""
    if precision == "fp16" and not info.fp16 and not without_extension:
        raise DeviceError(f"precision 'fp16' needs the cl_khr_fp16 extension, which {info.name!r} ({info.platform}) "
                          "does not report; use precision='fp32'")


class OpenCLRuntime:
    """Executes a Graph whose values all have static shapes on an OpenCL device."""

    device_name = "opencl"

    def __init__(self, graph: Graph, device: str = "opencl", *, precision: str = "fp32", strict: bool = False,
                 program_store: Any = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown OpenCL runtime option(s) {unknown}; known: {sorted(OPTIONS)}")
        opts = {**OPTIONS, **options}
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"precision {precision!r}: expected 'fp32' or 'fp16'")
        used = {name for node in graph.nodes for name in (*node.inputs, *node.outputs) if name}
        used |= {v.name for v in (*graph.inputs, *graph.outputs)}
        dynamic = sorted(n for n in used - set(graph.initializers)
                         if n not in graph.values or not graph.values[n].is_static())
        if dynamic:
            raise ModelError(f"the OpenCL runtime needs static shapes; dynamic: {dynamic[:5]}")
        start = time.perf_counter()
        self.graph, self.precision = graph, precision
        self._device = select_device(device)
        self.device_info: DeviceInfo = describe(device_index(self._device), self._device)
        check_precision(self.device_info, precision, opts["fp16_without_extension"])
        self.handle = shared_handle(self._device, program_store)
        self.profiling = bool(opts["profiling"])  # may be switched per run (the tuner, bench's profile)
        self.context, self.queue = self.handle.context, self.handle.queue
        self.plan = Plan(graph, self.handle, LOWERINGS,
                         half=precision == "fp16", tuned=opts["tuned"], variants=opts["variants"])
        self._check_host_nodes(strict)
        self._steps = [(s.kernel, s.gws, s.lws) if isinstance(s, Launch) else s for s in self.plan.steps]
        self._names = [s.node if isinstance(s, Launch) else s.node.name for s in self.plan.steps]
        nodes = {n.name: n for n in self.plan.nodes}
        self._writer = {out: i for i, name in enumerate(self._names) for out in nodes[name].outputs if out}
        self._final = set(graph.output_names()) | {v.name for v in graph.inputs}
        self._events: list[Any] = []
        self._lock = threading.Lock()
        self._host_times: dict[int, float] = {}
        self._last_wall = 0.0
        self.enqueue_seconds = 0.0
        self.setup_seconds = time.perf_counter() - start
        log.info("OpenCL plan on %s: %d launches, %d programs, %.1f KiB arena, %.2f s", self.device_info.name,
                 len(self._steps), len(self.plan.program_keys), self.plan.arena_bytes / 1024, self.setup_seconds)

    def _check_host_nodes(self, strict: bool) -> None:
        host = self.plan.host_nodes()
        if not host:
            return
        listing = ", ".join(f"{n.name} ({n.op_type})" for n in host)
        if strict:
            raise UnsupportedOpError(f"{len(host)} node(s) have no OpenCL kernel on {self.device_info.name!r}: "
                                     f"{listing}")
        warnings.warn(f"{len(host)} node(s) run on the host (NumPy) instead of OpenCL: {listing}", stacklevel=3)

    # --- running -------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Copy inputs in, enqueue every step, copy the requested outputs out (one run at a time)."""
        with self._lock:  # every run uses the same arena
            return self._run(feeds, outputs)

    def _run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        import pyopencl as cl

        plan, profiling = self.plan, self.profiling
        queue = self.queue if profiling else self.handle.run_queue
        wanted = list(outputs) if outputs is not None else self.graph.output_names()
        early = self._early_reads(wanted)
        start = time.perf_counter()
        keep = []
        for v in self.graph.inputs:
            if v.name in plan.consts:
                continue
            host = np.ascontiguousarray(feeds[v.name], dtype=plan.stored(v.name))
            keep.append(host)
            cl.enqueue_copy(queue, plan.buf(v.name), host, is_blocking=False)
        enqueue = cl.enqueue_nd_range_kernel
        events: list[Any] = []
        results: dict[str, np.ndarray] = {}
        self._host_times = {}
        for i, step in enumerate(self._steps):
            if isinstance(step, HostStep):
                t0 = time.perf_counter()
                run_host(plan, queue, step)
                self._host_times[i] = time.perf_counter() - t0
                events.append(None)
            elif isinstance(step, ControlStep):
                t0 = time.perf_counter()
                step.run(queue)
                self._host_times[i] = time.perf_counter() - t0  # wall time of its bodies' runs
                events.append(None)
            elif profiling:
                events.append(enqueue(queue, *step))
            else:
                enqueue(queue, *step)
            for name in early.get(i, ()):
                results[name] = read(plan, queue, name)
        self.enqueue_seconds = time.perf_counter() - start  # host time to hand every step to the driver
        for name in wanted:
            if name not in results:
                results[name] = read(plan, queue, name)
        flag = None
        if plan.guard.buf is not None:  # only plans with guarded launches read it
            flag = np.zeros(1, np.int32)
            cl.enqueue_copy(queue, flag, plan.guard.buf, is_blocking=False)
        queue.finish()
        if flag is not None:
            plan.guard.raise_if_set(queue, int(flag[0]))
        self._last_wall = time.perf_counter() - start
        self._events = events if profiling else []
        del keep
        return {name: self._to_graph_dtype(name, results[name]) for name in wanted}

    def replay(self, feeds: Mapping[str, np.ndarray], on_launch: Callable[[int, Launch], None]) -> None:
        """Copy feeds in and run the plan step by step, handing every launch to on_launch, which must leave
        the launch's outputs computed (the tuner times its candidates there, on the real inputs)."""
        import pyopencl as cl

        with self._lock:
            plan = self.plan
            for v in self.graph.inputs:
                if v.name not in plan.consts:
                    host = np.ascontiguousarray(feeds[v.name], dtype=plan.stored(v.name))
                    cl.enqueue_copy(self.queue, plan.buf(v.name), host, is_blocking=True)
            for i, step in enumerate(plan.steps):
                if isinstance(step, HostStep):
                    run_host(plan, self.queue, step)
                elif isinstance(step, ControlStep):
                    step.run(self.queue)
                else:
                    on_launch(i, step)
            self.queue.finish()

    def _early_reads(self, wanted: list[str]) -> dict[int, list[str]]:
        """Intermediate values asked for: read right after the step that writes their storage."""
        plan = self.plan
        early: dict[int, list[str]] = {}
        for name in wanted:
            if name in self._final or name in plan.consts:
                continue
            root = plan.root(name)
            if root not in self._writer:
                raise ModelError(f"value {name!r} was fused away by the OpenCL plan; request it with device='cpu'")
            early.setdefault(self._writer[root], []).append(name)
        return early

    def _to_graph_dtype(self, name: str, arr: np.ndarray) -> np.ndarray:
        return in_graph_dtype(self.plan, name, arr)

    # --- reports -------------------------------------------------------------------------------
    def profile_run(self, feeds: Mapping[str, np.ndarray]) -> str:
        """Run once with profiling and return the per-node timing table."""
        profiling, self.profiling = self.profiling, True
        try:
            self.run(feeds)
        finally:
            self.profiling = profiling
        return self.profile_table()

    def node_times(self) -> list[tuple[str, str, str, float]]:
        """(node, op [kernel], device, seconds) per step of the last run, from OpenCL profiling events."""
        nodes = {n.name: n for n in self.plan.nodes}
        rows = []
        for i, (step, event) in enumerate(zip(self.plan.steps, self._events)):
            name = self._names[i]
            label = _label(nodes[name], self.plan)
            if isinstance(step, ControlStep):
                where = "cpu" if step.host_nodes() else "opencl"
                rows.append((name, f"{label} [bodies]", where, self._host_times.get(i, 0.0)))
            elif event is None:
                rows.append((name, label, "cpu", self._host_times.get(i, 0.0)))
            else:
                kernel = step.kernel.function_name  # type: ignore[union-attr]
                rows.append((name, f"{label} [{kernel}]", "opencl", (event.profile.end - event.profile.start) * 1e-9))
        return rows

    def profile_table(self, top: int = 15) -> str:
        """Top nodes of the last run by time, their share, and the end-to-end latency."""
        if not self._events:
            raise ModelError("no profiled run yet: create the session with enable_profiling=True, or call "
                             "profile_run(feeds)")
        return format_profile(self.node_times(), self._last_wall, self.device_info.name, top)

    def node_devices(self) -> dict[str, str]:
        """Where each graph node runs: 'opencl', 'cpu' (NumPy fallback) or 'view' (no work)."""
        return {n.name: self.plan.devices.get(n.name, "opencl") for n in self.graph.nodes}

    def peak_memory_bytes(self) -> int:
        """Device memory held by the plan: the activation arena plus every uploaded constant."""
        return self.plan.arena_bytes + self.plan.upload_bytes

    def memory_bound_bytes(self) -> int:
        """Lower bound: the weights the device reads plus the largest set of simultaneously live tensors."""
        return self.plan.raw_weight_bytes() + self.plan.live_bytes

    def memory_report(self) -> dict[str, int]:
        """Arena, uploads, weights, live peak, bound and peak, in bytes."""
        return {"arena": self.plan.arena_bytes, "uploads": self.plan.upload_bytes,
                "weights": self.plan.raw_weight_bytes(), "live_peak": self.plan.live_bytes,
                "bound": self.memory_bound_bytes(), "peak": self.peak_memory_bytes()}

    def program_count(self) -> int:
        """Distinct OpenCL programs this plan uses."""
        return len(self.plan.program_keys)

    def programs(self) -> list[str]:
        """'file -Doptions' of each program this plan uses."""
        return sorted(describe_key(k) for k in self.plan.program_keys)
