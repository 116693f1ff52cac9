"""Passes that remove work: Identity/Dropout removal and constant folding."""

from __future__ import annotations

import logging

import numpy as np

from clmace.core.errors import ClmaceError
from clmace.core.ir import Graph
from clmace.frontend.graph_edit import is_graph_output, replace_uses
from clmace.ops import REGISTRY
from clmace.ops.call import call_node, resolve

log = logging.getLogger("clmace.passes")

# Ops whose output is not a pure function of their inputs: never folded.
NON_DETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli"}
# Folding may grow the model (Expand, Tile, ConstantOfShape): above this many elements, keep the node
# unless its inputs were already at least as large.
FOLD_GROWTH_LIMIT = 1 << 20


def remove_identity(graph: Graph) -> int:
    """Remove Identity and inference-mode Dropout nodes by rewiring their readers."""
    removed = 0
    producers = graph.producers()
    graph_inputs = {v.name for v in graph.inputs}
    for node in list(graph.nodes):
        if node.op_type not in ("Identity", "Dropout"):
            continue
        if node.op_type == "Dropout" and (len(node.inputs) > 2 and node.inputs[2]
                                          or len([o for o in node.outputs if o]) > 1):
            continue  # training_mode given, or the mask is read: keep the real op
        src, dst = node.inputs[0], node.outputs[0]
        if is_graph_output(graph, dst):
            producer = producers.get(src)
            if producer is None or src in graph_inputs or is_graph_output(graph, src):
                continue  # the output must stay a distinct tensor
            producer.outputs = [dst if o == src else o for o in producer.outputs]
            replace_uses(graph, src, dst)
            producers[dst] = producer
        else:
            replace_uses(graph, dst, src)
        graph.nodes.remove(node)
        removed += 1
    return removed


def _static_shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    if name in graph.initializers:
        return tuple(graph.initializers[name].shape)
    info = graph.values.get(name)
    return tuple(info.shape) if info is not None and info.is_static() else None  # type: ignore[arg-type]


def _fold_shape_like(graph: Graph, node) -> list[np.ndarray] | None:
    """Shape and Size of a tensor whose shape is known statically, without its data."""
    shape = _static_shape(graph, node.inputs[0])
    if shape is None:
        return None
    if node.op_type == "Size":
        return [np.array(int(np.prod(shape)), dtype=np.int64)]
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return [np.array(shape[slice(start, end)], dtype=np.int64)]


def fold_constants(graph: Graph) -> int:
    """Evaluate nodes whose inputs are all constants (and Shape/Size of static shapes) at convert time."""
    folded = 0
    kept = []
    for node in graph.nodes:
        results = None
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
            results = _fold_shape_like(graph, node)
        elif (node.op_type not in NON_DETERMINISTIC and REGISTRY.has(node.op_type)
              and all(not name or name in graph.initializers for name in node.inputs)):
            args = [graph.initializers[name] if name else None for name in node.inputs]
            try:
                results = call_node(resolve(REGISTRY, node, graph.opset), node, args)
            except ClmaceError as exc:  # leave it for run time, where the error reaches the user
                log.debug("not folding %s: %s", node.name, exc)
            input_size = max([a.size for a in args if a is not None] or [0])
            if results and max(r.size for r in results) > max(FOLD_GROWTH_LIMIT, input_size):
                results = None
        if results is None:
            kept.append(node)
            continue
        for name, value in zip(node.outputs, results):
            if name:
                graph.initializers[name] = value
        folded += 1
    graph.nodes = kept
    return folded
