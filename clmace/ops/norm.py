"""Normalizations (Batch, Layer, Instance, Group, Lp, LRN, MVN) and the Softmax family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from clmace.core.errors import ModelError
from clmace.ops.conv import work_dtype


def _work(x: np.ndarray) -> np.ndarray:
    return x.astype(work_dtype(x.dtype), copy=False)


def _channel_param(op: str, name: str, p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Shape a per-channel parameter to broadcast against NC... x (or a (C, D...) one, BN spatial=0)."""
    p = _work(p)
    if p.ndim > 1:
        return p.reshape(1, *p.shape)
    if p.shape != (x.shape[1],):
        raise ModelError(f"{op}: input {name} has shape {p.shape}, expected ({x.shape[1]},)")
    return p.reshape(1, -1, *(1,) * (x.ndim - 2))


def batch_normalization(x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray,
                        var: np.ndarray, *, epsilon: float, momentum: float,
                        training_mode: int = 0, spatial: int = 1, is_test: int = 0,
                        consumed_inputs: Sequence[int] | None = None) -> np.ndarray | tuple[np.ndarray, ...]:
    """BatchNormalization; with training_mode=1 also returns the updated running mean and variance."""
    op = "BatchNormalization"
    if x.ndim < 2:
        raise ModelError(f"{op}: input rank {x.ndim}, expected >= 2")
    xw = _work(x)
    if training_mode:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        cur_mean, cur_var = xw.mean(axis=axes), xw.var(axis=axes)
        use_mean, use_var = cur_mean, cur_var
    else:
        use_mean, use_var = _work(mean), _work(var)
    inv = _channel_param(op, "scale", scale, x) / np.sqrt(_channel_param(op, "input_var", use_var, x)
                                                          + xw.dtype.type(epsilon))
    y = ((xw - _channel_param(op, "input_mean", use_mean, x)) * inv
         + _channel_param(op, "B", b, x)).astype(x.dtype, copy=False)
    if not training_mode:
        return y
    mom = xw.dtype.type(momentum)
    run_mean = (_work(mean) * mom + cur_mean * (1 - mom)).astype(mean.dtype)
    run_var = (_work(var) * mom + cur_var * (1 - mom)).astype(var.dtype)
    return y, run_mean, run_var


def instance_normalization(x: np.ndarray, scale: np.ndarray, b: np.ndarray, *, epsilon: float,
                           consumed_inputs: Sequence[int] | None = None) -> np.ndarray:
    """InstanceNormalization: normalize each (n, c) plane, then per-channel scale and bias."""
    op = "InstanceNormalization"
    if x.ndim < 3:
        raise ModelError(f"{op}: input rank {x.ndim}, expected >= 3")
    xw = _work(x)
    axes = tuple(range(2, x.ndim))
    mu = xw.mean(axis=axes, keepdims=True)
    var = ((xw - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (xw - mu) / np.sqrt(var + xw.dtype.type(epsilon))
    return (y * _channel_param(op, "scale", scale, x) + _channel_param(op, "B", b, x)).astype(x.dtype)


def _stash(x: np.ndarray, stash_type: int) -> np.dtype:
    # stash_type 1 means float32 statistics; otherwise the input's own float type.
    return np.dtype(np.float32) if stash_type == 1 and x.dtype != np.float64 else work_dtype(x.dtype)


def layer_normalization(
    x: np.ndarray, scale: np.ndarray, b: np.ndarray | None = None, *, axis: int, epsilon: float,
    stash_type: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNormalization over axes [axis, rank): returns (Y, Mean, InvStdDev)."""
    if not -x.ndim <= axis < x.ndim:
        raise ModelError(f"LayerNormalization: axis {axis} is out of range for rank {x.ndim}")
    axes = tuple(range(axis % x.ndim, x.ndim))
    dt = _stash(x, stash_type)
    xw = x.astype(dt, copy=False)
    mu = xw.mean(axis=axes, keepdims=True)
    diff = xw - mu
    inv_std = 1 / np.sqrt((diff * diff).mean(axis=axes, keepdims=True) + dt.type(epsilon))
    y = diff * inv_std * scale.astype(dt, copy=False)
    if b is not None:
        y = y + b.astype(dt, copy=False)
    return y.astype(x.dtype, copy=False), mu, inv_std


def _group_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, epsilon: float, num_groups: int,
                stash_type: int, per_channel: bool) -> np.ndarray:
    op = "GroupNormalization"
    n, c = x.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ModelError(f"{op}: channels {c} / num_groups {num_groups} is not an integer")
    want = c if per_channel else num_groups
    if scale.shape != (want,) or bias.shape != (want,):
        raise ModelError(f"{op}: scale {scale.shape} and bias {bias.shape} must both be ({want},)")
    dt = _stash(x, stash_type)
    xg = x.astype(dt, copy=False).reshape(n, num_groups, -1)
    mu = xg.mean(axis=-1, keepdims=True)
    var = ((xg - mu) ** 2).mean(axis=-1, keepdims=True)
    y = ((xg - mu) / np.sqrt(var + dt.type(epsilon))).reshape(x.shape)
    if not per_channel:
        # Opset 18: one scale/bias per group, shared by that group's channels.
        scale, bias = np.repeat(scale, c // num_groups), np.repeat(bias, c // num_groups)
    shape = (1, c, *(1,) * (x.ndim - 2))
    return (y * scale.astype(dt).reshape(shape) + bias.astype(dt).reshape(shape)).astype(x.dtype)


def group_normalization_18(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, *, epsilon: float,
                           num_groups: int, stash_type: int = 1) -> np.ndarray:
    """GroupNormalization-18: scale and bias are per group."""
    return _group_norm(x, scale, bias, epsilon, num_groups, stash_type, per_channel=False)


def group_normalization_21(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, *, epsilon: float,
                           num_groups: int, stash_type: int) -> np.ndarray:
    """GroupNormalization-21: scale and bias are per channel."""
    return _group_norm(x, scale, bias, epsilon, num_groups, stash_type, per_channel=True)


def _softmax_axis(x: np.ndarray, axis: int) -> np.ndarray:
    xw = _work(x)
    e = np.exp(xw - xw.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_axis(x: np.ndarray, axis: int) -> np.ndarray:
    xw = _work(x)
    shifted = xw - xw.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _hardmax_axis(x: np.ndarray, axis: int) -> np.ndarray:
    y = np.zeros(x.shape, x.dtype)
    np.put_along_axis(y, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
    return y


def _on_axis(op: str, fn: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, axis: int,
             coerce: bool) -> np.ndarray:
    """Apply fn over one axis (opset >= 13) or over the 2-D coercion at axis (opset < 13)."""
    if not -max(x.ndim, 1) <= axis < max(x.ndim, 1):
        raise ModelError(f"{op}: axis {axis} is out of range for rank {x.ndim}")
    if x.size == 0:
        return x.copy()
    if coerce:
        rows = int(np.prod(x.shape[: axis % x.ndim]))
        return fn(x.reshape(rows, -1), 1).reshape(x.shape).astype(x.dtype, copy=False)
    return fn(x, axis).astype(x.dtype, copy=False)


def softmax_1(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Softmax (opset 1-12): over the trailing axes from `axis`, flattened."""
    return _on_axis("Softmax", _softmax_axis, x, axis, coerce=True)


def softmax_13(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Softmax (opset 13+): over one axis."""
    return _on_axis("Softmax", _softmax_axis, x, axis, coerce=False)


def log_softmax_1(x: np.ndarray, *, axis: int) -> np.ndarray:
    """LogSoftmax (opset 1-12): over the trailing axes from `axis`, flattened."""
    return _on_axis("LogSoftmax", _log_softmax_axis, x, axis, coerce=True)


def log_softmax_13(x: np.ndarray, *, axis: int) -> np.ndarray:
    """LogSoftmax (opset 13+): over one axis."""
    return _on_axis("LogSoftmax", _log_softmax_axis, x, axis, coerce=False)


def hardmax_1(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Hardmax (opset 1-12): one-hot of the first maximum over the flattened trailing axes."""
    return _on_axis("Hardmax", _hardmax_axis, x, axis, coerce=True)


def hardmax_13(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Hardmax (opset 13+): one-hot of the first maximum along one axis."""
    return _on_axis("Hardmax", _hardmax_axis, x, axis, coerce=False)


def lp_normalization(x: np.ndarray, *, axis: int, p: int) -> np.ndarray:
    """LpNormalization: x / ||x||_p along axis (0 where the norm is 0)."""
    if p not in (1, 2):
        raise ModelError(f"LpNormalization: p must be 1 or 2, got {p}")
    xw = _work(x)
    if p == 1:
        norm = np.abs(xw).sum(axis=axis, keepdims=True)
    else:
        norm = np.sqrt((xw * xw).sum(axis=axis, keepdims=True))
    safe = np.where(norm == 0, 1, norm)
    return np.where(norm == 0, 0, xw / safe).astype(x.dtype, copy=False)


def lrn(x: np.ndarray, *, alpha: float, beta: float, bias: float,
        size: int) -> np.ndarray:
    """LRN: divide by (bias + alpha/size * sum of squares over a window of `size` channels)^beta."""
    if x.ndim < 3:
        raise ModelError(f"LRN: input rank {x.ndim}, expected >= 3")
    xw = _work(x)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.pad(xw * xw, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    # Window sums over channels from one cumulative sum.
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    window = csum[:, size:] - csum[:, :-size]
    t = xw.dtype.type
    return (xw / (t(bias) + t(alpha / size) * window) ** t(beta)).astype(x.dtype, copy=False)


def mean_variance_normalization(x: np.ndarray, *, axes: Sequence[int]) -> np.ndarray:
    """MeanVarianceNormalization: (x - mean) / (std + 1e-9) over axes."""
    xw = _work(x)
    ax = tuple(int(a) for a in axes)
    mu = xw.mean(axis=ax, keepdims=True)
    var = (xw * xw).mean(axis=ax, keepdims=True) - mu * mu
    return ((xw - mu) / (np.sqrt(np.maximum(var, 0)) + xw.dtype.type(1e-9))).astype(x.dtype, copy=False)


OPS = {
    "BatchNormalization": batch_normalization,
    "InstanceNormalization": instance_normalization,
    "LayerNormalization": layer_normalization,
    "GroupNormalization": {18: group_normalization_18, 21: group_normalization_21},
    "Softmax": {1: softmax_1, 13: softmax_13},
    "LogSoftmax": {1: log_softmax_1, 13: log_softmax_13},
    "Hardmax": {1: hardmax_1, 13: hardmax_13},
    "LpNormalization": lp_normalization,
    "LRN": lrn,
    "MeanVarianceNormalization": mean_variance_normalization,
}
