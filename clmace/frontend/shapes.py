"""Static shapes for a graph whose input shapes are known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clmace.core.ir import Graph, ValueInfo
from clmace.ops.call import BodyShapes, GraphEvaluator


def dry_run_shapes(graph: Graph, input_shapes: Mapping[str, Sequence[int]],
                   feeds: Mapping[str, np.ndarray] | None = None) -> None:
    """Fill graph.values with concrete shapes by running the graph once on the host, on `feeds` when given
    (a graph whose shapes depend on input values: control flow), else on zero inputs.

    Used when no ONNX model is at hand (a converted file met a new input shape); ONNX's own shape
    inference is preferred when the model is available because it costs no arithmetic.
    """
    if feeds is None:
        feeds = {v.name: np.zeros(tuple(input_shapes[v.name]), dtype=v.dtype) for v in graph.inputs}

    def record(_node: str, names: list[str], arrays: list[np.ndarray]) -> None:
        for name, arr in zip(names, arrays):
            if name:
                graph.values[name] = ValueInfo(name, arr.dtype, tuple(arr.shape))

    for v in graph.inputs:
        graph.values[v.name] = ValueInfo(v.name, v.dtype, tuple(int(d) for d in input_shapes[v.name]))
    bodies = BodyShapes()  # control-flow bodies: the shapes their values take, for backends that plan them
    GraphEvaluator(graph, body_runner=bodies.run_body).run(feeds, hook=record)
    bodies.commit()
    for out in graph.outputs:
        out.shape = graph.values[out.name].shape
    for inp in graph.inputs:
        inp.shape = graph.values[inp.name].shape
