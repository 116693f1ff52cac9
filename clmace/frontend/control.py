"""Control-flow passes: an If whose condition is a constant is replaced by the branch it takes.

Conditions often become constants once shapes are known (exporters test ranks and sizes) or once the session
fixes a scalar control input (a sample rate); inlining the branch then leaves plain nodes that a backend can
run on its device, instead of a body run on the host.
"""

from __future__ import annotations

import numpy as np

from clmace.core.ir import Graph, Node, ValueInfo


def _rename(body: Graph, prefix: str, keep: set[str]) -> dict[str, str]:
    """New names for every value the body defines (its outer reads, `keep`, stay as they are)."""
    defined = set(body.initializers) | {o for n in body.nodes for o in n.outputs if o}
    return {name: f"{prefix}/{name}" for name in defined if name not in keep}


def _splice(graph: Graph, node: Node, body: Graph) -> list[Node]:
    """The body's nodes, renamed into the graph, ending in Identity nodes that write the If's outputs."""
    own = len(node.inputs) - len(node.attrs.get("captures", []))
    outer = dict(zip(node.attrs.get("captures", []), node.inputs[own:]))  # inner name -> outer name now
    names = _rename(body, node.name, set(outer))
    names.update(outer)

    def new(name: str) -> str:
        return names.get(name, name) if name else name

    for name, value in body.initializers.items():
        graph.initializers[new(name)] = value
    for name, info in body.values.items():
        if name in names and names[name] not in graph.values:
            graph.values[names[name]] = ValueInfo(names[name], info.dtype, info.shape)
    # A nested control-flow node keeps its `captures` (the names its own bodies read); only its inputs move.
    nodes = [Node(f"{node.name}/{n.name}", n.op_type, [new(i) for i in n.inputs], [new(o) for o in n.outputs],
                  dict(n.attrs), n.domain) for n in body.nodes]
    for out, result in zip(node.outputs, body.outputs):
        if out:
            nodes.append(Node(f"{node.name}/{out}", "Identity", [new(result.name)], [out], {}))
    return nodes


def inline_constant_if(graph: Graph) -> int:
    """Replace every If whose condition is a constant by the nodes of the branch it takes."""
    inlined = 0
    nodes: list[Node] = []
    for node in graph.nodes:
        cond = graph.initializers.get(node.inputs[0]) if node.op_type == "If" and node.inputs else None
        if cond is None or np.asarray(cond).size != 1:
            nodes.append(node)
            continue
        branch = node.attrs["then_branch" if bool(np.asarray(cond).reshape(())) else "else_branch"]
        nodes.extend(_splice(graph, node, branch))
        inlined += 1
    graph.nodes = nodes
    return inlined
