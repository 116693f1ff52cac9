"""Element-wise activations, shared by the standalone ops and by fused Conv/Gemm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def relu(x: np.ndarray) -> np.ndarray:
    """Relu."""
    return np.maximum(x, np.zeros((), x.dtype))


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """LeakyRelu."""
    return np.where(x >= 0, x, x * x.dtype.type(alpha)).astype(x.dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, overflow-free for large |x|."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1 + ex)
    return out


def hard_sigmoid(x: np.ndarray, alpha: float = 0.2, beta: float = 0.5) -> np.ndarray:
    """HardSigmoid: clip(alpha * x + beta, 0, 1)."""
    return np.clip(x * x.dtype.type(alpha) + x.dtype.type(beta), 0, 1).astype(x.dtype)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """HardSwish: x * hard_sigmoid(x, 1/6, 0.5)."""
    return (x * hard_sigmoid(x, 1 / 6, 0.5)).astype(x.dtype)


def swish(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x) (SiLU), the pattern that fusion recognises."""
    return (x * sigmoid(x)).astype(x.dtype)


def clip(x: np.ndarray, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """Clip to [lo, hi]."""
    return np.clip(x, lo, hi).astype(x.dtype)


def maximum(x: np.ndarray, c: float) -> np.ndarray:
    """Max(x, c) with a constant scalar c; NaN propagates, as in the Max op."""
    return np.maximum(x, x.dtype.type(c))


def minimum(x: np.ndarray, c: float) -> np.ndarray:
    """Min(x, c) with a constant scalar c; NaN propagates, as in the Min op."""
    return np.minimum(x, x.dtype.type(c))


def tanh(x: np.ndarray) -> np.ndarray:
    """Tanh."""
    return np.tanh(x)


PARAMETERLESS = ("Relu", "Sigmoid", "HardSwish", "Tanh")


def activation_spec(op_type: str, attrs: Mapping[str, Any], inputs: Sequence[str], opset: int,
                    initializers: Mapping[str, np.ndarray], rank: int = 1) -> tuple[str, tuple[float, ...]] | None:
    """(name, params) of a node that a producer can apply on its way out (fused), or None.

    The one place that decides which activations fuse and reads their parameters; frontend fusion and the
    OpenCL plan both ask it. Clip's bounds must be constants; so must a Max's or Min's second operand, one
    value of at most `rank` dims (the rank of the first operand: broadcasting then keeps its shape).
    """
    if op_type in PARAMETERLESS:
        return op_type, ()
    if op_type == "LeakyRelu":
        return op_type, (float(attrs["alpha"]),)
    if op_type == "HardSigmoid":
        return op_type, (float(attrs["alpha"]), float(attrs["beta"]))
    if op_type in ("Max", "Min"):  # with one float constant of at most x's rank: the shape stays x's
        value = initializers.get(inputs[1]) if len(inputs) == 2 else None
        if value is None or np.asarray(value).size != 1 or np.ndim(value) > rank or np.asarray(value).dtype.kind != "f":
            return None
        return op_type, (float(np.asarray(value).reshape(())),)
    if op_type != "Clip":
        return None
    if opset < 11:
        return op_type, (float(attrs["min"]), float(attrs["max"]))
    bounds = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = inputs[i] if len(inputs) > i else ""
        value = initializers.get(name) if name else np.array(default)
        if value is None or np.asarray(value).size != 1:
            return None
        bounds.append(float(np.asarray(value).reshape(())))
    return op_type, tuple(bounds)


def apply_activation(x: np.ndarray, name: str | None, params: Sequence[float] = ()) -> np.ndarray:
    """Apply a fused activation by name (as stored in Node.attrs['activation'])."""
    if not name:
        return x
    fn = FUSED[name]
    return fn(x, *params)


# The activations that graph passes may fuse into Conv / Gemm / MatMul, and their params.
FUSED = {
    "Relu": relu,
    "LeakyRelu": leaky_relu,   # (alpha,)
    "Sigmoid": sigmoid,
    "HardSigmoid": hard_sigmoid,  # (alpha, beta)
    "HardSwish": hard_swish,
    "Swish": swish,
    "Clip": clip,  # (min, max)
    "Tanh": tanh,
    "Max": maximum,  # (c,)
    "Min": minimum,  # (c,)
}
