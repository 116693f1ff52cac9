"""Small editing helpers shared by the graph passes."""

from __future__ import annotations

import numpy as np

from clmace.core.ir import Graph, Node


def replace_uses(graph: Graph, old: str, new: str) -> None:
    """Make every node input and graph output that reads old read new instead."""
    for node in graph.nodes:
        node.inputs = [new if name == old else name for name in node.inputs]
    for out in graph.outputs:
        if out.name == old:
            out.name = new


def is_graph_output(graph: Graph, name: str) -> bool:
    """True when name is one of the graph's outputs."""
    return name in graph.output_names()


def const(graph: Graph, name: str) -> np.ndarray | None:
    """The initializer called name, or None when name is not a constant."""
    return graph.initializers.get(name) if name else None


def sole_consumer(graph: Graph, name: str, consumers: dict[str, list[Node]]) -> Node | None:
    """The only node reading name, when exactly one does and name is not a graph output."""
    users = consumers.get(name, [])
    if len(users) != 1 or is_graph_output(graph, name):
        return None
    return users[0]


def add_initializer(graph: Graph, base: str, value: np.ndarray) -> str:
    """Store value under a fresh name derived from base; return that name."""
    name, i = base, 0
    while name in graph.initializers or name in graph.values:
        i += 1
        name = f"{base}_{i}"
    graph.initializers[name] = value
    return name


def remove_unused(graph: Graph) -> int:
    """Drop nodes whose outputs nobody reads, and initializers no node reads; return nodes removed."""
    removed = 0
    changed = True
    while changed:
        changed = False
        needed = set(graph.output_names())
        for node in graph.nodes:
            needed.update(n for n in node.inputs if n)
        kept = [n for n in graph.nodes if any(o in needed for o in n.outputs if o)]
        if len(kept) != len(graph.nodes):
            removed += len(graph.nodes) - len(kept)
            graph.nodes = kept
            changed = True
    needed = set(graph.output_names())
    for node in graph.nodes:
        needed.update(n for n in node.inputs if n)
    graph.initializers = {k: v for k, v in graph.initializers.items() if k in needed}
    return removed
