"""Control-flow passes: an If whose condition is a constant is replaced by the branch it takes, and the work
of a Loop or Scan body that does not change between iterations moves out of the body.

Conditions often become constants once shapes are known (exporters test ranks and sizes) or once the session
fixes a scalar control input (a sample rate); inlining the branch then leaves plain nodes that a backend can
run on its device, instead of a body run on the host. Exported decoders recompute per step what depends only
on the encoder's output (Paddle's attention projects and transposes the whole feature map every step):
hoisted, it is computed once.
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


# Ops whose result may differ between two calls on the same inputs: never hoisted.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}


def _fresh(graph: Graph, base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _passed_through(node: Node, opset: int) -> dict[str, str]:
    """{body input: the loop's own input} of the loop-carried values (Loop) or states (Scan, opset 9+) that the
    body returns unchanged: the same value on every iteration (Paddle carries weights through its loops)."""
    body: Graph = node.attrs["body"]
    own = node.inputs[: len(node.inputs) - len(node.attrs.get("captures", []))]
    if node.op_type == "Loop":
        pairs = zip(body.inputs[2:], body.outputs[1:], own[2:])
    elif opset >= 9:
        n = len(own) - int(node.attrs["num_scan_inputs"])
        pairs = zip(body.inputs[:n], body.outputs[:n], own[:n])
    else:
        return {}
    return {i.name: outer for i, o, outer in pairs if i.name == o.name and outer}


def _invariant(body: Graph, fixed: set[str]) -> list[Node]:
    """The body's nodes that read only outer values, constants, the `fixed` body inputs and other such nodes
    (body outputs excepted: the step still has to produce them)."""
    varying = {v.name for v in body.inputs} - fixed
    returned = set(body.output_names())
    found = []
    for node in body.nodes:
        reads = [i for i in node.inputs if i]
        if (node.op_type in _NONDETERMINISTIC or any(isinstance(v, Graph) for v in node.attrs.values())
                or any(i in varying for i in reads) or any(o in returned for o in node.outputs)
                or not reads):
            varying.update(o for o in node.outputs if o)
            continue
        found.append(node)
    return found


def hoist_loop_invariants(graph: Graph) -> int:
    """Move every node of a Loop or Scan body that computes the same value on every iteration in front of
    the loop; the body then reads its result from the outer scope. Returns the number of nodes moved."""
    moved = 0
    taken = set(graph.initializers) | {v.name for v in graph.inputs} | set(graph.values)
    taken |= {o for n in graph.nodes for o in n.outputs if o}
    nodes: list[Node] = []
    for node in graph.nodes:
        body = node.attrs.get("body") if node.op_type in ("Loop", "Scan") else None
        through = _passed_through(node, graph.opset) if isinstance(body, Graph) else {}
        hoisted = _invariant(body, set(through)) if isinstance(body, Graph) else []
        if not hoisted:
            nodes.append(node)
            continue
        captures = list(node.attrs.get("captures", []))
        own = node.inputs[: len(node.inputs) - len(captures)]
        outer = dict(zip(captures, node.inputs[len(own):]))  # inner name -> outer name
        outer.update(through)
        for inner in hoisted:
            inputs = []
            for name in inner.inputs:
                if name and name not in outer and name in body.initializers:
                    outer[name] = _fresh(graph, f"{node.name}/{name}", taken)
                    graph.initializers[outer[name]] = body.initializers[name]
                inputs.append(outer.get(name, name) if name else name)
            outputs = []
            for name in inner.outputs:
                if name:
                    outer[name] = _fresh(graph, f"{node.name}/{name}", taken)
                    if name in body.values:
                        info = body.values[name]
                        graph.values[outer[name]] = ValueInfo(outer[name], info.dtype, info.shape)
                outputs.append(outer.get(name, name) if name else name)
            nodes.append(Node(f"{node.name}/{inner.name}", inner.op_type, inputs, outputs, dict(inner.attrs),
                              inner.domain))
        gone = {id(n) for n in hoisted}
        body.nodes = [n for n in body.nodes if id(n) not in gone]
        used = {i for n in body.nodes for i in n.inputs if i} | set(body.output_names())
        for name in [k for k in body.initializers if k not in used]:
            del body.initializers[name]
        captures = sorted(body.free_names())
        node.attrs["captures"] = captures
        node.inputs = own + [outer.get(c, c) for c in captures]
        nodes.append(node)
        moved += len(hoisted)
    graph.nodes = nodes
    return moved
