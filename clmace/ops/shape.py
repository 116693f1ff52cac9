"""Shape-only and tensor-creating ops: Reshape, Flatten, Squeeze, Shape, Range, Constant, Expand..."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clmace.core import dtypes
from clmace.core.errors import ModelError, UnsupportedOpError

# Attribute lists (older opsets) and int64 inputs (newer opsets) arrive under the same name.
Ints = np.ndarray | Sequence[int]


def _ints(values: Ints) -> list[int]:
    """A 1-D list of Python ints from an attribute list or an int64 tensor."""
    return [int(v) for v in np.asarray(values, dtype=np.int64).ravel()]


def _norm_axes(op: str, axes: Ints, rank: int) -> list[int]:
    """Axes made non-negative and checked against rank."""
    out = []
    for axis in _ints(axes):
        if not -rank <= axis < rank:
            raise ModelError(f"{op}: axis {axis} is out of range for rank {rank}")
        out.append(axis % rank)
    if len(set(out)) != len(out):
        raise ModelError(f"{op}: axes {_ints(axes)} repeat an axis")
    return out


def reshape(data: np.ndarray, shape: Ints, *, allowzero: int = 0) -> np.ndarray:
    """Reshape; 0 copies the input dim (unless allowzero), -1 is inferred."""
    dims = _ints(shape)
    if not allowzero:
        for i, dim in enumerate(dims):
            if dim == 0:
                if i >= data.ndim:
                    raise ModelError(f"Reshape: shape[{i}] = 0 copies a dim the rank-{data.ndim} input lacks")
                dims[i] = data.shape[i]
    if dims.count(-1) > 1:
        raise ModelError(f"Reshape: shape {dims} has more than one -1")
    try:
        return data.reshape(dims).copy()
    except ValueError as exc:
        raise ModelError(f"Reshape: cannot reshape {data.shape} to {dims}") from exc


def flatten(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Flatten to 2-D: dims before axis, dims from axis on."""
    if not -x.ndim <= axis <= x.ndim:
        raise ModelError(f"Flatten: attribute axis={axis} is out of range for input rank {x.ndim}")
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, -1 if outer else int(np.prod(x.shape[axis:]))).copy()


def squeeze(data: np.ndarray, axes: Ints | None = None) -> np.ndarray:
    """Squeeze the given size-1 axes (attribute before opset 13, input after), or all of them."""
    if axes is None or len(axes) == 0:
        return np.squeeze(data).copy()
    ax = _norm_axes("Squeeze", axes, data.ndim)
    for axis in ax:
        if data.shape[axis] != 1:
            raise ModelError(f"Squeeze: axis {axis} has size {data.shape[axis]}, expected 1")
    return np.squeeze(data, axis=tuple(ax)).copy()


def unsqueeze(data: np.ndarray, axes: Ints) -> np.ndarray:
    """Insert size-1 axes; axes index the output (attribute before opset 13, input after)."""
    ax = _norm_axes("Unsqueeze", axes, data.ndim + len(_ints(axes)))
    return np.expand_dims(data, tuple(ax)).copy()


def shape(data: np.ndarray, *, start: int = 0, end: int | None = None) -> np.ndarray:
    """Shape -> int64, sliced [start:end] (clamped) since opset 15."""
    return np.array(data.shape[start:end], dtype=np.int64)


def size(data: np.ndarray) -> np.ndarray:
    """Size -> int64 scalar."""
    return np.array(data.size, dtype=np.int64)


def constant_of_shape(input: np.ndarray, *, value: np.ndarray | None = None) -> np.ndarray:
    """ConstantOfShape: a tensor of `input` shape filled with the one-element `value` (float32 0)."""
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value)
    if fill.size != 1:
        raise ModelError(f"ConstantOfShape: attribute value must hold one element, got {fill.size}")
    return np.full(_ints(input), fill.ravel()[0], dtype=fill.dtype)


def range_(start: np.ndarray, limit: np.ndarray, delta: np.ndarray, *, stash_type: int = 1) -> np.ndarray:
    """Range: start, start + delta, ... while < limit; dtype of start."""
    dtype = np.asarray(start).dtype
    first, stop, step = (np.asarray(v).item() for v in (start, limit, delta))
    if step == 0:
        raise ModelError("Range: input delta must be non-zero, got 0")
    count = max(int(np.ceil((stop - first) / step)), 0)
    # first + i * step, as the spec writes it (np.arange accumulates differently for floats)
    return (np.asarray(first, dtype) + np.arange(count, dtype=dtype) * np.asarray(step, dtype)).astype(dtype)


def constant(
    *,
    value: np.ndarray | None = None,
    value_float: float | None = None,
    value_floats: Sequence[float] | None = None,
    value_int: int | None = None,
    value_ints: Sequence[int] | None = None,
    value_string: str | None = None,
    value_strings: Sequence[str] | None = None,
    sparse_value: object = None,
) -> np.ndarray:
    """Constant from exactly one value_* attribute."""
    if sparse_value is not None:
        raise UnsupportedOpError("Constant: attribute sparse_value (sparse tensors) is not supported")
    given = {
        "value": None if value is None else np.array(value),
        "value_float": None if value_float is None else np.array(value_float, np.float32),
        "value_floats": None if value_floats is None else np.array(value_floats, np.float32),
        "value_int": None if value_int is None else np.array(value_int, np.int64),
        "value_ints": None if value_ints is None else np.array(value_ints, np.int64),
        "value_string": None if value_string is None else np.array(value_string, object),
        "value_strings": None if value_strings is None else np.array(value_strings, object),
    }
    present = [name for name, v in given.items() if v is not None]
    if len(present) != 1:
        raise ModelError(f"Constant: expected exactly one value attribute, got {present or 'none'}")
    return given[present[0]]


def identity(x: np.ndarray) -> np.ndarray:
    """Identity (a copy, so later in-place work cannot alias the input)."""
    return np.array(x, copy=True)


def dropout(
    data: np.ndarray, ratio: np.ndarray | float | None = None, training_mode: np.ndarray | None = None, *,
    seed: int | None = None, is_test: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Dropout at inference: (data, all-true mask). Returns both outputs; the mask is optional in ONNX."""
    drop = 0.0 if ratio is None else float(np.asarray(ratio).ravel()[0])
    if training_mode is not None and bool(np.asarray(training_mode).ravel()[0]) and drop != 0.0:
        raise UnsupportedOpError(f"Dropout: training_mode with ratio {drop} is random, not supported")
    return data.copy(), np.ones(data.shape, dtype=bool)


def expand(input: np.ndarray, shape: Ints) -> np.ndarray:
    """Expand: bidirectional broadcast of input against shape."""
    try:
        out_shape = np.broadcast_shapes(input.shape, tuple(_ints(shape)))
    except ValueError as exc:
        raise ModelError(f"Expand: input shape {input.shape} does not broadcast to {_ints(shape)}") from exc
    return np.broadcast_to(input, out_shape).copy()


def tile(input: np.ndarray, repeats: Ints) -> np.ndarray:
    """Tile: repeat input repeats[i] times along axis i."""
    reps = _ints(repeats)
    if len(reps) != input.ndim:
        raise ModelError(f"Tile: repeats has {len(reps)} entries, expected input rank {input.ndim}")
    return np.tile(input, reps)


def eye_like(input: np.ndarray, *, dtype: int | None = None, k: int) -> np.ndarray:
    """EyeLike: a 2-D identity with ones on diagonal k, in `dtype` or the input's type."""
    if input.ndim != 2:
        raise ModelError(f"EyeLike: input must be 2-D, got shape {input.shape}")
    out_dtype = input.dtype if dtype is None else dtypes.to_numpy(dtype)
    return np.eye(*input.shape, k=k, dtype=out_dtype)


OPS = {
    "Reshape": {5: reshape},  # opset 1 took shape as an attribute, with consumed_inputs
    "Flatten": flatten,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Shape": shape,
    "Size": size,
    "ConstantOfShape": constant_of_shape,
    "Range": range_,
    "Constant": constant,
    "Identity": identity,
    "Dropout": {6: dropout},
    "Expand": expand,
    "Tile": {6: tile},
    "EyeLike": eye_like,
}
