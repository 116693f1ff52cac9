"""`clmace.convert`: ONNX -> optimised IR with complete static shapes -> converted-model file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from clmace.frontend import modelfile
from clmace.frontend.convert import build_graph
from clmace.frontend.onnx_import import ModelSource
from clmace.frontend.shapes import dry_run_shapes


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
