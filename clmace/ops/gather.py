"""Indexing ops: Gather, GatherElements, GatherND, ScatterND, ScatterElements (NumPy reference)."""

from __future__ import annotations

import numpy as np

from clmace.core.errors import ModelError

# ScatterND / ScatterElements `reduction` attribute -> ufunc whose .at handles repeated indices.
_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _axis(op: str, axis: int, rank: int) -> int:
    """A non-negative axis, checked against rank."""
    if not -rank <= axis < rank:
        raise ModelError(f"{op}: attribute axis={axis} is out of range for rank {rank}")
    return axis % rank


def _wrap(op: str, indices: np.ndarray, dim: int) -> np.ndarray:
    """Indices as int64 with negatives counted from the end; out-of-range is a ModelError."""
    idx = np.asarray(indices).astype(np.int64)
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise ModelError(f"{op}: indices must be in [{-dim}, {dim - 1}], got [{idx.min()}, {idx.max()}]")
    return np.where(idx < 0, idx + dim, idx)


def gather(data: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    """Gather slices along axis; output shape data[:axis] + indices.shape + data[axis+1:]."""
    ax = _axis("Gather", axis, data.ndim)
    return np.take(data, _wrap("Gather", indices, data.shape[ax]), axis=ax)


def gather_elements(data: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    """GatherElements: out[i][j][k] = data[index][j][k] with index = indices[i][j][k] on axis 0."""
    ax = _axis("GatherElements", axis, data.ndim)
    return np.take_along_axis(data, _wrap("GatherElements", indices, data.shape[ax]), axis=ax)


def gather_nd(data: np.ndarray, indices: np.ndarray, *, batch_dims: int = 0) -> np.ndarray:
    """GatherND: the last indices dim indexes the leading data dims after batch_dims shared dims."""
    b, k = batch_dims, indices.shape[-1]
    if data.shape[:b] != indices.shape[:b] or b + k > data.ndim:
        raise ModelError(
            f"GatherND: data {data.shape} and indices {indices.shape} do not fit batch_dims={b}"
        )
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape(batch, *data.shape[b:])
    flat_idx = indices.reshape(batch, -1, k).astype(np.int64)
    for j in range(k):
        flat_idx[..., j] = _wrap("GatherND", flat_idx[..., j], data.shape[b + j])
    rows = np.arange(batch).reshape(batch, 1)
    out = flat_data[(rows, *np.moveaxis(flat_idx, -1, 0))]
    return out.reshape(*indices.shape[:-1], *data.shape[b + k:])


def _scatter(op: str, out: np.ndarray, where: tuple, updates: np.ndarray, reduction: str) -> np.ndarray:
    """Write (or combine) updates into out at the index tuple `where`."""
    if reduction == "none":
        out[where] = updates
    elif reduction in _REDUCTIONS:
        _REDUCTIONS[reduction].at(out, where, updates)
    else:
        raise ModelError(f"{op}: attribute reduction must be none/add/mul/max/min, got {reduction!r}")
    return out


def scatter_nd(
    data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, reduction: str = "none"
) -> np.ndarray:
    """ScatterND: updates land at the data positions named by the last indices dim."""
    k = indices.shape[-1]
    flat_idx = indices.reshape(-1, k)
    where = tuple(_wrap("ScatterND", flat_idx[:, j], data.shape[j]) for j in range(k))
    flat_upd = updates.reshape(flat_idx.shape[0], *data.shape[k:])
    return _scatter("ScatterND", data.copy(), where, flat_upd, reduction)


def scatter_elements(
    data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, axis: int, reduction: str = "none"
) -> np.ndarray:
    """ScatterElements: out[..., indices[i, j], ...] (on axis) = updates[i, j]."""
    ax = _axis("ScatterElements", axis, data.ndim)
    if indices.shape != updates.shape:
        raise ModelError(f"ScatterElements: indices {indices.shape} and updates {updates.shape} differ")
    grid = list(np.indices(indices.shape, sparse=True))
    grid[ax] = _wrap("ScatterElements", indices, data.shape[ax])
    where = tuple(np.broadcast_arrays(*grid))
    return _scatter("ScatterElements", data.copy(), where, updates, reduction)


def scatter(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, axis: int) -> np.ndarray:
    """Scatter (deprecated in opset 11): ScatterElements without reduction."""
    return scatter_elements(data, indices, updates, axis=axis)


OPS = {
    "Gather": gather,
    "GatherElements": gather_elements,
    "GatherND": gather_nd,
    "ScatterND": scatter_nd,
    "ScatterElements": scatter_elements,
    "Scatter": scatter,
}
