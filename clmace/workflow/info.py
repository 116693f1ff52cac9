"""What `clmace info` reports about a model: tensors, op histogram, parameters, FLOPs, pass effect."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from clmace.core.errors import ModelError
from clmace.core.ir import Graph
from clmace.frontend import modelfile
from clmace.frontend.convert import build_graph
from clmace.frontend.shapes import dry_run_shapes
from clmace.workflow.analysis import total_flops


def _tensors(values) -> list[dict]:
    return [{"name": v.name, "dtype": v.dtype.name, "shape": list(v.shape or [])} for v in values]


def _summary(graph: Graph) -> dict:
    return {"nodes": len(graph.nodes), "ops": graph.op_histogram(), "flops": total_flops(graph)}


def model_info(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict:
    """Describe a .onnx or converted-model file; for ONNX, also the graph before the passes."""
    if not os.path.isfile(path):
        raise ModelError(f"model file not found: {path}")
    with open(path, "rb") as f:
        is_converted = modelfile.is_model_file(f.read(8))
    info: dict = {"path": path, "size_bytes": os.path.getsize(path)}
    if is_converted:
        graph, extra = modelfile.load(path)
        info["format"] = "clmace converted model"
        info["passes"] = extra.get("passes", {})
    else:
        original, _ = build_graph(path, input_shapes, run_passes=False)
        graph, report = build_graph(path, input_shapes)
        info["format"] = "onnx"
        info["original"] = _summary(original)
        info["passes"] = report
    if total_flops(graph) is None and all(v.is_static() for v in graph.inputs):
        # ONNX shape inference stops at data-dependent shapes (e.g. a computed Pad); a dry run does not
        dry_run_shapes(graph, {v.name: v.shape for v in graph.inputs})
    info.update(opset=graph.opset, inputs=_tensors(graph.inputs), outputs=_tensors(graph.outputs),
                parameters=graph.parameter_count(), optimized=_summary(graph))
    return info


def _fmt_tensor(t: dict) -> str:
    return f"  {t['name']}: {t['dtype']} {t['shape']}"


def render_info(info: dict) -> str:
    """Human-readable text for model_info's result."""
    opt = info["optimized"]
    lines = [f"{info['path']} ({info['format']}, opset {info['opset']}, {info['size_bytes']:,} bytes)", "inputs:"]
    lines += [_fmt_tensor(t) for t in info["inputs"]] + ["outputs:"] + [_fmt_tensor(t) for t in info["outputs"]]
    lines.append(f"parameters: {info['parameters']:,}")
    flops = opt["flops"]
    lines.append("FLOPs: " + (f"{flops:,} ({flops / 1e9:.3f} GFLOP)" if flops is not None
                              else "unknown (dynamic shapes; pass --input-shape)"))
    passes = info.get("passes") or {}
    if passes:
        lines.append(f"nodes: {passes.get('nodes_before')} before passes -> {passes.get('nodes_after')} after")
        lines.append("passes: " + ", ".join(f"{k} {v}" for k, v in passes.items() if not k.startswith("nodes")))
    lines.append("ops after passes:")
    lines += [f"  {op:<28} {n}" for op, n in opt["ops"].items()]
    return "\n".join(lines)
