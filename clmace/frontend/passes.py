"""The graph optimisation pipeline: each pass keeps the graph's outputs equal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from clmace.core.ir import Graph
from clmace.frontend.fold import fold_constants, remove_identity
from clmace.frontend.fuse import fold_batchnorm, fuse_activation, fuse_bias
from clmace.frontend.graph_edit import remove_unused

log = logging.getLogger("clmace.passes")

Pass = Callable[[Graph], int]

# Order matters: folding first exposes constant BN/bias operands; BN before bias before activation,
# because an activation can only be fused after the affine ops between it and its host are gone.
PIPELINE: list[tuple[str, Pass]] = [
    ("remove_identity", remove_identity),
    ("fold_constants", fold_constants),
    ("fold_batchnorm", fold_batchnorm),
    ("fuse_bias", fuse_bias),
    ("fuse_activation", fuse_activation),
    ("remove_unused", remove_unused),
]


def optimize(graph: Graph, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Run the pipeline in place; return {pass name: changes} plus node counts before and after."""
    report = {"nodes_before": len(graph.nodes)}
    for name, fn in PIPELINE:
        if name in skip:
            continue
        report[name] = fn(graph)
        log.debug("pass %s: %d changes", name, report[name])
    report["nodes_after"] = len(graph.nodes)
    return report
