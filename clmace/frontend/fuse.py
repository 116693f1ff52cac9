"""Fusion passes: BatchNormalization into Conv/ConvTranspose/Gemm, bias Add into them, activations into producers."""

from __future__ import annotations

import numpy as np

from clmace.core.ir import Graph, Node
from clmace.frontend.graph_edit import add_initializer, const, is_graph_output, sole_consumer
from clmace.ops.activation import activation_spec

# Producers that can absorb a following activation (their kernels apply it on the way out).
ACT_HOSTS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Producers whose weight and bias absorb a per-output-channel affine (BatchNormalization, a bias Add).
AFFINE_HOSTS = ("Conv", "ConvTranspose", "Gemm")


def _channel_scale(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """BatchNormalization as y = x * scale + shift per channel, when its parameters are constants."""
    params = [const(graph, name) for name in bn.inputs[1:5]]
    if any(p is None for p in params) or len([o for o in bn.outputs if o]) != 1:
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
    scale = gamma / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
    return scale, beta - mean * scale


def _fold_bn_into(graph: Graph, host: Node, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Rewrite host's weight and bias so that it computes BN(host(x)); False if the layout does not allow."""
    w = const(graph, host.inputs[1])
    if w is None or w.dtype.kind != "f":
        return False
    dtype = w.dtype
    if host.op_type == "Conv":
        if w.shape[0] != scale.size:
            return False
        new_w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        bias = const(graph, host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] else np.zeros(w.shape[0])
        if bias is None:
            return False
        new_b = bias * scale + shift
    elif host.op_type == "ConvTranspose":
        # w: [G*cin][cout/G][k...]; output channel g*cout/G + o scales w[g*cin:(g+1)*cin, o].
        groups = int(host.attrs.get("group", 1))
        per = w.shape[1]
        if w.ndim < 3 or per * groups != scale.size or w.shape[0] % groups:
            return False
        grouped = w.reshape(groups, w.shape[0] // groups, per, *w.shape[2:])
        new_w = (grouped * scale.reshape(groups, 1, per, *(1,) * (w.ndim - 2))).reshape(w.shape)
        bias = const(graph, host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] else np.zeros(scale.size)
        if bias is None:
            return False
        new_b = bias * scale + shift
    elif host.op_type == "Gemm":
        trans_b = host.attrs.get("transB", 0)
        n_axis = 0 if trans_b else 1
        if w.ndim != 2 or w.shape[n_axis] != scale.size:
            return False
        alpha, beta = host.attrs.get("alpha", 1.0), host.attrs.get("beta", 1.0)
        new_w = w * alpha * (scale[:, None] if trans_b else scale[None, :])
        c = const(graph, host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] else np.zeros(scale.size)
        if c is None:
            return False
        new_b = (beta * c) * scale + shift
        host.attrs.update(alpha=1.0, beta=1.0)
    else:
        return False
    host.inputs = host.inputs[:1] + [
        add_initializer(graph, f"{host.name}.weight_bn", new_w.astype(dtype)),
        add_initializer(graph, f"{host.name}.bias_bn", np.asarray(new_b, dtype=dtype)),
    ]
    return True


def fold_batchnorm(graph: Graph) -> int:
    """Fold inference BatchNormalization into the Conv, ConvTranspose or Gemm that feeds it."""
    folded = 0
    producers, consumers = graph.producers(), graph.consumers()
    for bn in [n for n in graph.nodes if n.op_type == "BatchNormalization"]:
        host = producers.get(bn.inputs[0])
        if host is None or host.op_type not in AFFINE_HOSTS:
            continue
        if sole_consumer(graph, bn.inputs[0], consumers) is not bn:
            continue
        if host.attrs.get("activation") or len(consumers.get(host.inputs[1], [])) != 1:
            continue
        params = _channel_scale(graph, bn)
        if params is None or not _fold_bn_into(graph, host, *params):
            continue
        host.outputs = [bn.outputs[0]]
        graph.nodes.remove(bn)
        folded += 1
    return folded


def _channel_bias(graph: Graph, host: Node, add: Node) -> np.ndarray | None:
    """The constant operand of add as a per-output-channel vector, if it is one."""
    other = add.inputs[1] if add.inputs[0] == host.outputs[0] else add.inputs[0]
    c = const(graph, other)
    out = graph.values.get(host.outputs[0])
    if c is None or out is None or out.shape is None or c.dtype.kind != "f":
        return None
    rank = len(out.shape)
    channel_first = host.op_type in ("Conv", "ConvTranspose")
    channels = out.shape[1] if channel_first else out.shape[-1]
    if not isinstance(channels, int) or c.size != channels or c.ndim > rank:
        return None
    axis = 1 if channel_first else rank - 1
    expected = [1] * rank
    expected[axis] = channels
    if list((1,) * (rank - c.ndim) + c.shape) != expected:
        return None
    return c.reshape(-1)


def fuse_bias(graph: Graph) -> int:
    """Fold `Add(host(x), per-channel constant)` into the bias of a Conv, ConvTranspose or Gemm."""
    fused = 0
    producers, consumers = graph.producers(), graph.consumers()
    for add in [n for n in graph.nodes if n.op_type == "Add"]:
        host = next((producers[i] for i in add.inputs if i in producers), None)
        if host is None or host.op_type not in AFFINE_HOSTS or host.attrs.get("activation"):
            continue
        if sole_consumer(graph, host.outputs[0], consumers) is not add:
            continue
        bias = _channel_bias(graph, host, add)
        if bias is None:
            continue
        old = const(graph, host.inputs[2]) if len(host.inputs) > 2 and host.inputs[2] else None
        if len(host.inputs) > 2 and host.inputs[2] and old is None:
            continue
        if host.op_type == "Gemm":
            old = None if old is None else old * host.attrs.get("beta", 1.0)
            host.attrs["beta"] = 1.0
        new = bias if old is None else old + bias
        host.inputs = host.inputs[:2] + [add_initializer(graph, f"{host.name}.bias", new.astype(bias.dtype))]
        host.outputs = [add.outputs[0]]
        graph.nodes.remove(add)
        fused += 1
    return fused


def _activation_of(graph: Graph, act: Node) -> tuple[str, tuple[float, ...]] | None:
    """The (name, params) of a fusable activation node, or None."""
    shape = graph.values[act.inputs[0]].shape if act.inputs and act.inputs[0] in graph.values else None
    return activation_spec(act.op_type, act.attrs, act.inputs, graph.opset, graph.initializers,
                           len(shape) if shape is not None else 1)


def _scalar(graph: Graph, name: str) -> float | None:
    value = const(graph, name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _near(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= 1e-6 * max(1.0, abs(want))


def _clip_bounds(graph: Graph, clip: Node) -> tuple[float | None, float | None]:
    if graph.opset < 11:
        return clip.attrs.get("min"), clip.attrs.get("max")
    names = list(clip.inputs) + ["", ""]
    return (_scalar(graph, names[1]) if names[1] else None), (_scalar(graph, names[2]) if names[2] else None)


def _hard_swish_parts(graph: Graph, out: Node, producers: dict[str, Node], consumers: dict[str, list[Node]]
                      ) -> tuple[str, Node, Node, Node] | None:
    """(x, add, clip, mul) when out computes x * Clip(x + 3, 0, 6) / 6 and nothing else reads the parts."""
    if out.op_type not in ("Div", "Mul") or len(out.inputs) != 2:
        return None
    k = _scalar(graph, out.inputs[1])
    if not (_near(k, 6.0) if out.op_type == "Div" else _near(k, 1 / 6)):
        return None
    mul = producers.get(out.inputs[0])
    if mul is None or mul.op_type != "Mul" or sole_consumer(graph, mul.outputs[0], consumers) is not out:
        return None
    for x, c in ((mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])):
        clip = producers.get(c)
        if clip is None or clip.op_type != "Clip" or sole_consumer(graph, c, consumers) is not mul:
            continue
        lo, hi = _clip_bounds(graph, clip)
        add = producers.get(clip.inputs[0])
        if not (_near(lo, 0.0) and _near(hi, 6.0)) or add is None or add.op_type != "Add":
            continue
        if sole_consumer(graph, add.outputs[0], consumers) is not clip or x not in add.inputs:
            continue
        three = add.inputs[1] if add.inputs[0] == x else add.inputs[0]
        if _near(_scalar(graph, three), 3.0):
            return x, add, clip, mul
    return None


def recognize_hard_swish(graph: Graph) -> int:
    """x * Clip(x + 3, 0, 6) / 6, as exporters spell HardSwish, -> x * HardSigmoid(x; 1/6, 0.5): the same
    function in two nodes instead of four, which fuse_activation then folds into a Conv or Gemm."""
    found = 0
    producers, consumers = graph.producers(), graph.consumers()
    for out in list(graph.nodes):
        parts = _hard_swish_parts(graph, out, producers, consumers)
        if parts is None:
            continue
        x, add, clip, mul = parts
        gate = Node(clip.name, "HardSigmoid", [x], list(clip.outputs), {"alpha": 1 / 6, "beta": 0.5})
        graph.nodes[graph.nodes.index(clip)] = gate
        out.op_type, out.inputs, out.attrs = "Mul", [x, clip.outputs[0]], {}
        graph.nodes.remove(add)
        graph.nodes.remove(mul)
        found += 1
        producers, consumers = graph.producers(), graph.consumers()
    return found


def _gate(graph: Graph, node: Node) -> str | None:
    """The activation x * node(x) is: Swish for Sigmoid, HardSwish for HardSigmoid(1/6, 0.5)."""
    if node.op_type == "Sigmoid":
        return "Swish"
    if node.op_type == "HardSigmoid" and _near(node.attrs.get("alpha"), 1 / 6) and _near(node.attrs.get("beta"),
                                                                                           0.5):
        return "HardSwish"
    return None


def _swish_tail(graph: Graph, x: str, consumers: dict[str, list[Node]]) -> tuple[Node, Node, str] | None:
    """Match x * Sigmoid(x) (or x * HardSigmoid(x) as HardSwish): (gate, mul, activation) when they are x's
    only readers."""
    users = consumers.get(x, [])
    if len(users) != 2 or is_graph_output(graph, x):
        return None
    sig = next((u for u in users if _gate(graph, u)), None)
    mul = next((u for u in users if u.op_type == "Mul"), None)
    if sig is None or mul is None or sorted(mul.inputs) != sorted([x, sig.outputs[0]]):
        return None
    if len(consumers.get(sig.outputs[0], [])) != 1 or is_graph_output(graph, sig.outputs[0]):
        return None
    return sig, mul, _gate(graph, sig)  # type: ignore[return-value]


def fuse_activation(graph: Graph) -> int:
    """Fuse an activation (Relu, Clip, HardSwish, HardSigmoid, Sigmoid, x*sigmoid(x), LeakyRelu, Tanh)."""
    fused = 0
    consumers = graph.consumers()
    for host in [n for n in graph.nodes if n.op_type in ACT_HOSTS]:
        if host.attrs.get("activation") or len(host.outputs) != 1:
            continue
        out = host.outputs[0]
        swish = _swish_tail(graph, out, consumers)
        if swish is not None:
            sig, mul, name = swish
            host.attrs.update(activation=name, activation_params=())
            host.outputs = [mul.outputs[0]]
            graph.nodes.remove(sig)
            graph.nodes.remove(mul)
            fused += 1
            consumers = graph.consumers()
            continue
        act = sole_consumer(graph, out, consumers)
        spec = _activation_of(graph, act) if act is not None and act.inputs[0] == out else None
        if spec is None:
            continue
        host.attrs.update(activation=spec[0], activation_params=spec[1])
        host.outputs = [act.outputs[0]]
        graph.nodes.remove(act)
        fused += 1
        consumers = graph.consumers()
    return fused
