"""Data movement ops: Concat, Split, Slice, Transpose, Pad, DepthToSpace, Trilu, OneHot, Unique..."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clmace.core.errors import ModelError

# Attribute lists (older opsets) and int64 inputs (newer opsets) arrive under the same name.
Ints = np.ndarray | Sequence[int]


def _ints(values: Ints) -> list[int]:
    """A 1-D list of Python ints from an attribute list or an int64 tensor."""
    return [int(v) for v in np.asarray(values, dtype=np.int64).ravel()]


def _axis(op: str, axis: int, rank: int) -> int:
    """A non-negative axis, checked against rank."""
    if not -rank <= axis < rank:
        raise ModelError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def concat(*inputs: np.ndarray, axis: int) -> np.ndarray:
    """Concat along axis."""
    if not inputs:
        raise ModelError("Concat: expected at least one input, got none")
    return np.concatenate(inputs, axis=_axis("Concat", axis, inputs[0].ndim))


def split(
    input: np.ndarray, split: Ints | None = None, *, axis: int = 0, num_outputs: int | None = None
) -> tuple[np.ndarray, ...]:
    """Split into pieces of sizes `split`, or into num_outputs parts (the last one may be smaller).

    Before opset 18 the output count is the node's output count: the runtime passes it as num_outputs.
    """
    ax = _axis("Split", axis, input.ndim)
    dim = input.shape[ax]
    if split is not None and len(split) > 0:
        sizes = _ints(split)
        if sum(sizes) != dim or min(sizes) < 0:
            raise ModelError(f"Split: split sizes {sizes} must be >= 0 and sum to dim {dim} of axis {ax}")
    elif num_outputs:
        chunk = -(-dim // num_outputs)
        sizes = [chunk] * (num_outputs - 1) + [dim - chunk * (num_outputs - 1)]
        if sizes[-1] < 0:
            raise ModelError(f"Split: cannot split dim {dim} of axis {ax} into {num_outputs} outputs")
    else:
        raise ModelError("Split: expected input/attribute split or attribute num_outputs, got neither")
    bounds = np.cumsum(sizes)[:-1]
    return tuple(part.copy() for part in np.split(input, bounds, axis=ax))


def _slice_bounds(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX start/end clamping for one axis as a Python slice."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    # end == -1 means "through index 0"; Python would read -1 as the last element.
    return slice(start, None if end < 0 else end, step)


def slice_(
    data: np.ndarray, starts: Ints, ends: Ints, axes: Ints | None = None, steps: Ints | None = None
) -> np.ndarray:
    """Slice; starts/ends/axes are attributes in opset 1, inputs from opset 10 (with steps)."""
    begin, stop = _ints(starts), _ints(ends)
    ax = list(range(len(begin))) if axes is None else [_axis("Slice", a, data.ndim) for a in _ints(axes)]
    step = [1] * len(begin) if steps is None else _ints(steps)
    if not len(begin) == len(stop) == len(ax) == len(step):
        raise ModelError(f"Slice: starts/ends/axes/steps lengths differ: {begin}, {stop}, {ax}, {step}")
    if 0 in step:
        raise ModelError(f"Slice: steps must be non-zero, got {step}")
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(begin, stop, ax, step, strict=True):
        index[a] = _slice_bounds(s, e, st, data.shape[a])
    return data[tuple(index)].copy()


def transpose(data: np.ndarray, *, perm: Sequence[int] | None = None) -> np.ndarray:
    """Transpose; default perm reverses the axes."""
    if perm is not None and sorted(perm) != list(range(data.ndim)):
        raise ModelError(f"Transpose: perm {list(perm)} is not a permutation of {data.ndim} axes")
    return np.transpose(data, perm).copy()


def pad(
    data: np.ndarray, pads: Ints | None = None, constant_value: np.ndarray | None = None,
    axes: Ints | None = None, *, mode: str, value: float = 0.0, paddings: Ints | None = None,
) -> np.ndarray:
    """Pad (modes constant/reflect/edge/wrap); negative pads crop. Attributes pads/value before opset 11."""
    widths = _ints(pads if pads is not None else paddings if paddings is not None else [])
    ax = list(range(data.ndim)) if axes is None else [_axis("Pad", a, data.ndim) for a in _ints(axes)]
    if len(widths) != 2 * len(ax):
        raise ModelError(f"Pad: pads has {len(widths)} entries, expected 2 * {len(ax)} axes")
    before, after = [0] * data.ndim, [0] * data.ndim
    for i, a in enumerate(ax):
        before[a], after[a] = widths[i], widths[i + len(ax)]
    # Negative pads crop first; what remains is grown by the positive pads.
    crop = [slice(-min(b, 0), dim + min(a, 0)) for b, a, dim in zip(before, after, data.shape, strict=True)]
    cropped = data[tuple(crop)]
    grow = [(max(b, 0), max(a, 0)) for b, a in zip(before, after, strict=True)]
    if mode == "constant":
        fill = value if constant_value is None or np.size(constant_value) == 0 else constant_value
        return np.pad(cropped, grow, mode="constant", constant_values=np.asarray(fill).ravel()[0])
    if mode in ("reflect", "edge", "wrap"):
        return np.pad(cropped, grow, mode=mode)
    raise ModelError(f"Pad: attribute mode must be constant/reflect/edge/wrap, got {mode!r}")


def depth_to_space(input: np.ndarray, *, blocksize: int, mode: str = "DCR") -> np.ndarray:
    """DepthToSpace (NCHW), DCR or CRD channel order."""
    n, c, h, w = input.shape
    b = blocksize
    if c % (b * b):
        raise ModelError(f"DepthToSpace: channels {c} not divisible by blocksize^2 = {b * b}")
    if mode == "DCR":
        tmp = input.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        tmp = input.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ModelError(f"DepthToSpace: attribute mode must be DCR or CRD, got {mode!r}")
    return tmp.reshape(n, c // (b * b), h * b, w * b)


def space_to_depth(input: np.ndarray, *, blocksize: int, mode: str = "DCR") -> np.ndarray:
    """SpaceToDepth (NCHW), the inverse of DepthToSpace in the same mode."""
    n, c, h, w = input.shape
    b = blocksize
    if h % b or w % b:
        raise ModelError(f"SpaceToDepth: spatial dims {h}x{w} not divisible by blocksize {b}")
    tmp = input.reshape(n, c, h // b, b, w // b, b)
    if mode == "DCR":
        tmp = tmp.transpose(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        tmp = tmp.transpose(0, 1, 3, 5, 2, 4)
    else:
        raise ModelError(f"SpaceToDepth: attribute mode must be DCR or CRD, got {mode!r}")
    return tmp.reshape(n, c * b * b, h // b, w // b)


def trilu(input: np.ndarray, k: np.ndarray | None = None, *, upper: int) -> np.ndarray:
    """Trilu: keep the upper (or lower) triangle of the last two dims, offset by diagonal k."""
    diag = 0 if k is None else int(np.asarray(k).ravel()[0])
    return np.triu(input, diag) if upper else np.tril(input, diag)


def compress(input: np.ndarray, condition: np.ndarray, *, axis: int | None = None) -> np.ndarray:
    """Compress: keep slices where condition is true (flattened input when axis is absent)."""
    cond = np.asarray(condition, dtype=bool).ravel()
    if axis is None:
        return np.compress(cond, input.ravel())
    return np.compress(cond, input, axis=_axis("Compress", axis, input.ndim))


def reverse_sequence(
    input: np.ndarray, sequence_lens: np.ndarray, *, batch_axis: int, time_axis: int
) -> np.ndarray:
    """ReverseSequence: reverse the first sequence_lens[b] steps along time_axis for each batch b."""
    out = input.copy()
    for b, length in enumerate(_ints(sequence_lens)):
        src = [slice(None)] * input.ndim
        src[batch_axis], src[time_axis] = b, slice(length - 1, None, -1) if length > 0 else slice(0, 0)
        dst = [slice(None)] * input.ndim
        dst[batch_axis], dst[time_axis] = b, slice(0, length)
        out[tuple(dst)] = input[tuple(src)]
    return out


def non_zero(x: np.ndarray) -> np.ndarray:
    """NonZero -> int64 [rank, count] indices, row-major order."""
    return np.array(np.nonzero(np.atleast_1d(x) if x.ndim == 0 else x), dtype=np.int64)


def one_hot(indices: np.ndarray, depth: np.ndarray, values: np.ndarray, *, axis: int) -> np.ndarray:
    """OneHot: values[1] where the new axis equals the index (negatives count from depth), else values[0]."""
    size = int(np.asarray(depth).ravel()[0])
    ax = _axis("OneHot", axis, indices.ndim + 1)
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + size, idx)
    shape = [1] * (indices.ndim + 1)
    shape[ax] = size
    hot = np.expand_dims(idx, ax) == np.arange(size).reshape(shape)
    return np.where(hot, values[1], values[0]).astype(values.dtype)


def unique(
    X: np.ndarray, *, axis: int | None = None, sorted: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique -> (Y, indices, inverse_indices, counts), sorted or in order of first occurrence."""
    ax = None if axis is None else _axis("Unique", axis, X.ndim)
    data = X.ravel() if ax is None else X
    y, first, inverse, counts = np.unique(data, return_index=True, return_inverse=True, return_counts=True,
                                          axis=ax if ax is not None else None)
    inverse = inverse.ravel()
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y = np.take(y, order, axis=0 if ax is None else ax)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    as64 = [np.asarray(a, dtype=np.int64) for a in (first, inverse, counts)]
    return (y, *as64)


OPS = {
    "Concat": {4: concat},
    "Split": split,
    "Slice": slice_,
    "Transpose": transpose,
    "Pad": pad,
    "DepthToSpace": depth_to_space,
    "SpaceToDepth": space_to_depth,
    "Trilu": trilu,
    "Compress": compress,
    "ReverseSequence": reverse_sequence,
    "NonZero": non_zero,
    "OneHot": one_hot,
    "Unique": unique,
}
