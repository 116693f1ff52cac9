"""Resize and Upsample: separable per-axis interpolation (nearest gathers, linear/cubic as a small matmul)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clmace.core.errors import ModelError
from clmace.ops.conv import work_dtype

COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_crop_and_resize")
POLICIES = ("stretch", "not_larger", "not_smaller")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def _given(a: np.ndarray | None) -> np.ndarray | None:
    """Optional inputs may arrive as empty tensors: treat those as absent."""
    return None if a is None or np.asarray(a).size == 0 else np.asarray(a)


def _source_coords(mode: str, out: int, size: int, scale: float, roi: tuple) -> np.ndarray:
    """Input coordinate of each output index along one axis, in float64 as the ONNX reference computes."""
    y = np.arange(out, dtype=np.float64)
    width = scale * size  # the un-rounded output size
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / width)
        return offset + (y + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return np.full(out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    if mode == "align_corners":
        return np.zeros(out) if width == 1 else y * (size - 1) / (width - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if width == 1:
            return np.full(out, (end - start) * (size - 1) / 2 + start * (size - 1))
        return y * (end - start) * (size - 1) / (width - 1) + start * (size - 1)
    known = ", ".join(COORD_MODES)
    raise ModelError(f"Resize: coordinate_transformation_mode {mode!r} is not one of {known}")


def _nearest_index(x: np.ndarray, mode: str, downsampling: bool) -> np.ndarray:
    base = np.floor(x)
    ratio = x - base
    if mode == "simple":
        # Upsample and Resize-10 (as in ORT): floor when enlarging, ceil when shrinking.
        mode = "ceil" if downsampling else "floor"
    if mode == "round_prefer_floor":
        up = ratio > 0.5
    elif mode == "round_prefer_ceil":
        up = ratio >= 0.5
    elif mode == "floor":
        up = np.zeros_like(ratio, bool)
    elif mode == "ceil":
        up = ratio > 0
    else:
        raise ModelError(f"Resize: nearest_mode {mode!r} is not one of {', '.join(NEAREST_MODES[:4])}")
    return (base + up).astype(np.int64)


def _cubic_kernel(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _weights(x: np.ndarray, size: int, scale: float, mode: str, cubic_a: float, antialias: bool,
             exclude_outside: bool) -> np.ndarray:
    """Dense (out, size) interpolation matrix for linear or cubic along one axis."""
    base = np.floor(x).astype(np.int64)
    # Antialias widens the kernel by 1/scale when shrinking; the tap count follows the ONNX reference.
    kscale = min(scale, 1.0) if antialias else 1.0
    reach = 1 if mode == "linear" else 2
    first = math.floor(-reach / kscale) + 1
    offsets = np.arange(first, 1 - first + 1)
    idx = base[:, None] + offsets[None, :]
    t = (idx - x[:, None]) * kscale
    w = np.clip(1 - np.abs(t), 0, 1) if mode == "linear" else _cubic_kernel(t, cubic_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= size), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    mat = np.zeros((len(x), size))
    rows = np.broadcast_to(np.arange(len(x))[:, None], idx.shape)
    np.add.at(mat, (rows, np.clip(idx, 0, size - 1)), w)
    return mat


@dataclass
class AxisMap:
    """How one resized axis maps input to output: a source index per output (nearest) or a dense
    (out, size) weight matrix (linear, cubic), and the outputs that take extrapolation_value instead."""

    axis: int
    out: int
    index: np.ndarray | None
    matrix: np.ndarray | None
    outside: np.ndarray | None


def _axis_map(axis: int, size: int, out: int, scale: float, roi: tuple, *, mode: str, coord_mode: str,
              nearest_mode: str, cubic_a: float, antialias: bool, exclude_outside: bool) -> AxisMap:
    x = _source_coords(coord_mode, out, size, scale, roi)
    outside = None
    if coord_mode == "tf_crop_and_resize":
        mask = (x < 0) | (x > size - 1)
        outside = mask if mask.any() else None
    if mode == "nearest":
        return AxisMap(axis, out, np.clip(_nearest_index(x, nearest_mode, scale < 1), 0, size - 1), None, outside)
    return AxisMap(axis, out, None, _weights(x, size, scale, mode, cubic_a, antialias, exclude_outside), outside)


def _apply(data: np.ndarray, m: AxisMap, extrapolation_value: float) -> np.ndarray:
    if m.index is not None:
        result = np.take(data, m.index, axis=m.axis)
    else:
        mat = m.matrix.astype(data.dtype)  # type: ignore[union-attr]
        result = np.ascontiguousarray(np.moveaxis(np.moveaxis(data, m.axis, -1) @ mat.T, -1, m.axis))
    if m.outside is not None:
        shape = [1] * data.ndim
        shape[m.axis] = m.out
        result = np.where(m.outside.reshape(shape), result.dtype.type(extrapolation_value), result)
    return result


def _plan(x: np.ndarray, axes: list[int], scales: np.ndarray | None, sizes: np.ndarray | None,
          policy: str) -> tuple[list[float], list[int]]:
    """Per-axis scale and output size for the resized axes."""
    if (scales is None) == (sizes is None):
        raise ModelError("Resize: exactly one of the inputs scales and sizes must be given")
    ins = [x.shape[a] for a in axes]
    if scales is not None:
        if len(scales) != len(axes):
            raise ModelError(f"Resize: input scales has {len(scales)} values, expected {len(axes)}")
        fs = [float(s) for s in scales]
        if any(s <= 0 for s in fs):
            raise ModelError(f"Resize: scales {fs} must be > 0")
        return fs, [int(math.floor(s * n)) for s, n in zip(fs, ins, strict=True)]
    if len(sizes) != len(axes):
        raise ModelError(f"Resize: input sizes has {len(sizes)} values, expected {len(axes)}")
    outs = [int(v) for v in sizes]
    fs = [o / n for o, n in zip(outs, ins, strict=True)]
    if policy == "stretch":
        return fs, outs
    if policy not in POLICIES:
        raise ModelError(f"Resize: keep_aspect_ratio_policy {policy!r} is not one of {', '.join(POLICIES)}")
    s = min(fs) if policy == "not_larger" else max(fs)
    return [s] * len(axes), [int(s * n + 0.5) for n in ins]


def axis_maps(shape: Sequence[int], axes: list[int], roi: np.ndarray | None, scales: np.ndarray | None,
              sizes: np.ndarray | None, *, mode: str, coord_mode: str, nearest_mode: str, cubic_a: float,
              antialias: bool, exclude_outside: bool, policy: str) -> list[AxisMap]:
    """The map of every axis that changes, in order (an empty output axis has neither index nor matrix)."""
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), tuple(shape), (0,) * len(shape))
    axis_scales, outs = _plan(probe, axes, scales, sizes, policy)
    maps = []
    for i, (axis, scale, out) in enumerate(zip(axes, axis_scales, outs, strict=True)):
        # roi stays in its own dtype: the reference does this arithmetic in float32 and so do we, so
        # points on the crop edge fall on the same side.
        box = (0.0, 1.0) if roi is None else (roi[i], roi[len(axes) + i])
        crops = coord_mode == "tf_crop_and_resize" and box != (0.0, 1.0)
        if math.isclose(scale, 1.0) and out == shape[axis] and not crops:
            continue
        if out == 0:
            maps.append(AxisMap(axis, 0, None, None, None))
            continue
        maps.append(_axis_map(axis, shape[axis], out, scale, box, mode=mode, coord_mode=coord_mode,
                              nearest_mode=nearest_mode, cubic_a=cubic_a, antialias=antialias,
                              exclude_outside=exclude_outside))
    return maps


def resize(x: np.ndarray, roi: np.ndarray | None = None, scales: np.ndarray | None = None,
           sizes: np.ndarray | None = None, *, antialias: int = 0, axes: Sequence[int] | None = None,
           coordinate_transformation_mode: str, cubic_coeff_a: float,
           exclude_outside: int, extrapolation_value: float,
           keep_aspect_ratio_policy: str = "stretch", mode: str,
           nearest_mode: str) -> np.ndarray:
    """Resize (opset 11-19+): nearest / n-linear / cubic, every coordinate mode, roi, axes, aspect policy."""
    rank = x.ndim
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if len(set(axes)) != len(axes):
        raise ModelError(f"Resize: attribute axes {axes} repeats an axis")
    roi, scales, sizes = _given(roi), _given(scales), _given(sizes)
    if roi is not None and len(roi) != 2 * len(axes):
        raise ModelError(f"Resize: input roi has {len(roi)} values, expected {2 * len(axes)}")
    if coordinate_transformation_mode == "tf_crop_and_resize" and roi is None:
        raise ModelError("Resize: coordinate_transformation_mode tf_crop_and_resize needs the roi input")
    if mode not in ("nearest", "linear", "cubic"):
        raise ModelError(f"Resize: mode {mode!r} is not one of nearest, linear, cubic")
    if coordinate_transformation_mode not in COORD_MODES:
        known = ", ".join(COORD_MODES)
        raise ModelError(f"Resize: coordinate_transformation_mode {coordinate_transformation_mode!r} "
                         f"is not one of {known}")
    if nearest_mode not in NEAREST_MODES:
        raise ModelError(f"Resize: nearest_mode {nearest_mode!r} is not one of {', '.join(NEAREST_MODES[:4])}")
    if mode == "nearest" and antialias:
        raise ModelError("Resize: antialias is defined for linear and cubic modes only")
    maps = axis_maps(x.shape, axes, roi, scales, sizes, mode=mode, coord_mode=coordinate_transformation_mode,
                     nearest_mode=nearest_mode, cubic_a=cubic_coeff_a, antialias=bool(antialias),
                     exclude_outside=bool(exclude_outside), policy=keep_aspect_ratio_policy)
    # Integer images are interpolated in float and rounded back; nearest keeps the dtype as is.
    data = x if mode == "nearest" else x.astype(work_dtype(x.dtype), copy=False)
    for m in maps:
        if m.out == 0:
            data = np.take(data, np.zeros(0, np.int64), axis=m.axis)
            continue
        data = _apply(data, m, extrapolation_value)
    if data.dtype != x.dtype and x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    return data.astype(x.dtype, copy=False)


def resize_10(x: np.ndarray, scales: np.ndarray, *, mode: str) -> np.ndarray:
    """Resize-10: asymmetric coordinates, nearest picks floor (ceil when shrinking)."""
    # Resize-11 with the settings that reproduce Resize-10 (no cubic mode, no extrapolation then).
    return resize(x, None, scales, coordinate_transformation_mode="asymmetric", mode=mode,
                  nearest_mode="simple", cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0)


def upsample_7(x: np.ndarray, *, mode: str, scales: Sequence[float],
               height_scale: float | None = None, width_scale: float | None = None) -> np.ndarray:
    """Upsample-7: scales as an attribute (height_scale/width_scale are opset-1 leftovers, ignored)."""
    return upsample_9(x, np.asarray(scales, np.float32), mode=mode)


def upsample_9(x: np.ndarray, scales: np.ndarray, *, mode: str) -> np.ndarray:
    """Upsample-9: scales as an input; nearest or (bi)linear with asymmetric coordinates."""
    if mode == "bilinear":
        mode = "linear"
    if any(float(s) < 1 for s in scales):
        raise ModelError(f"Upsample: scales {list(scales)} must all be >= 1")
    return resize_10(x, scales, mode=mode)


OPS = {
    "Resize": {10: resize_10, 11: resize},
    "Upsample": {7: upsample_7, 9: upsample_9},
}
