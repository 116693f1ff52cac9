"""OpenCL C expressions of element-wise ops, for the generated chain kernels (plan/fusion.py groups the
nodes, lower/chain.py writes the kernel body). Each op is a template over its operands' expressions; attributes
and constant scalar operands become literals. The expressions contain no spaces: they travel as a -D option."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from clmace.core.ir import Graph, Node

Render = Callable[[Sequence[str], dict], str]


def literal(value: float) -> str:
    """A float literal for OpenCL C (inf and nan by name)."""
    v = float(np.float32(value))
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(v)
    return f"({text}f)" if v < 0 else f"{text}f"


def _a(attrs: dict, name: str, default: float) -> str:
    value = attrs.get(name)
    return literal(default if value is None else value)


def _gelu(x: Sequence[str], attrs: dict) -> str:
    if attrs.get("approximate", "none") == "tanh":
        return f"(0.5f*{x[0]}*(1.0f+TANH(0.7978845608f*({x[0]}+0.044715f*{x[0]}*{x[0]}*{x[0]}))))"
    return f"(0.5f*{x[0]}*(1.0f+erf_f({x[0]}*0.70710678118654752f)))"


def _pow(x: Sequence[str], attrs: dict) -> str:
    exponent = {"2.0f": f"({x[0]}*{x[0]})", "1.0f": x[0], "0.5f": f"sqrt({x[0]})", "3.0f": f"({x[0]}*{x[0]}*{x[0]})"}
    return exponent.get(x[1], f"pow({x[0]},{x[1]})")


UNARY: dict[str, Render] = {
    "Relu": lambda x, a: f"({x[0]}>0.0f?{x[0]}:0.0f)",
    "Sigmoid": lambda x, a: f"(1.0f/(1.0f+EXP(-{x[0]})))",
    "Tanh": lambda x, a: f"TANH({x[0]})",
    "Exp": lambda x, a: f"EXP({x[0]})",
    "Log": lambda x, a: f"log({x[0]})",
    "Sqrt": lambda x, a: f"sqrt({x[0]})",
    "Erf": lambda x, a: f"erf_f({x[0]})",
    "Neg": lambda x, a: f"(-{x[0]})",
    "Abs": lambda x, a: f"fabs({x[0]})",
    "Reciprocal": lambda x, a: f"(1.0f/{x[0]})",
    "Floor": lambda x, a: f"floor({x[0]})",
    "Ceil": lambda x, a: f"ceil({x[0]})",
    "Sin": lambda x, a: f"sin({x[0]})",
    "Cos": lambda x, a: f"cos({x[0]})",
    "Softplus": lambda x, a: f"({x[0]}>20.0f?{x[0]}:log1p(EXP({x[0]})))",
    "Softsign": lambda x, a: f"({x[0]}/(1.0f+fabs({x[0]})))",
    "Gelu": _gelu,
    "HardSigmoid": lambda x, a: f"VCLAMP({_a(a, 'alpha', 0.2)}*{x[0]}+{_a(a, 'beta', 0.5)},0.0f,1.0f)",
    "HardSwish": lambda x, a: f"({x[0]}*VCLAMP({x[0]}*(1.0f/6.0f)+0.5f,0.0f,1.0f))",
    "LeakyRelu": lambda x, a: f"({x[0]}>=0.0f?{x[0]}:{x[0]}*{_a(a, 'alpha', 0.01)})",
    "Elu": lambda x, a: f"({x[0]}>=0.0f?{x[0]}:{_a(a, 'alpha', 1.0)}*(EXP({x[0]})-1.0f))",
    "Swish": lambda x, a: f"({x[0]}/(1.0f+EXP(-{_a(a, 'alpha', 1.0)}*{x[0]})))",
}
BINARY: dict[str, Render] = {
    "Add": lambda x, a: f"({x[0]}+{x[1]})",
    "Sub": lambda x, a: f"({x[0]}-{x[1]})",
    "Mul": lambda x, a: f"({x[0]}*{x[1]})",
    "Div": lambda x, a: f"({x[0]}/{x[1]})",
    "Pow": _pow,
    # NaN in either operand wins, as in NumPy's maximum/minimum.
    "Max": lambda x, a: f"(isnan({x[0]})||isnan({x[1]})?NAN:VMAX({x[0]},{x[1]}))",
    "Min": lambda x, a: f"(isnan({x[0]})||isnan({x[1]})?NAN:VMIN({x[0]},{x[1]}))",
    "PRelu": lambda x, a: f"({x[0]}<0.0f?{x[0]}*{x[1]}:{x[0]})",
}


VARIADIC = ("Sum", "Mean", "Max", "Min")  # any number of operands (Max and Min also in BINARY)


def _variadic(op: str, args: Sequence[str]) -> str:
    if op in ("Sum", "Mean"):
        total = "(" + "+".join(args) + ")"
        return f"({total}/{literal(len(args))})" if op == "Mean" and len(args) > 1 else total
    out = args[0]
    for arg in args[1:]:
        out = BINARY[op]([out, arg], {})
    return out


def _clip_bounds(graph: Graph, node: Node) -> tuple[float, float] | None:
    """Clip's bounds when they are constants (attributes before opset 11, inputs after)."""
    if graph.opset < 11:
        return float(node.attrs.get("min", -np.inf)), float(node.attrs.get("max", np.inf))
    bounds = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = node.inputs[i] if len(node.inputs) > i else ""
        if not name:
            bounds.append(default)
            continue
        value = graph.initializers.get(name)
        if value is None or value.size != 1:
            return None
        bounds.append(float(value.reshape(-1)[0]))
    return bounds[0], bounds[1]


def operands(graph: Graph, node: Node) -> list[str]:
    """The inputs a chain kernel reads for node (Clip's constant bounds are folded into its expression)."""
    inputs = [i for i in node.inputs if i]
    return inputs[:1] if node.op_type == "Clip" else inputs


def supported(graph: Graph, node: Node) -> bool:
    """True when node is an element-wise float op a chain kernel can compute."""
    if node.domain not in ("", "ai.onnx") or len([o for o in node.outputs if o]) != 1:
        return False
    if node.op_type == "Clip":
        return _clip_bounds(graph, node) is not None
    if node.op_type in VARIADIC:
        return len(operands(graph, node)) >= 1
    arity = 1 if node.op_type in UNARY else 2 if node.op_type in BINARY else 0
    return bool(arity) and len(operands(graph, node)) == arity


def render(graph: Graph, node: Node, args: Sequence[str]) -> str:
    """node's expression over its operands' expressions (operands() order)."""
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(graph, node)  # type: ignore[misc]
        x, low, high = args[0], literal(lo), literal(hi)
        return f"({x}<{low}?{low}:({x}>{high}?{high}:{x}))"  # NaN stays NaN, as in onnxruntime
    if node.op_type in VARIADIC:
        return _variadic(node.op_type, args)
    table = UNARY if node.op_type in UNARY else BINARY
    return table[node.op_type](args, node.attrs)
