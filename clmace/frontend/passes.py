"""The graph optimisation pipeline: each pass keeps the graph's outputs equal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from clmace.core.ir import Graph
from clmace.frontend.control import hoist_loop_invariants, inline_constant_if
from clmace.frontend.fold import fold_constants, remove_identity
from clmace.frontend.fuse import fold_batchnorm, fuse_activation, fuse_bias, recognize_hard_swish
from clmace.frontend.graph_edit import remove_unused

log = logging.getLogger("clmace.passes")

Pass = Callable[[Graph], int]
MAX_ROUNDS = 8  # pipeline rounds while branches are being inlined

# Order matters: folding first exposes constant BN/bias operands; bias, BN, bias again (a bias Add may stand
# before or after the BN: Paddle exports ConvTranspose -> Add -> BN), then activation, because an activation
# can only be fused after the affine ops between it and its host are gone.
PIPELINE: list[tuple[str, Pass]] = [
    ("remove_identity", remove_identity),
    ("fold_constants", fold_constants),
    ("inline_constant_if", inline_constant_if),
    ("hoist_loop_invariants", hoist_loop_invariants),
    ("fuse_bias", fuse_bias),
    ("fold_batchnorm", fold_batchnorm),
    ("fuse_bias_after_bn", fuse_bias),
    ("recognize_hard_swish", recognize_hard_swish),
    ("fuse_activation", fuse_activation),
    ("remove_unused", remove_unused),
]


def optimize_bodies(graph: Graph, skip: tuple[str, ...] = ()) -> None:
    """Optimise every control-flow body first, then refresh what each node captures from outer scopes (a
    body whose Identity went away may now read an outer value directly)."""
    for node in graph.nodes:
        bodies = [v for v in node.attrs.values() if isinstance(v, Graph)]
        if not bodies:
            continue
        for body in bodies:
            optimize(body, skip)
        old = list(node.attrs.get("captures", []))
        own = node.inputs[: len(node.inputs) - len(old)] if old else list(node.inputs)
        # Inner name -> the outer value it reads now (an inlined enclosing branch renamed its values).
        outer = dict(zip(old, node.inputs[len(own):]))
        captures = sorted({c for body in bodies for c in body.free_names()})
        node.attrs["captures"] = captures
        node.inputs = own + [outer.get(c, c) for c in captures]


def optimize(graph: Graph, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Run the pipeline in place (control-flow bodies first); return {pass name: changes} plus node counts
    before and after."""
    optimize_bodies(graph, skip)
    report = {"nodes_before": len(graph.nodes)}
    for _ in range(MAX_ROUNDS):  # an inlined branch may hold more constant conditions: go again
        _run_pipeline(graph, skip, report)
        if not report.get("inline_constant_if_round"):
            break
    report.pop("inline_constant_if_round", None)
    report["nodes_after"] = len(graph.nodes)
    return report


def _run_pipeline(graph: Graph, skip: tuple[str, ...], report: dict[str, int]) -> None:
    for name, fn in PIPELINE:
        if name in skip:
            continue
        changes = fn(graph)
        report[name] = report.get(name, 0) + changes
        if name == "inline_constant_if":
            report["inline_constant_if_round"] = changes
        log.debug("pass %s: %d changes", name, changes)
