"""Plan-level fusions the OpenCL kernels can absorb: Pad->Conv, Conv->Add(->act), MatMul->Add(bias)(->act), and
chains of element-wise ops of one shape, which become one generated kernel (an ElementwiseChain node).

The decisions are the backend's own data (an Epilogue per node), never IR node attributes: a fused node that
ends up on the host runs its NumPy op and then the epilogue (epilogue.apply), so the IR stays plain ONNX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clmace.backends.opencl import expr
from clmace.core.ir import Graph, Node
from clmace.ops.activation import activation_spec as fused_activation

Activation = tuple[str, tuple[float, ...]]
# The backend's own node: element-wise nodes computed by one generated kernel (attrs["members"], in order).
CHAIN_OP, CHAIN_DOMAIN = "ElementwiseChain", "clmace.opencl"
MAX_CHAIN_INPUTS = 8  # buffers the chain kernel takes
MAX_CHAIN_NODES = 32


@dataclass(frozen=True)
class Epilogue:
    """What the OpenCL plan fused onto a node's result: add a residual value or a constant bias, then an
    activation. The node's own outputs were replaced by those of the last fused node."""

    residual: str = ""  # a value added to the result (Conv + Add)
    bias: str = ""  # a constant row vector added to the result (MatMul + Add)
    activation: Activation | None = None  # applied last

    def apply(self, y: np.ndarray, residual: np.ndarray | None, bias: np.ndarray | None) -> np.ndarray:
        """The epilogue in NumPy, for a fused node that runs on the host."""
        from clmace.ops.activation import apply_activation

        if residual is not None:
            y = y + residual
        if bias is not None:
            y = y + bias
        if self.activation is not None:
            y = apply_activation(y, *self.activation)
        return y

    def label(self) -> str:
        """'+Add+Relu' style suffix for profiles."""
        return ("+Add" if self.residual or self.bias else "") + (f"+{self.activation[0]}" if self.activation else "")


def copy_nodes(graph: Graph) -> list[Node]:
    """Copies of the graph's nodes that fusion may edit without touching the graph."""
    return [dataclasses.replace(n, inputs=list(n.inputs), outputs=list(n.outputs), attrs=dict(n.attrs))
            for n in graph.nodes]


def activation_spec(graph: Graph, node: Node) -> Activation | None:
    """(name, params) when node is an activation the kernels apply on the way out."""
    shape = _shape(graph, node.inputs[0]) if node.inputs else None
    return fused_activation(node.op_type, node.attrs, node.inputs, graph.opset, graph.initializers,
                            len(shape) if shape is not None else 1)


class _Index:
    """Producers, consumers and positions of a node list, rebuilt after each rewrite."""

    def __init__(self, graph: Graph, nodes: list[Node]) -> None:
        self.graph = graph
        self.pos = {id(n): i for i, n in enumerate(nodes)}
        self.producer = {o: n for n in nodes for o in n.outputs if o}
        self.users: dict[str, list[Node]] = {}
        for n in nodes:
            for name in dict.fromkeys(i for i in n.inputs if i):
                self.users.setdefault(name, []).append(n)
        self.outputs = set(graph.output_names())

    def sole_user(self, name: str) -> Node | None:
        users = self.users.get(name, [])
        if len(users) != 1 or name in self.outputs:
            return None
        return users[0]


def _shape(graph: Graph, name: str) -> tuple | None:
    if name in graph.initializers:
        return tuple(graph.initializers[name].shape)
    info = graph.values.get(name)
    return tuple(info.shape) if info is not None and info.shape is not None else None


def _is_conv2d(graph: Graph, node: Node) -> bool:
    shape = _shape(graph, node.outputs[0]) if node.outputs else None
    return (node.op_type == "Conv" and shape is not None and len(shape) == 4
            and graph.values[node.outputs[0]].dtype in (np.float32, np.float16))


def fuse_pad_conv(graph: Graph, nodes: list[Node], fused: dict[str, str]) -> None:
    """Fold a zero constant Pad on the spatial axes into the Conv that alone reads it."""
    idx = _Index(graph, nodes)
    for pad in [n for n in nodes if n.op_type == "Pad"]:
        conv = idx.sole_user(pad.outputs[0])
        if conv is None or not _is_conv2d(graph, conv) or conv.inputs[0] != pad.outputs[0]:
            continue
        if pad.attrs.get("mode", "constant") != "constant" or conv.attrs.get("auto_pad", "NOTSET") != "NOTSET":
            continue
        consts = [graph.initializers.get(name) if name else None for name in pad.inputs[1:]]
        if len(pad.inputs) > 1 and pad.inputs[1] and consts[0] is None:
            continue
        widths = [int(v) for v in (consts[0] if len(pad.inputs) > 1 and pad.inputs[1] else pad.attrs.get("pads", []))]
        value = consts[1] if len(consts) > 1 and consts[1] is not None else pad.attrs.get("value", 0.0)
        if len(pad.inputs) > 2 and pad.inputs[2] and consts[1] is None or np.any(np.asarray(value) != 0):
            continue
        if len(pad.inputs) > 3 and pad.inputs[3] or len(widths) != 8 or any(w < 0 for w in widths):
            continue
        if widths[0] or widths[1] or widths[4] or widths[5]:
            continue  # pads batch or channels
        old = [int(p) for p in conv.attrs.get("pads", [0, 0, 0, 0])]
        conv.attrs["pads"] = [old[0] + widths[2], old[1] + widths[3], old[2] + widths[6], old[3] + widths[7]]
        conv.inputs[0] = pad.inputs[0]
        nodes.remove(pad)
        fused[pad.name] = conv.name
        idx = _Index(graph, nodes)


def fuse_residual(graph: Graph, nodes: list[Node], fused: dict[str, str],
                  epilogues: dict[str, Epilogue]) -> None:
    """Let a Conv add the other operand of the Add that alone reads it (and apply a following activation)."""
    idx = _Index(graph, nodes)
    for add in [n for n in nodes if n.op_type == "Add"]:
        out_shape = _shape(graph, add.outputs[0])
        for mine, other in ((0, 1), (1, 0)):
            conv = idx.producer.get(add.inputs[mine])
            if conv is None or not _is_conv2d(graph, conv) or idx.sole_user(conv.outputs[0]) is not add:
                continue
            res = add.inputs[other]
            if _shape(graph, res) != out_shape or res == add.inputs[mine] or conv.name in epilogues:
                continue
            if graph.values.get(res) is None or graph.values[res].dtype != graph.values[add.outputs[0]].dtype:
                continue
            made = idx.producer.get(res)
            if made is not None and idx.pos[id(made)] > idx.pos[id(conv)]:
                continue  # computed after the conv runs
            epilogues[conv.name] = Epilogue(residual=res)
            conv.outputs = list(add.outputs)
            nodes.remove(add)
            fused[add.name] = conv.name
            idx = _Index(graph, nodes)
            spec, idx = _absorb_activation(graph, nodes, fused, conv, idx)
            if spec is not None:
                epilogues[conv.name] = Epilogue(residual=res, activation=spec)
            break


def _absorb_activation(graph: Graph, nodes: list[Node], fused: dict[str, str], host: Node, idx: _Index
                       ) -> tuple[Activation | None, _Index]:
    """Move the activation that alone reads host's result into host (which takes over its outputs): its
    (name, params) and the new index, or None and the old index when there is none."""
    act = idx.sole_user(host.outputs[0])
    spec = activation_spec(graph, act) if act is not None and act.inputs[0] == host.outputs[0] else None
    if spec is None or graph.values[act.outputs[0]].dtype != graph.values[host.outputs[0]].dtype:
        return None, idx
    host.outputs = list(act.outputs)
    nodes.remove(act)
    fused[act.name] = host.name
    return spec, _Index(graph, nodes)


def fuse_second_activation(graph: Graph, nodes: list[Node], fused: dict[str, str],
                           epilogues: dict[str, Epilogue]) -> None:
    """Let a Conv apply the activation that alone reads it after its own (Conv+LeakyRelu, then Max(x, c)),
    as the epilogue's: one launch, not a Conv and an element-wise pass."""
    idx = _Index(graph, nodes)
    for conv in [n for n in nodes if _is_conv2d(graph, n) and n.name not in epilogues]:
        spec, idx = _absorb_activation(graph, nodes, fused, conv, idx)
        if spec is not None:
            epilogues[conv.name] = Epilogue(activation=spec)


def fuse_matmul_bias(graph: Graph, nodes: list[Node], fused: dict[str, str],
                     epilogues: dict[str, Epilogue]) -> None:
    """MatMul by a constant 2-D matrix, then Add of a constant row vector (then an activation): one launch."""
    idx = _Index(graph, nodes)
    for mm in [n for n in nodes if n.op_type == "MatMul"]:
        b = graph.initializers.get(mm.inputs[1])
        if b is None or b.ndim != 2 or mm.attrs.get("activation") or b.dtype.kind != "f":
            continue
        add = idx.sole_user(mm.outputs[0])
        if add is None or add.op_type != "Add":
            continue
        other = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
        bias = graph.initializers.get(other)
        if bias is None or bias.size != b.shape[1] or (bias.ndim and bias.shape[-1] != b.shape[1]):
            continue
        if _shape(graph, add.outputs[0]) != _shape(graph, mm.outputs[0]) or bias.dtype != b.dtype:
            continue
        epilogues[mm.name] = Epilogue(bias=other)
        mm.outputs = list(add.outputs)
        nodes.remove(add)
        fused[add.name] = mm.name
        idx = _Index(graph, nodes)
        spec, idx = _absorb_activation(graph, nodes, fused, mm, idx)
        if spec is not None:
            epilogues[mm.name] = Epilogue(bias=other, activation=spec)


def _chain_from(graph: Graph, idx: _Index, last: Node, taken: set[int]) -> list[Node]:
    """The element-wise nodes that only feed `last` (through each other), of its output's shape and type."""
    shape = _shape(graph, last.outputs[0])
    group = [last]
    grew = True
    while grew and len(group) < MAX_CHAIN_NODES:
        grew = False
        members = {id(n) for n in group}
        for node in list(group):
            for name in expr.operands(graph, node):
                made = idx.producer.get(name)
                if made is None or id(made) in members or id(made) in taken or not _chainable(graph, made, shape):
                    continue
                if name in idx.outputs or any(id(u) not in members for u in idx.users.get(name, [])):
                    continue  # read outside the chain: it needs its own storage
                group.append(made)
                members.add(id(made))
                grew = True
    outside = {i for n in group for i in expr.operands(graph, n)} - {n.outputs[0] for n in group}
    if len(outside) > MAX_CHAIN_INPUTS:
        return [last]
    return sorted(group, key=lambda n: idx.pos[id(n)])


def _chainable(graph: Graph, node: Node, shape: tuple | None) -> bool:
    out = node.outputs[0] if node.outputs else ""
    info = graph.values.get(out)
    return (shape is not None and expr.supported(graph, node) and info is not None and info.dtype == np.float32
            and _shape(graph, out) == shape
            and all(graph.values[i].dtype == np.float32 if i in graph.values else
                    graph.initializers[i].dtype == np.float32 for i in expr.operands(graph, node)))


def fuse_chains(graph: Graph, nodes: list[Node], fused: dict[str, str]) -> None:
    """Replace each chain of two or more element-wise float ops of one shape, whose intermediates nothing else
    reads, by one ElementwiseChain node (one launch, no intermediate tensors)."""
    idx = _Index(graph, nodes)
    taken: set[int] = set()
    chains: list[tuple[Node, list[Node]]] = []
    for last in reversed(nodes):
        if id(last) in taken or not _chainable(graph, last, _shape(graph, last.outputs[0]) if last.outputs else None):
            continue
        group = _chain_from(graph, idx, last, taken)
        if len(group) < 2:
            continue
        taken.update(id(n) for n in group)
        chains.append((last, group))
    for last, group in chains:
        outputs = {n.outputs[0] for n in group}
        inputs = list(dict.fromkeys(i for n in group for i in expr.operands(graph, n) if i not in outputs))
        chain = Node(last.name, CHAIN_OP, inputs, list(last.outputs),
                     {"members": group, "ops": "+".join(n.op_type for n in group)}, CHAIN_DOMAIN)
        nodes[nodes.index(last)] = chain
        for node in group:
            if node is not last:
                nodes.remove(node)
                fused[node.name] = last.name


def chain_host_fn(graph: Graph, chain: Node) -> Callable[..., np.ndarray]:
    """The chain computed by its members' NumPy ops (when its kernel cannot be built)."""
    from clmace.ops import REGISTRY
    from clmace.ops.call import call_node, resolve

    members = chain.attrs["members"]
    fns = [resolve(REGISTRY, m, graph.opset) for m in members]

    def run(*args: np.ndarray, **_attrs: object) -> np.ndarray:
        env = {**graph.initializers, **dict(zip(chain.inputs, args))}
        for member, fn in zip(members, fns):
            env[member.outputs[0]] = call_node(fn, member, [env[i] if i else None for i in member.inputs])[0]
        return env[chain.outputs[0]]

    return run


def fuse_for_opencl(graph: Graph) -> tuple[list[Node], dict[str, str], dict[str, Epilogue]]:
    """Edited copies of the graph's nodes, {fused-away node: node that now does its work}, and the epilogue
    each node that absorbed others must apply."""
    nodes = copy_nodes(graph)
    fused: dict[str, str] = {}
    epilogues: dict[str, Epilogue] = {}
    fuse_pad_conv(graph, nodes, fused)
    fuse_residual(graph, nodes, fused, epilogues)
    fuse_second_activation(graph, nodes, fused, epilogues)
    fuse_matmul_bias(graph, nodes, fused, epilogues)
    fuse_chains(graph, nodes, fused)
    return nodes, fused, epilogues
