"""Matrix products: Gemm, MatMul and Einsum."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clmace.core.errors import ModelError
from clmace.ops.activation import apply_activation


def _work(a: np.ndarray) -> np.ndarray:
    """Floats narrower than float32 compute in float32; others as they are (int MatMul stays exact)."""
    # ml_dtypes' bfloat16 / float8 types have kind "V"; numpy cannot multiply them natively.
    if (a.dtype.kind == "f" and a.dtype.itemsize < 4) or a.dtype.kind == "V":
        return a.astype(np.float32)
    return a


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, *, alpha: float,
         beta: float, transA: int, transB: int, broadcast: int = 0,
         activation: str | None = None, activation_params: Sequence[float] = ()) -> np.ndarray:
    """Gemm: alpha * A' @ B' + beta * C, C broadcast to (M, N); `broadcast` (opset < 7) is implied."""
    if a.ndim != 2 or b.ndim != 2:
        raise ModelError(f"Gemm: A and B must be 2-D, got shapes {a.shape} and {b.shape}")
    am = a.T if transA else a
    bm = b.T if transB else b
    if am.shape[1] != bm.shape[0]:
        raise ModelError(f"Gemm: inner sizes differ: A' is {am.shape}, B' is {bm.shape}")
    y = _work(am) @ _work(bm)
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None and beta != 0.0:
        cw = _work(c)
        try:
            shifted = np.broadcast_to(cw, y.shape)
        except ValueError:
            raise ModelError(f"Gemm: C of shape {c.shape} does not broadcast to {y.shape}") from None
        y = y + (shifted if beta == 1.0 else shifted * cw.dtype.type(beta))
    return apply_activation(y, activation, activation_params).astype(a.dtype, copy=False)


def matmul(a: np.ndarray, b: np.ndarray, *, activation: str | None = None,
           activation_params: Sequence[float] = ()) -> np.ndarray:
    """MatMul: numpy.matmul semantics (batched, broadcast, 1-D operands promoted then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ModelError(f"MatMul: operands must have rank >= 1, got shapes {a.shape} and {b.shape}")
    try:
        y = np.matmul(_work(a), _work(b))
    except ValueError:
        raise ModelError(f"MatMul: shapes {a.shape} and {b.shape} do not multiply") from None
    return apply_activation(y, activation, activation_params).astype(a.dtype, copy=False)


def einsum(*inputs: np.ndarray, equation: str) -> np.ndarray:
    """Einsum: numpy.einsum on the equation (spaces removed), computed in at least float32."""
    eq = equation.replace(" ", "")
    dtype = inputs[0].dtype if inputs else np.dtype(np.float32)
    try:
        y = np.einsum(eq, *(_work(t) for t in inputs), optimize=len(inputs) > 2)
    except ValueError as exc:
        shapes = [t.shape for t in inputs]
        raise ModelError(f"Einsum: equation {equation!r} does not fit input shapes {shapes}: {exc}") from None
    return np.asarray(y).astype(dtype, copy=False)


OPS = {"Gemm": gemm, "MatMul": matmul, "Einsum": einsum}
