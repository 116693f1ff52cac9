"""ONNX -> optimised IR, in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from clmace.core.ir import Graph
from clmace.frontend.onnx_import import ModelSource, load_onnx, onnx_to_ir
from clmace.frontend.passes import optimize


def build_graph(model: ModelSource | onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None,
                run_passes: bool = True) -> tuple[Graph, dict[str, int]]:
    """Load model, convert it to IR and optimise it; return the graph and the pass report."""
    graph = onnx_to_ir(load_onnx(model), input_shapes)
    report = optimize(graph) if run_passes else {"nodes_before": len(graph.nodes),
                                                  "nodes_after": len(graph.nodes)}
    return graph, report
