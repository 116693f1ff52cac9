"""MACE-style validation: run onnxruntime and clmace on the same inputs and compare every output (or layer)."""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from clmace.core.errors import ClmaceError, ModelError
from clmace.core.ir import ValueInfo

# MACE's defaults: cosine similarity decides; fp16 storage loses ~3 decimal digits, hence its looser bar.
DEFAULT_THRESHOLDS = {"cpu": 0.999, "gpu": 0.995, "fp16": 0.99}
DEFAULT_RANGE = (-1.0, 1.0)
LAYER_COLUMNS = ["layer", "op", "shape", "cosine", "sqnr", "max_abs", "max_rel", "pass"]


@dataclass
class Metrics:
    """How closely one clmace tensor matches onnxruntime's."""

    name: str
    shape: list[int]
    dtype: str
    cosine: float
    sqnr_db: float
    max_abs: float
    max_rel: float
    top1: float | None
    passed: bool
    op: str = ""
    note: str = ""


@dataclass
class ValidationResult:
    """Outcome of validate(): per-output metrics, optional per-layer rows, and the verdict."""

    model: str
    reference: str
    device: str
    precision: str
    threshold: float
    inputs: dict[str, dict]
    outputs: list[Metrics]
    layers: list[Metrics] | None = None
    first_divergent: str | None = None
    csv_path: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every output meets the threshold."""
        return all(m.passed for m in self.outputs)

    def to_dict(self) -> dict:
        """JSON-safe dict (infinite SQNR becomes the string 'inf')."""
        d = asdict(self)
        d["passed"] = self.passed
        for row in d["outputs"] + (d["layers"] or []):
            for key, value in row.items():
                if isinstance(value, float) and not math.isfinite(value):
                    row[key] = str(value)
        return d

    def render(self) -> str:
        """Human-readable table of the per-output metrics and the verdict."""
        lines = [f"validate {self.model} on {self.device} ({self.precision}) against onnxruntime "
                 f"({os.path.basename(self.reference)}); cosine threshold {self.threshold}"]
        lines.append(f"  {'output':<28} {'shape':<18} {'cosine':>10} {'SQNR dB':>9} {'max abs':>10} "
                     f"{'max rel':>10} {'top-1':>6}  result")
        for m in self.outputs:
            top1 = f"{m.top1:.0%}" if m.top1 is not None else "-"
            lines.append(f"  {m.name[:28]:<28} {str(m.shape):<18} {m.cosine:>10.8f} {m.sqnr_db:>9.2f} "
                         f"{m.max_abs:>10.3g} {m.max_rel:>10.3g} {top1:>6}  {'PASS' if m.passed else 'FAIL'}"
                         + (f" ({m.note})" if m.note else ""))
        if self.layers is not None:
            bad = sum(not m.passed for m in self.layers)
            lines.append(f"layers: {len(self.layers)} compared, {bad} below threshold"
                         + (f"; first divergent layer: {self.first_divergent}" if self.first_divergent else ""))
            if self.csv_path:
                lines.append(f"per-layer CSV: {self.csv_path}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def default_threshold(device: str, precision: str = "fp32",
                      thresholds: float | Mapping[str, float] | None = None) -> float:
    """The cosine threshold for this device and precision (a float, or a dict keyed cpu/gpu/fp16)."""
    if isinstance(thresholds, (int, float)):
        return float(thresholds)
    table = {**DEFAULT_THRESHOLDS, **{k.lower(): float(v) for k, v in (thresholds or {}).items()}}
    if precision == "fp16":
        return table["fp16"]
    return table["cpu"] if device == "cpu" else table.get("opencl", table["gpu"])


def compare(name: str, got: np.ndarray, want: np.ndarray, threshold: float, op: str = "") -> Metrics:
    """Metrics of got against the reference want; shapes and dtypes are checked before values."""
    shape = list(np.shape(want))
    if np.shape(got) != np.shape(want):
        return Metrics(name, shape, str(want.dtype), float("nan"), float("nan"), float("nan"), float("nan"),
                       None, False, op, f"shape {list(np.shape(got))} != reference {shape}")
    note = "" if got.dtype == want.dtype else f"dtype {got.dtype} != reference {want.dtype}"
    a = np.asarray(got, dtype=np.float64).ravel()
    b = np.asarray(want, dtype=np.float64).ravel()
    diff = np.abs(a - b)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if a.size == 0 or (na == 0.0 and nb == 0.0):
        cosine = 1.0
    else:
        cosine = float(np.dot(a, b) / (na * nb)) if na and nb else 0.0
    noise = float(np.sum(diff * diff))
    sqnr = float("inf") if noise == 0.0 else (10.0 * math.log10(nb * nb / noise) if nb else float("-inf"))
    max_abs = float(diff.max()) if diff.size else 0.0
    # Relative error per element, with the denominator floored at 0.1% of the tensor's largest magnitude:
    # otherwise elements that are ~0 in the reference turn rounding noise into astronomical ratios.
    floor = max(1e-3 * float(np.abs(b).max()) if b.size else 0.0, 1e-12)
    max_rel = float((diff / np.maximum(np.abs(b), floor)).max()) if diff.size else 0.0
    top1 = None
    if want.ndim >= 1 and want.shape[-1] > 1 and want.dtype.kind == "f" and want.size:
        top1 = float(np.mean(np.argmax(got, axis=-1) == np.argmax(want, axis=-1)))
    passed = bool(math.isfinite(cosine) and cosine >= threshold and not note)
    return Metrics(name, shape, str(want.dtype), cosine, sqnr, max_abs, max_rel, top1, passed, op, note)


def _file_name(name: str) -> str:
    return name.replace("/", "_").replace(":", "_")


def make_inputs(inputs: Sequence[ValueInfo], given: Mapping[str, np.ndarray] | None = None,
                input_dir: str | None = None, ranges: Mapping[str, tuple[float, float]] | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Feeds for every input: given arrays, then <dir>/<name>.npy, else uniform random within its range."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for info in inputs:
        if given and info.name in given:
            feeds[info.name] = np.asarray(given[info.name])
            continue
        if input_dir:
            for candidate in (info.name, _file_name(info.name)):
                path = os.path.join(input_dir, candidate + ".npy")
                if os.path.isfile(path):
                    feeds[info.name] = np.load(path).astype(info.dtype, copy=False)
                    break
            else:
                raise ClmaceError(f"input {info.name!r}: no {_file_name(info.name)}.npy in {input_dir}")
            continue
        if not info.is_static():
            raise ClmaceError(f"input {info.name!r} has dynamic shape {list(info.shape or [])}; "
                              "fix it with --input-shape NAME=D0,D1,.. or give .npy inputs")
        lo, hi = (ranges or {}).get(info.name, DEFAULT_RANGE)
        shape = tuple(info.shape)  # type: ignore[arg-type]
        if info.dtype.kind == "f":
            feeds[info.name] = rng.uniform(lo, hi, shape).astype(info.dtype)
        elif info.dtype.kind == "b":
            feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[info.name] = rng.integers(int(lo), int(hi) + 1, shape).astype(info.dtype)
    return feeds


def is_converted(path: str) -> bool:
    """True for a clmace converted-model file (onnxruntime cannot read those)."""
    from clmace.frontend import modelfile

    with open(path, "rb") as f:
        return modelfile.is_model_file(f.read(8))


def _ort_session(model: onnx.ModelProto):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ClmaceError("validation needs onnxruntime as the reference: pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    # The reference must be the model as written, not onnxruntime's own fused rewrite of it.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def expose_intermediates(model: onnx.ModelProto, names: Sequence[str],
                         dtypes: Mapping[str, np.dtype]) -> onnx.ModelProto:
    """A copy of model whose graph also outputs the named intermediate tensors."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(copy)
        known = {vi.name: vi for vi in inferred.graph.value_info}
    except Exception:  # noqa: BLE001 - inference is best effort; clmace's dtypes fill the gaps
        known = {}
    present = {o.name for o in copy.graph.output}
    for name in names:
        if name in present:
            continue
        if name in known and known[name].type.tensor_type.elem_type:
            copy.graph.output.append(known[name])
        else:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtypes.get(name, np.float32)))
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    return copy


def _layer_names(proto: onnx.ModelProto, sess) -> list[tuple[str, str]]:
    """(value name, clmace op) of ONNX node outputs that a clmace node still produces, in ONNX order."""
    producers = sess.graph.producers()
    rows = []
    for node in proto.graph.node:
        for name in node.output:
            if name and name in producers:
                n = producers[name]
                act = n.attrs.get("activation")
                rows.append((name, n.op_type + (f"+{act}" if act else "")))
    return rows


def _run_layers(sess, feeds: Mapping[str, np.ndarray], out_names: list[str], rows: list[tuple[str, str]],
                notes: list[str]) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Outputs plus every layer value the runtime can return; values it fused away are dropped and noted.

    A device runtime may fuse further than the graph passes (e.g. Pad into Conv) and then refuses to return
    those values, naming one in its error: drop the named ones and ask again.
    """
    dropped: list[str] = []
    while True:
        wanted = out_names + [n for n, _ in rows]
        try:
            got = dict(zip(wanted, sess.run(wanted, feeds)))
            break
        except Exception as exc:  # noqa: BLE001 - outputs must still be checked when layers cannot be
            named = {n for n, _ in rows if f"'{n}'" in str(exc) or f'"{n}"' in str(exc)}
            if not named:
                notes.append(f"per-layer values unavailable on {sess.device}: {exc}")
                return dict(zip(out_names, sess.run(out_names, feeds))), []
            dropped += sorted(named)
            rows = [r for r in rows if r[0] not in named]
    if dropped:
        notes.append(f"{len(dropped)} intermediate value(s) exist only in the cpu graph (the {sess.device} runtime "
                     f"fused them away) and were not compared, e.g. {dropped[0]!r}")
    return got, rows


def write_layer_csv(path: str, rows: Sequence[Metrics]) -> None:
    """One CSV row per compared layer (columns LAYER_COLUMNS)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LAYER_COLUMNS)
        for m in rows:
            writer.writerow([m.name, m.op, "x".join(map(str, m.shape)), f"{m.cosine:.8f}", f"{m.sqnr_db:.3f}",
                             f"{m.max_abs:.6g}", f"{m.max_rel:.6g}", int(m.passed)])


def validate(model_path: str, device: str = "cpu", inputs: Mapping[str, np.ndarray] | None = None,
             input_dir: str | None = None, thresholds: float | Mapping[str, float] | None = None,
             precision: str = "fp32", layers: bool = False, seed: int = 0,
             ranges: Mapping[str, tuple[float, float]] | None = None, *, reference: str | None = None,
             input_shapes: Mapping[str, Sequence[int]] | None = None, csv_path: str | None = None
             ) -> ValidationResult:
    """Compare clmace on device with onnxruntime on the same inputs; see ValidationResult."""
    from clmace.session import InferenceSession

    threshold = default_threshold(device, precision, thresholds)
    ref_path = reference or model_path
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    sess = InferenceSession(model_path, device=device, precision=precision, input_shapes=input_shapes)
    seconds["clmace_session"] = time.perf_counter() - t0
    if is_converted(ref_path):
        raise ModelError(f"{ref_path} is a converted clmace model; onnxruntime needs the ONNX file: "
                         "pass it with --reference model.onnx")
    proto = onnx.load(ref_path)
    feeds = make_inputs(sess.graph.inputs, inputs, input_dir, ranges, seed)
    notes = []
    if precision == "fp16" and device == "cpu":
        notes.append("fp16 applies to OpenCL storage only; the cpu runtime computed in fp32")
    out_names = sess.graph.output_names()
    layer_rows = _layer_names(proto, sess) if layers else []
    ort_model = expose_intermediates(proto, [n for n, _ in layer_rows],
                                     {k: v.dtype for k, v in sess.graph.values.items()}) if layers else proto
    t0 = time.perf_counter()
    ort = _ort_session(ort_model)
    ort_names = [o.name for o in ort.get_outputs()]
    ref = dict(zip(ort_names, ort.run(None, feeds)))
    seconds["onnxruntime"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if layers:
        got, layer_rows = _run_layers(sess, feeds, out_names, layer_rows, notes)
    else:
        got = dict(zip(out_names, sess.run(out_names, feeds)))
    seconds["clmace_run"] = time.perf_counter() - t0
    metrics = []
    for name in out_names:
        if name not in ref:
            raise ModelError(f"clmace output {name!r} is not an output of the reference {ref_path}; "
                             f"its outputs: {ort_names}")
        metrics.append(compare(name, got[name], ref[name], threshold))
    result = ValidationResult(model_path, ref_path, sess.device, precision, threshold,
                              {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.items()},
                              metrics, seconds=seconds, notes=notes)
    if layers:
        result.layers = [compare(name, got[name], ref[name], threshold, op) for name, op in layer_rows]
        result.first_divergent = next((m.name for m in result.layers if not m.passed), None)
        result.csv_path = csv_path or os.path.splitext(os.path.basename(model_path))[0] + "_layers.csv"
        write_layer_csv(result.csv_path, result.layers)
    return result
