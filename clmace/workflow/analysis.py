"""Static cost figures of a graph: FLOPs per node, from the shapes recorded in the IR."""

from __future__ import annotations

import math

from clmace.core.ir import Graph, Node


def _shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    if name in graph.initializers:
        return tuple(graph.initializers[name].shape)
    info = graph.values.get(name)
    return tuple(info.shape) if info is not None and info.is_static() else None  # type: ignore[arg-type]


def node_flops(graph: Graph, node: Node) -> int | None:
    """Floating-point operations of one node (multiply-add = 2), None when shapes are unknown."""
    out = _shape(graph, node.outputs[0]) if node.outputs and node.outputs[0] else None
    if out is None:
        return None
    if node.op_type in ("Conv", "ConvTranspose"):
        w = _shape(graph, node.inputs[1])
        if w is None:
            return None
        x = _shape(graph, node.inputs[0])
        if node.op_type == "Conv":
            return 2 * math.prod(out) * math.prod(w[1:])
        return 2 * math.prod(x or out) * math.prod(w[1:])
    if node.op_type in ("Gemm", "MatMul"):
        a = _shape(graph, node.inputs[0])
        if a is None:
            return None
        k = a[0] if node.op_type == "Gemm" and node.attrs.get("transA") else a[-1]
        return 2 * math.prod(out) * k
    return math.prod(out)  # element-wise and data movement: one op per output element


def total_flops(graph: Graph) -> int | None:
    """Sum of node_flops over the graph, None when any shape is unknown."""
    total = 0
    for node in graph.nodes:
        f = node_flops(graph, node)
        if f is None:
            return None
        total += f
    return total
