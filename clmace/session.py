"""InferenceSession: the onnxruntime-shaped public API."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clmace import model_cache
from clmace.backends.numpy import NumpyRuntime
from clmace.core.errors import DeviceError, ModelError, PlannedShapeError
from clmace.core.ir import Dim, Graph
from clmace.frontend import modelfile
from clmace.frontend.shapes import dry_run_shapes
from clmace.options import SessionOptions

if TYPE_CHECKING:  # onnx is imported only when an ONNX model is loaded: it costs ~60 ms of start-up
    import onnx

    from clmace.frontend.onnx_import import ModelSource

log = logging.getLogger("clmace.session")

# Ops whose output shape depends on input values: a dry run's shapes are not theirs for every input.
DATA_DEPENDENT = {"NonZero", "Unique", "NonMaxSuppression", "Compress", "TopK", "If", "Loop", "Scan"}
# Inputs (op -> input positions) that decide output shapes or the constants a kernel is built with: a small
# graph input read there (Resize scales, a Reshape target, Slice bounds, ...) gets a plan per value on OpenCL.
_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")
SHAPE_SLOTS = {"Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3),
               "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
               "ConstantOfShape": (0,), "Range": (0, 1, 2), "OneHot": (1,), "CumSum": (1,),
               **{op: (1,) for op in _REDUCE}}
MAX_SHAPE_INPUT = 16  # elements: larger inputs are data, not parameters
MAX_SHAPE_ROUNDS = 4  # dry run + fold rounds while folding inlines control-flow branches
MAX_PLANS = 8  # plans kept per session, one per input shape (least recently used dropped first)
_ONNX_TYPES = {"float32": "float", "float64": "double", "bool": "bool", "float16": "float16"}


def onnx_type_name(dtype: np.dtype) -> str:
    """onnxruntime's spelling of a tensor type, e.g. 'tensor(float)'."""
    return f"tensor({_ONNX_TYPES.get(np.dtype(dtype).name, np.dtype(dtype).name)})"


@dataclass(frozen=True)
class NodeArg:
    """Description of a graph input or output, like onnxruntime.NodeArg."""

    name: str
    shape: list[Dim]
    type: str


@dataclass(frozen=True)
class ModelMetadata:
    """Model metadata, like onnxruntime.ModelMetadata."""

    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def _device_from_providers(providers: Sequence[Any] | None) -> str | None:
    names = [p[0] if isinstance(p, (tuple, list)) else str(p) for p in providers or []]
    if any("OpenCL" in n or n == "GPU" for n in names):
        return "opencl"
    missing = [n for n in names if n != "CPUExecutionProvider"]
    if missing:  # as onnxruntime does for providers it lacks: say so rather than fall back in silence
        warnings.warn(f"clmace has no {', '.join(missing)}; running on the CPU runtime. NVIDIA and other GPUs run "
                      "through OpenCL: providers=['OpenCLExecutionProvider'] or device='gpu'", stacklevel=3)
    return "cpu" if names else None


class InferenceSession:
    """Runs an ONNX model (path, bytes, ModelProto) or a converted-model file on cpu or OpenCL."""

    def __init__(self, model: ModelSource | Graph, device: str | None = None,
                 providers: Sequence[Any] | None = None, sess_options: Any = None, **options: Any) -> None:
        """Load model and plan it for device; `options` are SessionOptions' fields (unknown names raise).

        sess_options may be a clmace SessionOptions, or onnxruntime's (its graph_optimization_level is read).
        """
        if isinstance(sess_options, SessionOptions):
            options = {**{k: v for k, v in vars(sess_options).items() if k != "device"}, **options}
            device = device or (sess_options.device if sess_options.device != "cpu" else None)
        chosen = device or _device_from_providers(providers) or os.environ.get("CLMACE_DEVICE", "cpu")
        self.options = SessionOptions.from_kwargs(device=chosen, **options)
        self.device, self.precision, self.strict = chosen, self.options.precision, self.options.strict
        self.allow_cpu_fallback = self.options.allow_cpu_fallback
        input_shapes = self.options.input_shapes
        # The store must exist before OpenCL is first touched: it may point PoCL's kernel cache elsewhere.
        self.program_store = self._make_store(self.options) if self.device != "cpu" else None
        if self.device != "cpu" and not isinstance(model, Graph):
            from clmace.backends.opencl.discovery import prefetch_devices

            prefetch_devices()  # pyopencl's import and the device list overlap reading the model
        level = getattr(sess_options, "graph_optimization_level", None)
        self._run_passes = getattr(level, "name", str(level)) != "ORT_DISABLE_ALL"
        self._proto: onnx.ModelProto | None = None
        self.pass_report: dict[str, int] = {}
        if isinstance(model, Graph):
            self.graph = model
        elif self._is_converted(model):
            self.graph, extra = (modelfile.loads(bytes(model)) if isinstance(model, (bytes, bytearray))
                                 else modelfile.load(model))  # type: ignore[arg-type]
            self.pass_report = extra.get("passes", {})
        else:
            self.graph, self.pass_report = self._convert(model, input_shapes)
        self._input_shapes = dict(input_shapes or {})
        self._has_control_flow = any(isinstance(a, Graph) for n in self.graph.nodes for a in n.attrs.values())
        self._control_names = self._control_inputs()  # fixed for the session: read on every run()
        self._runtimes: dict[tuple, Any] = {}
        if self.device == "cpu":
            self._runtimes[()] = NumpyRuntime(self.graph)  # shape-agnostic: one runtime serves all shapes
        elif self._plannable_now():
            self._runtime_for({v.name: tuple(v.shape) for v in self.graph.inputs})  # type: ignore[arg-type]
        elif not self.allow_cpu_fallback:  # planned at the first run(): check the device and precision now
            from clmace.backends.opencl.runtime import check_precision, device_info

            check_precision(device_info(self.device), self.precision, self.options.fp16_without_extension)

    @staticmethod
    def _make_store(options: SessionOptions) -> Any:
        """The compiled-program store for this session, or None when compiled_program=False."""
        if options.compiled_program is False:
            return None
        from clmace.store import ProgramStore

        path = options.compiled_program
        store = ProgramStore(path=None if path is None or path is True else os.fspath(path),
                             search_paths=[os.fspath(p) for p in options.program_paths or []],
                             trusted_keys=options.trusted_keys, sign_key=options.sign_key)
        store.load()  # now, before OpenCL starts: driver caches captured in the file must be in place first
        return store

    def _convert(self, model: Any, input_shapes: Mapping[str, Sequence[int]] | None) -> tuple[Graph, dict]:
        """The IR of an ONNX model: from the converted-model cache for a path seen before (no ONNX parsing, see
        model_cache), else converted now (and cached for the next start)."""
        path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        if path is not None and not os.path.isfile(path):
            path = None  # load_onnx says what is wrong with it
        if path is not None and model_cache.enabled():
            cached = model_cache.get(path, input_shapes, self._run_passes)
            if cached is not None:
                return cached
        from clmace.frontend.convert import build_graph  # imports onnx: only on a miss
        from clmace.frontend.onnx_import import load_onnx

        self._proto = load_onnx(model)
        graph, report = build_graph(self._proto, input_shapes, self._run_passes)
        if path is not None and model_cache.enabled():
            model_cache.put(path, input_shapes, self._run_passes, graph, report)
        return graph, report

    @staticmethod
    def _is_converted(model: Any) -> bool:
        if isinstance(model, (bytes, bytearray)):
            return modelfile.is_model_file(bytes(model[:8]))
        if isinstance(model, (str, os.PathLike)) and os.path.isfile(model):
            with open(model, "rb") as f:
                return modelfile.is_model_file(f.read(8))
        return False

    # --- onnxruntime-compatible surface -------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        """The graph inputs (name, shape, type)."""
        return [NodeArg(v.name, list(v.shape or []), onnx_type_name(v.dtype)) for v in self.graph.inputs]

    def get_outputs(self) -> list[NodeArg]:
        """The graph outputs (name, shape, type)."""
        return [NodeArg(v.name, list(v.shape or []), onnx_type_name(v.dtype)) for v in self.graph.outputs]

    def get_modelmeta(self) -> ModelMetadata:
        """Producer, graph name, domain, description, version and custom metadata of the model."""
        m = dict(self.graph.metadata)
        standard = ("producer_name", "producer_version", "graph_name", "domain", "model_version", "description")
        return ModelMetadata(m.get("producer_name", ""), m.get("graph_name", self.graph.name), m.get("domain", ""),
                             m.get("description", ""), int(m.get("model_version", 0) or 0),
                             {k: v for k, v in m.items() if k not in standard})

    def get_providers(self) -> list[str]:
        """Execution providers in onnxruntime's terms."""
        if self.device == "cpu":
            return ["CPUExecutionProvider"]
        return ["OpenCLExecutionProvider", "CPUExecutionProvider"]

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: Any = None) -> list[np.ndarray]:
        """Run the model on input_feed; return the requested outputs (all when output_names is None)."""
        feeds = self._check_feeds(input_feed)
        known = self.graph.output_names()
        wanted = list(output_names) if output_names else known
        for name in wanted:
            if name not in known and name not in self._computed_values():
                why = " (a graph pass fused it away)" if name in self.graph.values else ""
                raise ValueError(f"unknown output {name!r}{why}; outputs: {known}")
        runtime = self._runtime_for({k: v.shape for k, v in feeds.items()}, feeds)
        try:
            result = runtime.run(feeds, wanted)
        except PlannedShapeError as exc:  # a value-dependent shape changed (control flow took another way)
            log.info("re-planning for these inputs: %s", exc)
            self._runtimes.pop(self._plan_key({k: v.shape for k, v in feeds.items()}, feeds), None)
            result = self._runtime_for({k: v.shape for k, v in feeds.items()}, feeds).run(feeds, wanted)
        return [result[name] for name in wanted]

    @property
    def runtime(self) -> Any:
        """The runtime planned most recently (None before the first plan)."""
        return next(reversed(self._runtimes.values()), None) if self._runtimes else None

    # --- internals -----------------------------------------------------------------------------
    def _computed_values(self) -> set[str]:
        """Every value name the graph still computes or holds, i.e. what run() can return."""
        names = {v.name for v in self.graph.inputs} | set(self.graph.initializers)
        return names | {o for node in self.graph.nodes for o in node.outputs if o}

    def _check_feeds(self, input_feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        expected = {v.name: v for v in self.graph.inputs}
        unknown = sorted(set(input_feed) - set(expected))
        if unknown:
            raise ValueError(f"unknown input name(s) {unknown}; the model's inputs are {sorted(expected)}")
        feeds = {}
        for name, info in expected.items():
            if name not in input_feed:
                raise ValueError(f"missing input {name!r} (expected {onnx_type_name(info.dtype)} "
                                 f"with shape {list(info.shape or [])})")
            arr = np.asarray(input_feed[name])
            if arr.dtype != info.dtype:
                raise ValueError(f"input {name!r}: expected dtype {onnx_type_name(info.dtype)}, "
                                 f"got {onnx_type_name(arr.dtype)}")
            if info.shape is not None:
                if arr.ndim != len(info.shape):
                    raise ValueError(f"input {name!r}: expected rank {len(info.shape)} "
                                     f"(shape {list(info.shape)}), got shape {list(arr.shape)}")
                for axis, (want, got) in enumerate(zip(info.shape, arr.shape)):
                    if isinstance(want, int) and want != got:
                        raise ValueError(f"input {name!r}: expected shape {list(info.shape)}, got "
                                         f"{list(arr.shape)} (dimension {axis})")
            feeds[name] = arr
        return feeds

    def _runtime_for(self, shapes: Mapping[str, tuple[int, ...]],
                     feeds: Mapping[str, np.ndarray] | None = None) -> Any:
        """The runtime planned for these input shapes; a new shape plans a new one (MAX_PLANS kept, LRU)."""
        if () in self._runtimes:
            return self._runtimes[()]
        key = self._plan_key(shapes, feeds)
        runtime = self._runtimes.pop(key, None)
        if runtime is None:
            runtime = self._make_runtime(self._specialize(shapes, feeds), feeds)
            while len(self._runtimes) >= MAX_PLANS:  # least recently used first: dict order is use order
                self._runtimes.pop(next(iter(self._runtimes)))
        self._runtimes[key] = runtime  # (re)inserted last: the most recently used
        return runtime

    def _plan_key(self, shapes: Mapping[str, tuple[int, ...]], feeds: Mapping[str, np.ndarray] | None) -> tuple:
        """What a plan is kept under: the input shapes, and the values of the control inputs."""
        control = self._control_values(feeds)
        return tuple(sorted((k, tuple(v)) for k, v in shapes.items())) + tuple(sorted(control.items()))

    def _specialize(self, shapes: Mapping[str, tuple[int, ...]],
                    feeds: Mapping[str, np.ndarray] | None = None) -> Graph:
        """A copy of the graph whose every value has a concrete shape for these input shapes (and whose scalar
        control inputs hold their values in `feeds`, so that the branches they choose are inlined)."""
        control = self._control_values(feeds)
        # Control-flow bodies get their shapes from a dry run on the inputs (a backend plans them from those).
        same = all(v.is_static() and tuple(v.shape) == tuple(shapes[v.name])  # type: ignore[arg-type]
                   for v in self.graph.inputs)
        if not control and not self._has_control_flow and same:
            if all(v.is_static() for v in self.graph.values.values()):
                return self.graph
        # A graph read from the converted-model cache is specialised like a converted file (copy + dry run
        # + folding): parsing the ONNX file for its shape inference would cost more than it saves.
        if self._proto is not None:
            from clmace.frontend.convert import build_graph

            graph, _ = build_graph(self._proto, shapes, self._run_passes)
        else:
            import copy
            graph = copy.deepcopy(self.graph)
        if control:
            self._fix_control_inputs(graph, control)
        for rounds in range(MAX_SHAPE_ROUNDS):  # an inlined branch brings values whose shapes the last run did not see
            if (rounds or not self._has_control_flow) and all(
                    n in graph.values and graph.values[n].is_static() for node in graph.nodes for n in node.outputs
                    if n):
                break
            # On the inputs being planned for when there are any (zeros otherwise): shapes that depend on values
            # are then theirs, and a host step whose output shape later differs raises PlannedShapeError, upon
            # which run() plans again for the new inputs.
            dry_run_shapes(graph, shapes, feeds)
            if not self._run_passes:
                break
            from clmace.frontend.passes import optimize

            # Every shape is known now: Shape/Size and what is computed from them (Range, Expand,
            # ConstantOfShape, Concat, If conditions, ...) fold to constants instead of running on the host.
            if not optimize(graph).get("inline_constant_if"):
                break
        return graph

    def _plannable_now(self) -> bool:
        """True when every shape is known without running the model: planned at construction. Otherwise
        the first run() plans, with its inputs (a dry run on zeros would steer value-dependent shapes)."""
        if self._has_control_flow or self._control_names or not all(v.is_static() for v in self.graph.inputs):
            return False  # control flow: its bodies' shapes come from a dry run on the real inputs
        return all(n in self.graph.values and self.graph.values[n].is_static()
                   for node in self.graph.nodes for n in node.outputs if n)

    def _control_values(self, feeds: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
        """The values of the control inputs, on an OpenCL device: each value gets a plan of its own in which
        they are constants, so that the If nodes they decide are inlined (a sample rate, a mode) and the
        shapes and kernel parameters they set are folded (Resize scales, a Reshape target)."""
        if feeds is None:
            return {}
        values: dict[str, Any] = {}
        for name in self._control_names:
            arr = np.asarray(feeds[name])
            values[name] = arr.reshape(()).item() if arr.size == 1 else tuple(arr.reshape(-1).tolist())
        return values

    def _control_inputs(self) -> list[str]:
        """On an OpenCL device: scalar integer or bool inputs of a graph with control flow, and small inputs read
        where ops take shapes or parameters (SHAPE_SLOTS)."""
        if self.device == "cpu":
            return []
        slots = self._shape_sources()
        names = []
        for v in self.graph.inputs:
            scalar = v.shape is not None and all(d == 1 for d in v.shape)
            if self._has_control_flow and scalar and v.dtype.kind in "iub":
                names.append(v.name)
            elif v.name in slots and v.is_static() and v.dtype.kind in "iuf" \
                    and int(np.prod(v.shape, dtype=np.int64)) <= MAX_SHAPE_INPUT:  # type: ignore[arg-type]
                names.append(v.name)
        return names

    def _shape_sources(self) -> set[str]:
        """Values read where ops take shapes or parameters (SHAPE_SLOTS), and the integer values those are
        computed from (a size input -> Gather -> Range): the graph inputs among them are parameters."""
        producers = self.graph.producers()
        found = {node.inputs[i] for node in self.graph.nodes for i in SHAPE_SLOTS.get(node.op_type, ())
                 if i < len(node.inputs) and node.inputs[i]}
        todo = list(found)
        while todo:
            node = producers.get(todo.pop())
            if node is None or node.op_type in ("Shape", "Size") or any(isinstance(a, Graph)
                                                                          for a in node.attrs.values()):
                continue  # Shape and Size read the shape of their input, not its values
            for name in node.inputs:
                info = self.graph.values.get(name)
                if name and name not in found and info is not None and info.dtype.kind in "iu":
                    found.add(name)
                    todo.append(name)
        return found

    def _fix_control_inputs(self, graph: Graph, control: Mapping[str, Any]) -> None:
        """Make the graph read constants instead of these inputs, then fold and inline what they decide."""
        from clmace.frontend.graph_edit import add_initializer, replace_uses
        from clmace.frontend.passes import optimize

        for v in graph.inputs:
            if v.name in control:
                value = np.asarray(control[v.name], v.dtype).reshape(v.shape if v.is_static() else ())
                replace_uses(graph, v.name, add_initializer(graph, f"{v.name}:value", value))
        if self._run_passes:
            optimize(graph)

    def _make_runtime(self, graph: Graph, feeds: Mapping[str, np.ndarray] | None = None) -> Any:
        from clmace.backends.opencl import OpenCLRuntime  # imported lazily: pyopencl loads the ICD

        try:
            runtime = OpenCLRuntime(graph, self.device, program_store=self.program_store,
                                    **self.options.runtime_options())
        except DeviceError as exc:
            if not self.allow_cpu_fallback:
                raise
            warnings.warn(f"OpenCL device {self.device!r} cannot run this model ({exc}); running it on the CPU "
                          "runtime instead (allow_cpu_fallback=True)", stacklevel=3)
            return NumpyRuntime(graph)
        if self.program_store is not None and self.program_store.status()["unsaved"]:
            # Drivers finish compiling at the first launch (PoCL: per work-group size), so run once before
            # saving: the file then holds everything a warm start needs. Zeros would steer control flow
            # anywhere, so a value-dependent graph warms up on the real inputs (or not at all).
            if feeds is not None:
                runtime.run(feeds)
            elif not any(n.op_type in DATA_DEPENDENT for n in graph.nodes):
                runtime.run({v.name: np.zeros(v.shape, v.dtype) for v in graph.inputs})
            # Reading the binaries makes PoCL compile every kernel again (for any work-group size): off the
            # path to the first result, on a thread that the next store of this file and the exit wait for.
            self.program_store.save_in_background()
        return runtime

    def wait_saved(self) -> None:
        """Block until the programs this session compiled are in its compiled-program file (written on a
        thread after the first plan, so that they cost the first result nothing)."""
        if self.program_store is not None:
            self.program_store.wait()

    def profile_table(self) -> str:
        """Per-node timing table of the last run (OpenCL devices only)."""
        runtime = next(iter(self._runtimes.values()), None)
        if runtime is None or not hasattr(runtime, "profile_table"):
            raise ModelError(f"profiling needs an OpenCL device; this session runs on {self.device!r}")
        return runtime.profile_table()
