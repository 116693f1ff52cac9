"""Reductions, ArgMax/ArgMin, TopK and cumulative sums/products (NumPy reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clmace.core.errors import ModelError

# `axes` is an attribute (list) before opset 18 (13 for ReduceSum) and an optional input (array)
# after; both arrive under the name `axes`, so one function serves every version.
Axes = np.ndarray | Sequence[int] | None


def _axes(op: str, data: np.ndarray, axes: Axes, noop_with_empty_axes: int) -> tuple[int, ...] | None:
    """Normalised reduction axes; None means 'every axis', () means 'no reduction'."""
    if axes is None or len(axes) == 0:
        return () if noop_with_empty_axes else None
    out = []
    for axis in np.asarray(axes, dtype=np.int64).ravel().tolist():
        if not -data.ndim <= axis < max(data.ndim, 1):
            raise ModelError(f"{op}: axes entry {axis} is out of range for input rank {data.ndim}")
        out.append(axis % max(data.ndim, 1))
    return tuple(sorted(set(out)))


def _finish(out: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Reduction result in the input dtype (mean/L2 of ints, float16 sums in float32)."""
    return np.asarray(out).astype(data.dtype, copy=False)


def _reduce(op, data, axes, keepdims, noop_with_empty_axes, fn, **kwargs) -> np.ndarray:
    """Apply `fn(data, axis=..., keepdims=...)` over the normalised axes."""
    ax = _axes(op, data, axes, noop_with_empty_axes)
    if ax == ():
        return data.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _finish(fn(data, axis=ax, keepdims=bool(keepdims), **kwargs), data)


def _low(dtype: np.dtype):
    """Identity of max over an empty set: -inf or the type's minimum."""
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


def _high(dtype: np.dtype):
    """Identity of min over an empty set: +inf or the type's maximum."""
    if dtype == np.bool_:
        return True
    return np.iinfo(dtype).max if dtype.kind in "iu" else np.inf


def reduce_sum(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceSum."""
    return _reduce("ReduceSum", data, axes, keepdims, noop_with_empty_axes, np.sum)


def reduce_mean(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceMean."""
    return _reduce("ReduceMean", data, axes, keepdims, noop_with_empty_axes, np.mean)


def reduce_max(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceMax; an empty set gives -inf (the type's minimum for ints)."""
    return _reduce("ReduceMax", data, axes, keepdims, noop_with_empty_axes, np.max, initial=_low(data.dtype))


def reduce_min(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceMin; an empty set gives +inf (the type's maximum for ints)."""
    return _reduce("ReduceMin", data, axes, keepdims, noop_with_empty_axes, np.min, initial=_high(data.dtype))


def reduce_prod(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceProd."""
    return _reduce("ReduceProd", data, axes, keepdims, noop_with_empty_axes, np.prod)


def _l1(data: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """Sum of absolute values."""
    return np.sum(np.abs(data), axis=axis, keepdims=keepdims)


def _l2(data: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """Euclidean norm, accumulated in float64."""
    return np.sqrt(np.sum(np.square(data.astype(np.float64)), axis=axis, keepdims=keepdims))


def _sum_square(data: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """Sum of squares."""
    return np.sum(np.square(data), axis=axis, keepdims=keepdims)


def _log_sum(data: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """log(sum(x)); an empty set gives -inf."""
    return np.log(np.sum(data, axis=axis, keepdims=keepdims))


def _log_sum_exp(data: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    """log(sum(exp(x))), shifted by the max so large inputs do not overflow."""
    x = data.astype(np.float64)
    top = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def reduce_l1(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceL1."""
    return _reduce("ReduceL1", data, axes, keepdims, noop_with_empty_axes, _l1)


def reduce_l2(data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0):
    """ReduceL2."""
    return _reduce("ReduceL2", data, axes, keepdims, noop_with_empty_axes, _l2)


def reduce_sum_square(
    data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0
) -> np.ndarray:
    """ReduceSumSquare."""
    return _reduce("ReduceSumSquare", data, axes, keepdims, noop_with_empty_axes, _sum_square)


def reduce_log_sum(
    data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0
) -> np.ndarray:
    """ReduceLogSum."""
    return _reduce("ReduceLogSum", data, axes, keepdims, noop_with_empty_axes, _log_sum)


def reduce_log_sum_exp(
    data: np.ndarray, axes: Axes = None, *, keepdims: int, noop_with_empty_axes: int = 0
) -> np.ndarray:
    """ReduceLogSumExp."""
    return _reduce("ReduceLogSumExp", data, axes, keepdims, noop_with_empty_axes, _log_sum_exp)


def _arg(op: str, data: np.ndarray, axis: int, keepdims: int, select_last_index: int, fn) -> np.ndarray:
    """ArgMax/ArgMin along one axis -> int64; ties pick the first (or last) index."""
    if not -data.ndim <= axis < max(data.ndim, 1):
        raise ModelError(f"{op}: attribute axis={axis} is out of range for input rank {data.ndim}")
    axis %= max(data.ndim, 1)
    if select_last_index:
        flipped = fn(np.flip(data, axis=axis), axis=axis, keepdims=True)
        out = data.shape[axis] - 1 - flipped
    else:
        out = fn(data, axis=axis, keepdims=True)
    out = out.astype(np.int64)
    return out if keepdims else np.squeeze(out, axis=axis)


def arg_max(data: np.ndarray, *, axis: int, keepdims: int, select_last_index: int = 0):
    """ArgMax -> int64."""
    return _arg("ArgMax", data, axis, keepdims, select_last_index, np.argmax)


def arg_min(data: np.ndarray, *, axis: int, keepdims: int, select_last_index: int = 0):
    """ArgMin -> int64."""
    return _arg("ArgMin", data, axis, keepdims, select_last_index, np.argmin)


def top_k(
    x: np.ndarray, K: np.ndarray | None = None, *, axis: int, largest: int = 1, sorted: int = 1,
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """TopK -> (values, int64 indices); k is an attribute in opset 1, input K after; ties: lower index."""
    count = int(np.asarray(K).ravel()[0]) if K is not None else k
    if count is None:
        raise ModelError("TopK: expected input K (or attribute k before opset 10), got neither")
    if not -x.ndim <= axis < x.ndim:
        raise ModelError(f"TopK: attribute axis={axis} is out of range for input rank {x.ndim}")
    axis %= x.ndim
    if not 0 <= count <= x.shape[axis]:
        raise ModelError(f"TopK: K={count} must be in [0, {x.shape[axis]}] for axis {axis}")
    if largest:
        # Stable ascending sort of the reversed axis, read backwards: descending, and equal values keep
        # ascending original index. `sorted` is honoured trivially: output is always sorted.
        rev = np.argsort(np.flip(x, axis=axis), axis=axis, kind="stable")
        order = np.flip(x.shape[axis] - 1 - rev, axis=axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(count), axis=axis).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


def _cumulative(op, x, axis, exclusive, reverse, fn, identity) -> np.ndarray:
    """Shared body of CumSum/CumProd."""
    ax = int(np.asarray(axis).ravel()[0])
    if not -x.ndim <= ax < x.ndim:
        raise ModelError(f"{op}: input axis={ax} is out of range for input rank {x.ndim}")
    data = np.flip(x, axis=ax) if reverse else x
    out = fn(data, axis=ax, dtype=x.dtype)
    if exclusive:
        # Shift by one along the axis and put the identity in front.
        pad = np.full_like(np.take(out, [0], axis=ax), identity)
        out = np.concatenate([pad, np.take(out, np.arange(out.shape[ax] - 1), axis=ax)], axis=ax)
    return np.flip(out, axis=ax) if reverse else out


def cum_sum(x: np.ndarray, axis: np.ndarray, *, exclusive: int, reverse: int) -> np.ndarray:
    """CumSum along the axis given as a scalar input."""
    return _cumulative("CumSum", x, axis, exclusive, reverse, np.cumsum, 0)


def cum_prod(x: np.ndarray, axis: np.ndarray, *, exclusive: int, reverse: int) -> np.ndarray:
    """CumProd along the axis given as a scalar input."""
    return _cumulative("CumProd", x, axis, exclusive, reverse, np.cumprod, 1)


OPS = {
    "ReduceSum": reduce_sum,
    "ReduceMean": reduce_mean,
    "ReduceMax": reduce_max,
    "ReduceMin": reduce_min,
    "ReduceProd": reduce_prod,
    "ReduceL1": reduce_l1,
    "ReduceL2": reduce_l2,
    "ReduceSumSquare": reduce_sum_square,
    "ReduceLogSum": reduce_log_sum,
    "ReduceLogSumExp": reduce_log_sum_exp,
    "ArgMax": arg_max,
    "ArgMin": arg_min,
    "TopK": top_k,
    "CumSum": cum_sum,
    "CumProd": cum_prod,
}
