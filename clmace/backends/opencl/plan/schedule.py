"""The execution plan: storage for every tensor decided once, kernels built and their arguments bound."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from clmace.backends.opencl.device import DeviceHandle
from clmace.backends.opencl.plan import variants as tv
from clmace.backends.opencl.plan.arena import SLACK, Block, align, live_peak, plan_slots
from clmace.backends.opencl.plan.fusion import CHAIN_DOMAIN, CHAIN_OP, Epilogue, chain_host_fn, fuse_for_opencl
from clmace.backends.opencl.plan.variants import (
    AUTO,
    Bound,
    LwsChoice,
    TuneSpec,
    Variant,
    default_lws,
    heuristic_lws,
    record_key,
)
from clmace.core.errors import PlannedShapeError
from clmace.core.ir import Graph, Node

log = logging.getLogger("clmace.opencl")
_NO_EPILOGUE = Epilogue()

# Ops whose output is the input's bytes under another shape: no copy, no launch.
VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")


class NotLowerable(Exception):
    """Raised by a lowering when this node (op, attributes, dtypes) has no OpenCL kernel."""


@dataclass
class Launch:
    """One prebuilt kernel launch with its arguments already bound."""

    node: str
    kernel: Any
    gws: tuple[int, ...]
    lws: tuple[int, ...] | None
    spec: TuneSpec | None = None  # what the tuner may change about this launch
    variant: str = ""
    tuned: bool = False  # variant and local size came from a tuned record

    def enqueue(self, queue: Any) -> Any:
        """Enqueue the launch; return its event."""
        import pyopencl as cl

        return cl.enqueue_nd_range_kernel(queue, self.kernel, self.gws, self.lws)


@dataclass
class HostStep:
    """A node run by its NumPy implementation: device inputs copied to the host and the result back."""

    node: Node
    fn: Callable[..., Any]


class ControlStep:
    """A node the host drives (control flow): it runs sub-plans on the device and reads back only what decides
    the next step (a condition, a trip count). Subclasses live with their lowering."""

    node: Node

    def run(self, queue: Any) -> None:
        """Enqueue the node's work; may block to read a decision back."""
        raise NotImplementedError

    def host_nodes(self) -> list[Node]:
        """Nodes of its sub-plans that run on the host."""
        raise NotImplementedError


Step = Launch | HostStep | ControlStep
Lowering = Callable[[Node, "Plan"], list[Any]]


def _arg(value: Any) -> Any:
    """A kernel argument: ints become int32, floats float32; unsigned NumPy scalars (element bits) stay."""
    if isinstance(value, (bool, np.bool_)):
        return np.int32(value)
    if isinstance(value, (int, np.signedinteger)):
        return np.int32(value)
    if isinstance(value, (float, np.floating)):
        return np.float32(value)
    return value


def _divides(lws: Sequence[int] | None, gws: Sequence[int]) -> bool:
    return lws is None or (len(lws) == len(gws) and all(g % max(1, x) == 0 for g, x in zip(gws, lws)))


def _is_view(node: Node) -> bool:
    if node.op_type not in VIEW_OPS or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Dropout":
        return not (len(node.inputs) > 2 and node.inputs[2]) and len([o for o in node.outputs if o]) == 1
    return True


class ShapeGuard:
    """A device flag for launches whose output shape depends on run-time values (a Slice with computed bounds,
    a Range with computed inputs): they are planned at the shape the dry run saw, and write their number here
    when a run disagrees. The runtime reads it after the run and raises PlannedShapeError, so the session plans
    again for those inputs. One per top-level plan, shared by its body plans."""

    def __init__(self) -> None:
        self.buf: Any = None
        self.nodes: list[str] = []  # flag value k names nodes[k - 1]

    def register(self, p: Plan, node: Node) -> tuple[Any, int]:
        """(the flag buffer, this node's flag value), creating the buffer on first use."""
        import pyopencl as cl

        if self.buf is None:
            self.buf = cl.Buffer(p.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                                 hostbuf=np.zeros(1, np.int32))
        self.nodes.append(node.name)
        return self.buf, len(self.nodes)

    def check(self, queue: Any) -> None:
        """Read the flag now (a control step that syncs anyway: a Loop reading its condition)."""
        if self.buf is not None:
            import pyopencl as cl

            flag = np.zeros(1, np.int32)
            cl.enqueue_copy(queue, flag, self.buf, is_blocking=True)
            self.raise_if_set(queue, int(flag[0]))

    def raise_if_set(self, queue: Any, flag: int) -> None:
        """PlannedShapeError naming the node when flag (read from the buffer) is set; the flag is cleared."""
        if flag:
            import pyopencl as cl

            cl.enqueue_fill_buffer(queue, self.buf, np.int32(0), 0, 4).wait()
            raise PlannedShapeError(f"node {self.nodes[flag - 1]!r} computed another output shape than the "
                                    "one planned")


def _release(subs: list[Any], parents: list[Any]) -> None:
    """Release sub-buffers before their parents: NVIDIA's driver crashes on the reverse order (seen on H200)."""
    for mem in subs + parents:
        try:
            mem.release()
        except Exception:  # noqa: BLE001 - at interpreter exit the driver may already be gone
            pass
    subs.clear()
    parents.clear()


class Plan:
    """Builds storage, views, launches and host steps for one graph with static shapes."""

    def __init__(self, graph: Graph, handle: DeviceHandle,
                 lowerings: dict[str, Lowering], half: bool, tuned: bool = True,
                 variants: dict[str, str] | None = None, keep: Sequence[str] = (),
                 guard: ShapeGuard | None = None) -> None:
        self.graph, self.context, self.queue, self.device = graph, handle.context, handle.queue, handle.device
        self.guard = guard or ShapeGuard()
        self.builder, self.half, self.lowerings, self.tuned = handle, half, lowerings, tuned
        self._keep = list(keep)  # values whose storage must outlive their last reader (a body's loop-invariant inputs)
        self.is_gpu = bool(self.device.type & 4)  # CL_DEVICE_TYPE_GPU
        # Lanes of the CPU's widest float vector (16 with AVX-512, 8 with AVX2): CPU kernels block their
        # accumulators to fit that register file (32 registers of 16 lanes, or 16 of 8).
        self.vector_lanes = 0 if self.is_gpu else int(self.device.native_vector_width_float)
        # CPU programs inline what their drivers call out of line (common.cl: exp_f).
        self.target_defines = {} if self.is_gpu else {"CLMACE_CPU": None}
        self.use_records = tuned and handle.cache is not None
        self.forced = dict(variants or {})  # family -> variant name, for tests and experiments
        self.records_used = 0
        self._kernel_keys: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.nodes, self.fused, self.epilogues = fuse_for_opencl(graph)
        self.consts: dict[str, np.ndarray] = dict(graph.initializers)
        self.alias: dict[str, str] = {}
        self.weight_bytes = 0
        self.upload_bytes = 0
        self._const_bufs: dict[str, Any] = {}
        # Device buffers and the sub-buffers carved from them, released sub-buffers first (see _release).
        self._parents: list[Any] = []
        self._subs: list[Any] = []
        weakref.finalize(self, _release, self._subs, self._parents)
        self.program_keys: set[tuple[str, tuple[str, ...]]] = set()
        self._views()
        self._allocate()
        self.steps: list[Step] = []
        self.devices: dict[str, str] = {}
        self._writes: list[Any] = []  # events of weight copies still in flight (they keep the host arrays alive)
        self._lower(lowerings)
        self.settle_uploads()
        self._planned = True

    # --- tensors -------------------------------------------------------------------------------
    def root(self, name: str) -> str:
        """The value whose storage name lives in (itself unless it is a view)."""
        while name in self.alias:
            name = self.alias[name]
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        """Static shape of a value or constant."""
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return tuple(int(d) for d in self.graph.values[name].shape)  # type: ignore[union-attr]

    def dtype(self, name: str) -> np.dtype:
        """The graph's element type of a value."""
        if name in self.consts:
            return self.consts[name].dtype
        return np.dtype(self.graph.values[name].dtype)

    def stored(self, name_or_dtype: str | np.dtype) -> np.dtype:
        """Element type in device memory: float32 becomes float16 at fp16 precision."""
        dt = self.dtype(name_or_dtype) if isinstance(name_or_dtype, str) else np.dtype(name_or_dtype)
        return np.dtype(np.float16) if self.half and dt == np.float32 else dt

    def const(self, name: str) -> np.ndarray | None:
        """The constant value of name, or None when it is computed at run time."""
        return self.consts.get(name) if name else None

    def float_defines(self, name: str) -> dict[str, Any]:
        """-D options for kernels whose float tensors are stored like value name."""
        return {"HALF": None} if self.stored(name) == np.float16 else {}

    def nbytes(self, name: str) -> int:
        """Bytes of a value in device memory."""
        return int(np.prod(self.shape(name), dtype=np.int64)) * self.stored(name).itemsize

    # --- storage -------------------------------------------------------------------------------
    def _views(self) -> None:
        """Record view outputs as aliases (of a value, or of a constant reshaped on the host)."""
        for node in self.nodes:
            if not _is_view(node):
                continue
            src, dst = node.inputs[0], node.outputs[0]
            if src in self.consts:
                self.consts[dst] = self.consts[src].reshape(self.shape(dst))
            else:
                self.alias[dst] = src

    def _allocate(self) -> None:
        """Lifetimes of every stored value and the shared buffers (slots) holding them."""
        import pyopencl as cl

        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for v in self.graph.inputs:
            if v.name not in self.consts:
                first[v.name] = last[v.name] = 0
        for step, node in enumerate(self.nodes):
            reads = [i for i in node.inputs if i] + [self.epilogue(node).residual]
            for name in reads:
                if name and name not in self.consts:
                    r = self.root(name)
                    last[r] = max(last.get(r, step), step)
            for name in node.outputs:
                if name and name not in self.consts and name not in self.alias:
                    first.setdefault(name, step)
                    last[name] = max(last.get(name, step), step)
        for name in [*self.graph.output_names(), *self._keep]:
            if name not in self.consts:
                last[self.root(name)] = len(self.nodes)
        self.blocks = [Block(name, self.nbytes(name), first[name], last[name]) for name in first]
        self.base_align = base_align = max(int(self.device.mem_base_addr_align) // 8, 64)
        guard = align(SLACK, base_align)  # the first tensor may be read a little before its start too
        slots = plan_slots(self.blocks, base_align)
        self.arena_bytes = sum(slots) + guard * len(slots)
        self.live_bytes = live_peak(self.blocks)
        # One buffer per slot (with a guard in front), shared by every tensor assigned to it: no two live
        # sub-buffers ever overlap, which NVIDIA's driver does not survive.
        slot_bufs = []
        for size in slots:
            whole = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, guard + size)
            slot_bufs.append(whole.get_sub_region(guard, size))
            self._parents.append(whole)
        self._subs.extend(slot_bufs)
        self._bufs = {b.name: slot_bufs[b.offset] for b in self.blocks}
        log.debug("arena %d bytes for %d tensors (live peak %d)", self.arena_bytes, len(self.blocks),
                  self.live_bytes)

    def buf(self, name: str) -> Any:
        """Device buffer of a value (constants are uploaded on first use)."""
        if name in self.consts:
            if name not in self._const_bufs:
                self._const_bufs[name] = self.upload(self.consts[name])
            return self._const_bufs[name]
        return self._bufs[self.root(name)]

    def upload(self, array: np.ndarray, like: str = "", count: bool = True) -> Any:
        """A read-only device copy of array, in the storage type of value `like` (or its own), with slack."""
        import pyopencl as cl

        dtype = self.stored(like) if like and array.dtype.kind == "f" else self.stored(array.dtype)
        arr = np.ascontiguousarray(array, dtype=dtype)
        guard = align(SLACK, self.base_align)
        size = guard + arr.nbytes + SLACK
        if count:
            self.weight_bytes += arr.nbytes
        self.upload_bytes += size
        whole = cl.Buffer(self.context, cl.mem_flags.READ_ONLY, size)
        # Zeroed first (vector loads may read guard and slack), then copied without blocking: the driver moves
        # a model's weights while planning goes on (PoCL: ~2x less time than a staged COPY_HOST_PTR).
        cl.enqueue_fill_buffer(self.queue, whole, np.uint8(0), 0, size)
        if arr.nbytes:
            self._writes.append(cl.enqueue_copy(self.queue, whole, arr, dst_offset=guard, is_blocking=False))
        if getattr(self, "_planned", False):
            self.settle_uploads()  # later uploads (the tuner's) are rare: no reason to keep their arrays around
        buf = whole.get_sub_region(guard, arr.nbytes + SLACK)
        # Kernels hold only the cl_mem handle: the Python objects must outlive them.
        self._parents.append(whole)
        self._subs.append(buf)
        return buf

    def workspace(self, nbytes: int) -> Any:
        """A read-write device buffer of one node's own (intermediates between its launches), never shared."""
        import pyopencl as cl

        whole = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(int(nbytes), 4) + SLACK)
        self.upload_bytes += max(int(nbytes), 4) + SLACK
        self._parents.append(whole)
        return whole

    def settle_uploads(self) -> None:
        """Wait for the weight copies in flight, then let their host arrays go."""
        if self._writes:
            self.queue.finish()
            self._writes.clear()

    def ints(self, values: Sequence[int]) -> Any:
        """A small device array of int32 launch parameters (shapes, strides)."""
        return self.upload(np.asarray(list(values) or [0], dtype=np.int32), count=False)

    # --- launches ------------------------------------------------------------------------------
    def kernel(self, file: str, name: str, defines: dict[str, Any] | None = None) -> Any:
        """A kernel object from the (deduplicated) program for file + defines."""
        defines = {**(defines or {}), **self.target_defines}
        key = self.builder.key(file, defines)
        self.program_keys.add(key)
        kernel = self.builder.kernel(file, name, defines)
        self._kernel_keys[id(kernel)] = key
        return kernel

    def launch(self, node: Node, kernel: Any, args: Sequence[Any], gws: Sequence[int],
               lws: Sequence[int] | None = None) -> list[Launch]:
        """Bind args once and return the launch (none when the range is empty); gws rounds up to lws."""
        if any(g <= 0 for g in gws):
            return []
        kernel.set_args(*[_arg(a) for a in args])
        if lws is None:
            lws = default_lws(gws, self.is_gpu, every_bound=False)
        gws = tuple(-(-int(g) // int(lw)) * int(lw) for g, lw in zip(gws, lws))
        lws = tuple(int(x) for x in lws)
        # Any other local size must divide this range: these kernels check only the bounds they need.
        file, options = self._kernel_keys.get(id(kernel), ("?", ()))
        name = kernel.function_name
        only = Variant("default", file, name)
        gws_text = "x".join(map(str, gws))
        key = record_key(f"lws:{name}", [file], " ".join(options), f"gws={gws_text}", self._out_dtype(node))
        spec = TuneSpec(f"lws:{name}", key, f"gws={gws_text}", [only], lambda v: Bound(kernel, [], gws), only,
                        lws, exact=True)
        chosen = self._record(spec)
        if chosen is not None and chosen[1] != AUTO and _divides(chosen[1], gws):
            self.records_used += 1
            return [Launch(node.name, kernel, gws, chosen[1], spec, "default", True)]
        return [Launch(node.name, kernel, gws, lws, spec, "default")]

    def _out_dtype(self, node: Node) -> str:
        outs = [o for o in node.outputs if o]
        return self.stored(outs[0]).name if outs else "none"

    # --- tunable launches ----------------------------------------------------------------------
    def tunable(self, node: Node, spec: TuneSpec) -> list[Launch]:
        """The launch of a tunable op: a forced variant, else its tuned record, else the device default."""
        forced = spec.variant(self.forced.get(spec.family, ""))
        if forced is not None:
            return self.bind(node, spec, forced, AUTO)
        chosen = self._record(spec)
        if chosen is not None:
            launches = self.bind(node, spec, *chosen, check=True)
            if launches:
                launches[0].tuned = True
                self.records_used += 1
                return launches
        return self.bind(node, spec, spec.default, spec.default_lws)

    def bind(self, node: Node, spec: TuneSpec, variant: Variant, lws: LwsChoice | str = AUTO,
             check: bool = False) -> list[Launch]:
        """Build one variant of a tunable op with a local size (AUTO: the device type's heuristic); with
        check, a local size that does not fit the kernel on this device falls back to the heuristic."""
        bound = self.prepare(spec, variant)
        if any(g <= 0 for g in bound.gws):
            return []
        if check and isinstance(lws, tuple) and (len(lws) != len(bound.gws) or not self.fits(lws, bound.kernel)):
            log.info("tuned local size %s does not fit %s here; using the default", lws, variant.kernel)
            lws = AUTO
        if lws == AUTO:
            lws = heuristic_lws(variant, bound.gws, self.is_gpu)
        return [self.make_launch(node.name, spec, variant, bound, lws)]  # type: ignore[arg-type]

    def prepare(self, spec: TuneSpec, variant: Variant) -> Bound:
        """Build one variant's kernel (weights packed and uploaded for it) and bind its arguments."""
        bound = spec.build(variant)
        if bound.args and all(g > 0 for g in bound.gws):
            bound.kernel.set_args(*[_arg(a) for a in bound.args])
        return bound

    @staticmethod
    def make_launch(node: str, spec: TuneSpec, variant: Variant, bound: Bound, lws: LwsChoice) -> Launch:
        """A launch of a prepared variant with a concrete local size (the range rounded up to it)."""
        gws = bound.gws if lws is None else tuple(-(-g // lw) * lw for g, lw in zip(bound.gws, lws))
        return Launch(node, bound.kernel, tuple(gws), lws, spec, variant.name)

    def _record(self, spec: TuneSpec) -> tuple[Variant, LwsChoice | str] | None:
        """(variant, lws) from this device's tuned record for spec, when one exists and still fits."""
        return tv.recorded_choice(self.builder.tuned(spec.key), spec) if self.use_records else None

    def fits(self, lws: Sequence[int], kernel: Any = None) -> bool:
        """True when a local size fits the device (and the kernel, when given)."""
        return tv.fits(self.device, lws, kernel)

    @contextlib.contextmanager
    def scratch(self, builder: DeviceHandle | None = None) -> Iterator[None]:
        """Uploads made inside are released afterwards (the tuner's trial variants), programs built through
        `builder` when given (one without a program store keeps trial programs out of the file)."""
        subs, parents, weights, uploads = len(self._subs), len(self._parents), self.weight_bytes, self.upload_bytes
        programs, consts, own = set(self.program_keys), set(self._const_bufs), self.builder
        self.builder = builder or own
        try:
            yield
        finally:
            self.builder = own
            for name in set(self._const_bufs) - consts:
                del self._const_bufs[name]
            _release(self._subs[subs:], self._parents[parents:])
            del self._subs[subs:], self._parents[parents:]
            self.weight_bytes, self.upload_bytes, self.program_keys = weights, uploads, programs

    def epilogue(self, node: Node) -> Epilogue:
        """What the plan fused onto this node's result (an empty Epilogue when nothing)."""
        return self.epilogues.get(node.name, _NO_EPILOGUE)

    # --- lowering ------------------------------------------------------------------------------
    def _lower(self, lowerings: dict[str, Lowering]) -> None:
        from clmace.ops import REGISTRY
        from clmace.ops.call import resolve

        for node in self.nodes:
            if _is_view(node):
                self.devices[node.name] = "view"
                continue
            fn = lowerings.get(node.op_type) if node.domain in ("", "ai.onnx", CHAIN_DOMAIN) else None
            reason = "no OpenCL kernel for this op"
            if fn is not None:
                try:
                    steps = fn(node, self)
                    self.steps.extend(steps)
                    inner = [n for s in steps if isinstance(s, ControlStep) for n in s.host_nodes()]
                    self.devices[node.name] = "cpu" if inner else "opencl"  # a body with host nodes is not all device
                    continue
                except NotLowerable as exc:
                    reason = str(exc)
            host = chain_host_fn(self.graph, node) if node.op_type == CHAIN_OP else resolve(REGISTRY, node,
                                                                                            self.graph.opset)
            self.steps.append(self._host_step(node, host))
            self.devices[node.name] = "cpu"
            log.debug("node %s (%s) on the host: %s", node.name, node.op_type, reason)
        for name, into in self.fused.items():
            while into in self.fused:
                into = self.fused[into]
            self.devices[name] = self.devices.get(into, "opencl")

    def _host_step(self, node: Node, fn: Callable[..., Any]) -> HostStep:
        """A host step for node; a node that absorbed others also applies their epilogue, in NumPy."""
        epilogue = self.epilogues.get(node.name)
        if epilogue is None:
            return HostStep(node, fn)
        own = len(node.inputs)
        bias = self.consts.get(epilogue.bias) if epilogue.bias else None

        def fused(*args: Any, **attrs: Any) -> Any:
            mine = list(args[:own])
            while mine and mine[-1] is None:
                mine.pop()
            residual = args[own] if epilogue.residual else None
            return epilogue.apply(np.asarray(fn(*mine, **attrs)), residual, bias)

        extra = [epilogue.residual] if epilogue.residual else []
        return HostStep(replace(node, inputs=[*node.inputs, *extra]), fused)

    def raw_weight_bytes(self) -> int:
        """Bytes of the distinct constants that device nodes read, in storage format."""
        names = {i for n in self.nodes if self.devices.get(n.name) == "opencl" for i in n.inputs
                 if i and i in self.graph.initializers}
        return sum(int(self.graph.initializers[i].size) * self.stored(i).itemsize for i in names)

    def host_nodes(self) -> list[Node]:
        """Nodes that run on the host (those of control-flow bodies included)."""
        own = [s.node for s in self.steps if isinstance(s, HostStep)]
        return own + [n for s in self.steps if isinstance(s, ControlStep) for n in s.host_nodes()]

    def sub_plan(self, graph: Graph, keep: Sequence[str] = ()) -> Plan:
        """A plan for a control-flow body on the same device, precision and tuning choices."""
        return Plan(graph, self.builder, self.lowerings, self.half, self.tuned, self.forced, keep, self.guard)
