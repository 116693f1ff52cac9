"""ONNX -> optimised IR in one call (build_graph), and ONNX -> converted-model file (convert)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import onnx

from clmace.core.ir import Graph
from clmace.frontend import modelfile
from clmace.frontend.onnx_import import ModelSource, load_onnx, onnx_to_ir
from clmace.frontend.passes import optimize
from clmace.frontend.shapes import dry_run_shapes


def build_graph(model: ModelSource | onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None,
                run_passes: bool = True) -> tuple[Graph, dict[str, int]]:
    """Load model, convert it to IR and optimise it; return the graph and the pass report."""
    graph = onnx_to_ir(load_onnx(model), input_shapes)
    report = optimize(graph) if run_passes else {"nodes_before": len(graph.nodes),
                                                  "nodes_after": len(graph.nodes)}
    return graph, report


def convert(model: ModelSource, output: str | os.PathLike,
            input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, int]:
    """Convert an ONNX model to a clmace converted-model file; return the pass report.

    When the input shapes are static, every intermediate shape is recorded too (a dry run fills what ONNX
    shape inference could not), so that loading the file needs no shape work before planning.
    """
    graph, report = build_graph(model, input_shapes)
    missing = any(not (o in graph.values and graph.values[o].is_static())
                  for node in graph.nodes for o in node.outputs if o)
    if missing and all(v.is_static() for v in graph.inputs):
        dry_run_shapes(graph, {v.name: v.shape for v in graph.inputs})
    modelfile.save(graph, output, extra={"passes": report})
    return report
