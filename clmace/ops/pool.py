"""Pooling ops (Max, Average, Lp, and their Global forms), as per-kernel-tap passes over shifted views."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from clmace.core.errors import ModelError
from clmace.ops.conv import int_list, pad_spatial, tap_slices, window_pads, work_dtype


def _geometry(op: str, x: np.ndarray, kernel_shape: Sequence[int] | None, strides: Sequence[int] | None,
              dilations: Sequence[int] | None, pads: Sequence[int] | None, auto_pad: str,
              ceil_mode: int) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """Kernel, strides, dilations, begin pads, end pads (grown to fit ceil_mode windows) and output size."""
    rank = x.ndim - 2
    if rank < 1:
        raise ModelError(f"{op}: input rank {x.ndim} needs at least one spatial axis")
    if kernel_shape is None:
        raise ModelError(f"{op}: attribute kernel_shape is required")
    kernel = int_list(op, "kernel_shape", kernel_shape, rank, 1)
    strides = int_list(op, "strides", strides, rank, 1)
    dilations = int_list(op, "dilations", dilations, rank, 1)
    begin, end = window_pads(op, x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    out, grown = [], []
    for size, k, s, d, b, e in zip(x.shape[2:], kernel, strides, dilations, begin, end, strict=True):
        extent = (k - 1) * d + 1
        room = size + b + e - extent
        # The window count as onnxruntime computes it: rounded up (ceil_mode) or towards zero, so a kernel
        # longer than the padded input gives one window reaching into grown end padding, or none at all.
        o = math.ceil(room / s + 1) if ceil_mode else int(room / s) + 1
        # A ceil_mode window that would start inside the end padding is dropped (PyTorch and ORT agree).
        if ceil_mode and o > 0 and (o - 1) * s >= size + b:
            o -= 1
        if o < 0:
            raise ModelError(f"{op}: kernel extent {extent} is larger than padded input {size + b + e}")
        out.append(o)
        grown.append(max(e, (o - 1) * s + extent - size - b if o else 0))
    return kernel, strides, dilations, begin, grown, out


def output_shape(op: str, shape: Sequence[int], attrs: dict) -> tuple[int, ...]:
    """The output shape of a windowed pooling node, as the op computes it (onnxruntime's rule; ONNX shape
    inference disagrees for some ceil_mode windows)."""
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), tuple(shape), (0,) * len(shape))
    *_, out = _geometry(op, probe, attrs.get("kernel_shape"), attrs.get("strides"), attrs.get("dilations"),
                        attrs.get("pads"), attrs.get("auto_pad", "NOTSET"), attrs.get("ceil_mode", 0))
    return tuple(shape[:2]) + tuple(out)


WINDOWED = ("MaxPool", "AveragePool", "LpPool")


def _lowest(dtype: np.dtype) -> float | int:
    # The most negative finite value, not -inf: a window lying wholly in padding then gives what ORT gives.
    return np.finfo(dtype).min if dtype.kind == "f" else np.iinfo(dtype).min


def max_pool(x: np.ndarray, *, auto_pad: str, ceil_mode: int = 0,
             dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None,
             pads: Sequence[int] | None = None, storage_order: int = 0,
             strides: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MaxPool: returns (Y, Indices), Indices being flat offsets into X (storage_order=1: column-major)."""
    kernel, strides, dilations, begin, end, out = _geometry(
        "MaxPool", x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    if 0 in out:  # no window fits (onnxruntime gives an empty result too)
        return np.empty(x.shape[:2] + tuple(out), x.dtype), np.empty(x.shape[:2] + tuple(out), np.int64)
    xp = pad_spatial(x, begin, end, _lowest(x.dtype))
    taps_all = list(itertools.product(*(range(k) for k in kernel)))
    y = xp[tap_slices(taps_all[0], strides, dilations, out)].copy()
    tap_type = np.int16 if len(taps_all) < 2**15 else np.int64
    best_tap = np.zeros(y.shape, tap_type)
    better, scratch = np.empty(y.shape, bool), np.empty(y.shape, tap_type)
    for t, taps in enumerate(taps_all[1:], 1):
        view = xp[tap_slices(taps, strides, dilations, out)]
        # Strictly greater keeps the first maximum, as ORT does for ties. Taps come in increasing order,
        # so max(best, better * t) records the newest winner without a slow masked write.
        np.greater(view, y, out=better)
        np.maximum(y, view, out=y)
        np.multiply(better, tap_type(t), out=scratch)
        np.maximum(best_tap, scratch, out=best_tap)
    return y, _indices(x.shape, best_tap, taps_all, strides, dilations, begin, storage_order)


def _indices(shape: tuple[int, ...], best_tap: np.ndarray, taps_all: list[tuple[int, ...]],
             strides: list[int], dilations: list[int], begin: list[int], storage_order: int) -> np.ndarray:
    """Flat input offsets of the winning taps: (n, c) plane + window origin + the tap's offset in it."""
    spatial, rank = shape[2:], len(strides)
    # Element strides of the spatial axes: row-major, or column-major when storage_order=1.
    axis_step = [int(np.prod(spatial[i + 1:])) for i in range(rank)]
    if storage_order:
        axis_step = [int(np.prod(spatial[:i])) for i in range(rank)]
    tap_offset = np.array([sum(t * d * st for t, d, st in zip(taps, dilations, axis_step, strict=True))
                           for taps in taps_all], np.int64)
    origin = np.zeros((1, 1) + (1,) * rank, np.int64)
    for axis in range(rank):
        o = best_tap.shape[2 + axis]
        starts = (np.arange(o) * strides[axis] - begin[axis]) * axis_step[axis]
        origin = origin + starts.reshape((1, 1) + tuple(o if i == axis else 1 for i in range(rank)))
    n, c = shape[:2]
    plane = (np.arange(n * c, dtype=np.int64) * int(np.prod(spatial))).reshape(n, c, *(1,) * rank)
    return plane + origin + np.take(tap_offset, best_tap)


def _window_counts(size: int, b: int, e: int, grown_e: int, k: int, s: int, d: int, o: int,
                   include_pad: bool) -> np.ndarray:
    """How many pixels of each window along one axis count towards an average."""
    length = size + b + grown_e
    valid = np.zeros(length, np.int64)
    if include_pad:
        valid[: size + b + e] = 1
    else:
        valid[b: b + size] = 1
    return np.add.reduce([valid[t * d: t * d + s * (o - 1) + 1: s] for t in range(k)])


def _sum_pool(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int], begin: list[int],
              out: list[int]) -> np.ndarray:
    """Window sums over x zero-padded: only the taps that reach the input in some window are visited, and the
    end padding goes only as far as they read (a ceil_mode kernel of 2560 over a 7x7 map visits 7x7 taps of
    an 8x8 array, not 2560x2560 of a 2560x2560 one)."""
    useful, end = [], []
    for size, k, s, d, b, o in zip(x.shape[2:], kernel, strides, dilations, begin, out, strict=True):
        t = np.arange(k)
        first_window = np.maximum(-((t * d - b) // s), 0)  # ceil((b - t*d) / s), at least window 0
        taps = t[(first_window < o) & (t * d + first_window * s < b + size)]
        useful.append(taps.tolist())
        end.append(max(0, int(taps.max()) * d + (o - 1) * s + 1 - size - b) if taps.size else 0)
    if not all(useful):
        return np.zeros(x.shape[:2] + tuple(out), x.dtype)
    xp = pad_spatial(x, begin, end)
    acc = None
    for taps in itertools.product(*useful):
        view = xp[tap_slices(taps, strides, dilations, out)]
        acc = view.copy() if acc is None else np.add(acc, view, out=acc)
    return acc


def average_pool(x: np.ndarray, *, auto_pad: str, ceil_mode: int = 0, count_include_pad: int = 0,
                 dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None,
                 pads: Sequence[int] | None = None, strides: Sequence[int] | None = None) -> np.ndarray:
    """AveragePool: window mean; count_include_pad counts explicit pads, never the ceil_mode overhang."""
    kernel, strides, dilations, begin, grown, out = _geometry(
        "AveragePool", x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    if 0 in out:  # no window fits (onnxruntime gives an empty result too)
        return np.empty(x.shape[:2] + tuple(out), x.dtype)
    _, end = window_pads("AveragePool", x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    ct = work_dtype(x.dtype)
    total = _sum_pool(x.astype(ct, copy=False), kernel, strides, dilations, begin, out)
    count = np.ones((), np.int64)
    for axis, (size, b, e, g, k, s, d, o) in enumerate(zip(x.shape[2:], begin, end, grown, kernel, strides,
                                                            dilations, out, strict=True)):
        per_axis = _window_counts(size, b, e, g, k, s, d, o, bool(count_include_pad))
        count = count * per_axis.reshape(tuple(o if i == axis else 1 for i in range(len(out))))
    return (total / np.maximum(count, 1).astype(ct)).astype(x.dtype, copy=False)


def lp_pool(x: np.ndarray, *, auto_pad: str, ceil_mode: int = 0,
            dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None, p: float,
            pads: Sequence[int] | None = None, strides: Sequence[int] | None = None) -> np.ndarray:
    """LpPool: (sum over the window of |x|^p)^(1/p); zero padding adds nothing."""
    kernel, strides, dilations, begin, grown, out = _geometry(
        "LpPool", x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    if 0 in out:  # no window fits (onnxruntime gives an empty result too)
        return np.empty(x.shape[:2] + tuple(out), x.dtype)
    ct = work_dtype(x.dtype)
    powered = np.abs(x.astype(ct, copy=False)) ** ct.type(p)
    total = _sum_pool(powered, kernel, strides, dilations, begin, out)
    return (total ** ct.type(1.0 / p)).astype(x.dtype, copy=False)


def _spatial_axes(op: str, x: np.ndarray) -> tuple[int, ...]:
    if x.ndim < 3:
        raise ModelError(f"{op}: input rank {x.ndim}, expected >= 3 (N, C, spatial...)")
    return tuple(range(2, x.ndim))


def global_average_pool(x: np.ndarray) -> np.ndarray:
    """GlobalAveragePool: mean over every spatial axis, kept as size 1."""
    axes = _spatial_axes("GlobalAveragePool", x)
    return x.mean(axis=axes, keepdims=True, dtype=work_dtype(x.dtype)).astype(x.dtype, copy=False)


def global_max_pool(x: np.ndarray) -> np.ndarray:
    """GlobalMaxPool: max over every spatial axis, kept as size 1."""
    return x.max(axis=_spatial_axes("GlobalMaxPool", x), keepdims=True)


def global_lp_pool(x: np.ndarray, *, p: float) -> np.ndarray:
    """GlobalLpPool: Lp norm over every spatial axis, kept as size 1."""
    ct = work_dtype(x.dtype)
    axes = _spatial_axes("GlobalLpPool", x)
    total = (np.abs(x.astype(ct, copy=False)) ** ct.type(p)).sum(axis=axes, keepdims=True)
    return (total ** ct.type(1.0 / p)).astype(x.dtype, copy=False)


OPS = {
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "LpPool": lp_pool,
    "GlobalAveragePool": global_average_pool,
    "GlobalMaxPool": global_max_pool,
    "GlobalLpPool": global_lp_pool,
}
