"""Data-movement ops lowered to kernels/data.cl.

Ops that only move elements (Transpose, Slice, Expand, Split, Tile, Pad, DepthToSpace, Resize-nearest,
Gather by constant indices...) are planned by running the NumPy reference op once on element numbers:
the result says where each output element comes from. An affine answer becomes a strided copy; any other
becomes an index map, so the kernels follow the reference exactly, attribute quirks included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clmace.backends.opencl.lower.eltwise import ROW_MIN, broadcast_strides, collapse, dims6, row_range
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.errors import ModelError
from clmace.core.ir import Node
from clmace.ops import REGISTRY
from clmace.ops.call import call_node, resolve

FILE = "data.cl"
ELT = {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}
ELT_NP = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# Largest map made at plan time (elements); bigger non-affine moves stay on the host.
MAX_MAP = 1 << 24
PROBED = ("Transpose", "Slice", "Expand", "Split", "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Resize",
          "Upsample", "Gather", "GatherElements", "GatherND", "ReverseSequence", "Trilu", "Compress")


def elt_type(p: Plan, name: str) -> str:
    """The copy kernels' element type for a value: unsigned ints by byte width."""
    size = p.stored(name).itemsize
    if size not in ELT:
        raise NotLowerable(f"no copy kernel for {size}-byte elements")
    return ELT[size]


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    """Element strides of a row-major tensor of this shape."""
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return list(reversed(strides))


def copy_launch(node: Node, p: Plan, src: str, dst: str, shape: tuple[int, ...], src_strides: list[int],
                src_off: int, dst_strides: list[int], dst_off: int, bufs: tuple[Any, Any] | None = None
                ) -> list[Launch]:
    """A strided copy of `shape` elements from src to dst (bufs: other buffers of dst's element type)."""
    sbuf, dbuf = bufs or (p.buf(src), p.buf(dst))
    if len(shape) > 6:
        raise NotLowerable(f"rank {len(shape)} > 6")
    dims, (ss, ds) = collapse(tuple(shape), [list(src_strides), list(dst_strides)])
    pad = 6 - len(dims)
    meta = dims6(tuple(dims)) + [0] * pad + ss + [src_off] + [0] * pad + ds + [dst_off]
    n = _size(shape)
    if len(dims) >= 2 and dims[-1] >= ROW_MIN:
        row = dims[-1]
        gws, lws, exact = row_range(row, n)
        kern = p.kernel(FILE, "copy_nd", {"ELT": elt_type(p, dst), "ROWS": None, "RANK": len(dims), "ROW_SS": ss[-1],
                                            "ROW_DS": ds[-1], **exact})
        return p.launch(node, kern, [sbuf, dbuf, p.ints(meta), row], gws, lws)
    kern = p.kernel(FILE, "copy_nd", {"ELT": elt_type(p, dst), "RANK": len(dims)})
    return p.launch(node, kern, [sbuf, dbuf, p.ints(meta), n], (n,), (64,))


def _affine(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(offset, strides) when idx[c] == offset + sum(c_d * strides_d) for every index c, else None."""
    if idx.size == 0:
        return 0, [0] * idx.ndim
    offset = int(idx.reshape(-1)[0])
    strides = []
    for d in range(idx.ndim):
        if idx.shape[d] > 1:
            unit = [0] * idx.ndim
            unit[d] = 1
            strides.append(int(idx[tuple(unit)]) - offset)
        else:
            strides.append(0)
    grid = np.full(idx.shape, offset, np.int64)
    for d, s in enumerate(strides):
        shape = [1] * idx.ndim
        shape[d] = idx.shape[d]
        grid = grid + (np.arange(idx.shape[d], dtype=np.int64) * s).reshape(shape)
    return (offset, strides) if np.array_equal(grid, idx) else None


def _probe_args(node: Node, p: Plan) -> tuple[list[np.ndarray | None], float]:
    """Reference-op arguments with element numbers (+1, so 0 marks a fill) as data; and the fill value."""
    data = node.inputs[0]
    shape = p.shape(data)
    numbers = np.arange(1, _size(shape) + 1, dtype=np.float64).reshape(shape)
    args: list[np.ndarray | None] = [numbers]
    fill = 0.0
    for i, name in enumerate(node.inputs[1:], 1):
        if not name:
            args.append(None)
            continue
        value = p.const(name)
        if value is None:
            raise NotLowerable(f"{node.op_type} input {i} ({name}) is computed at run time")
        if node.op_type == "Pad" and i == 2:
            fill = float(np.asarray(value).reshape(-1)[0]) if value.size else 0.0
            value = np.zeros_like(value, dtype=np.float64)
        args.append(value)
    if node.op_type == "Pad" and p.graph.opset < 11:
        fill = float(node.attrs.get("value", 0.0))
    return args, fill


def lower_probed(node: Node, p: Plan) -> list[Launch]:
    """Any pure element-moving op whose other inputs are constants: strided copy or index map."""
    if node.op_type in ("Resize", "Upsample") and (node.attrs.get("mode", "nearest") != "nearest"
                                                   or node.attrs.get("coordinate_transformation_mode")
                                                   == "tf_crop_and_resize"):
        raise NotLowerable("Resize: only nearest mode runs on the device")
    args, fill = _probe_args(node, p)
    attrs = dict(node.attrs)
    if node.op_type == "Pad" and p.graph.opset < 11:
        attrs["value"] = 0.0
    probe = Node(node.name, node.op_type, node.inputs, node.outputs, attrs, node.domain)
    results = call_node(resolve(REGISTRY, probe, p.graph.opset), probe, args)
    launches: list[Launch] = []
    for name, numbers in zip(node.outputs, results):
        if not name:
            continue
        idx = np.rint(numbers).astype(np.int64) - 1
        if tuple(idx.shape) != p.shape(name):
            raise NotLowerable(f"{node.op_type}: probe shape {idx.shape} differs from {p.shape(name)}")
        affine = _affine(idx) if idx.size == 0 or idx.min() >= 0 else None
        if affine is not None and idx.ndim <= 6:
            off, strides = affine
            launches += copy_launch(node, p, node.inputs[0], name, tuple(idx.shape), strides, off,
                                    contiguous_strides(tuple(idx.shape)), 0)
            continue
        if idx.size > MAX_MAP:
            raise NotLowerable(f"{node.op_type}: index map of {idx.size} elements is too large")
        elt = elt_type(p, name)
        fill_bits = np.asarray(fill, dtype=p.stored(name)).reshape(1).view(ELT_NP[p.stored(name).itemsize])[0]
        kern = p.kernel(FILE, "index_map", {"ELT": elt})
        mapping = p.upload(idx.astype(np.int32).reshape(-1), count=False)
        launches += p.launch(node, kern, [p.buf(node.inputs[0]), p.buf(name), mapping, fill_bits, idx.size],
                             (idx.size,), (64,))
    return launches


def lower_gather(node: Node, p: Plan) -> list[Launch]:
    """Gather: probed when the indices are constant, else the gather kernel."""
    if p.const(node.inputs[1]) is not None:
        return lower_probed(node, p)
    data, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape = p.shape(data)
    axis = int(node.attrs.get("axis", 0)) % max(len(shape), 1)
    if p.dtype(indices) not in (np.int32, np.int64):
        raise NotLowerable("Gather indices must be int32 or int64")
    idx_type = "int" if p.dtype(indices) == np.int32 else "long"
    kern = p.kernel(FILE, "gather", {"ELT": elt_type(p, data), "IDX": idx_type})
    inner = _size(shape[axis + 1:])
    n = _size(p.shape(y))
    args = [p.buf(data), p.buf(indices), p.buf(y), shape[axis], _size(p.shape(indices)), inner, n]
    return p.launch(node, kern, args, (n,), (64,))


def lower_concat(node: Node, p: Plan) -> list[Launch]:
    """Concat: one strided copy per input into its slab of the output."""
    y = node.outputs[0]
    out = p.shape(y)
    axis = int(node.attrs["axis"]) % len(out)
    dst_strides = contiguous_strides(out)
    launches: list[Launch] = []
    start = 0
    for name in node.inputs:
        if not name:
            continue
        shape = p.shape(name)
        if _size(shape):
            launches += copy_launch(node, p, name, y, shape, contiguous_strides(shape), 0, dst_strides,
                                    start * dst_strides[axis])
        start += shape[axis]
    return launches


def lower_where(node: Node, p: Plan) -> list[Launch]:
    """Where(cond, a, b) with three-way broadcasting."""
    cond, a, b = node.inputs
    y = node.outputs[0]
    if p.dtype(cond) != np.bool_ or p.stored(a) != p.stored(b):
        raise NotLowerable("Where needs a bool condition and equal branch types")
    out = p.shape(y)
    n = _size(out)
    strides = [broadcast_strides(p.shape(v), out)[6 - len(out):] for v in (cond, a, b)]
    dims, steps = collapse(out, strides)
    meta = dims6(tuple(dims)) + [v for st in steps for v in [0] * (6 - len(st)) + st]
    if len(dims) >= 2 and dims[-1] >= ROW_MIN:
        gws, lws, exact = row_range(dims[-1], n)
        kern = p.kernel(FILE, "where", {"ELT": elt_type(p, y), "ROWS": None, "RANK": len(dims), "ROW_SC": steps[0][-1],
                                             "ROW_SA": steps[1][-1], "ROW_SB": steps[2][-1], **exact})
        return p.launch(node, kern, [p.buf(cond), p.buf(a), p.buf(b), p.buf(y), p.ints(meta), dims[-1]], gws, lws)
    kern = p.kernel(FILE, "where", {"ELT": elt_type(p, y), "RANK": len(dims)})
    return p.launch(node, kern, [p.buf(cond), p.buf(a), p.buf(b), p.buf(y), p.ints(meta), n], (n,), (64,))


def _idx_type(p: Plan, name: str, what: str, floats: bool = False) -> str:
    """OpenCL type of an index tensor: int32 or int64 (or float for OneHot, whose indices may be)."""
    types = {np.dtype(np.int32): "int", np.dtype(np.int64): "long",
             **({np.dtype(np.float32): "float"} if floats and not p.half else {})}
    if p.dtype(name) not in types:
        raise NotLowerable(f"{what} indices of type {p.dtype(name)} have no kernel")
    return types[p.dtype(name)]


def _copy_all(node: Node, p: Plan, src: str, dst: str) -> list[Launch]:
    shape = p.shape(dst)
    return copy_launch(node, p, src, dst, (_size(shape),), [1], 0, [1], 0) if _size(shape) else []


def lower_scatter_elements(node: Node, p: Plan) -> list[Launch]:
    """ScatterElements (and the old Scatter) without reduction: copy data, then one work-item per update."""
    if node.attrs.get("reduction", "none") != "none":
        raise NotLowerable(f"ScatterElements reduction {node.attrs['reduction']!r} has no kernel")
    data, indices, updates = node.inputs[:3]
    y = node.outputs[0]
    shape, ishape = p.shape(data), p.shape(indices)
    if len(shape) > 6:
        raise NotLowerable(f"rank {len(shape)} > 6")
    axis = int(node.attrs.get("axis", 0)) % max(len(shape), 1)
    pad = 6 - len(shape)
    meta = dims6(ishape) + [0] * pad + contiguous_strides(shape)
    kern = p.kernel(FILE, "scatter_elements", {"ELT": elt_type(p, y), "IDX": _idx_type(p, indices, node.op_type)})
    n = _size(ishape)
    args = [p.buf(indices), p.buf(updates), p.buf(y), p.ints(meta), axis + pad, shape[axis], n]
    return _copy_all(node, p, data, y) + p.launch(node, kern, args, (n,), (64,))


def lower_scatter_nd(node: Node, p: Plan) -> list[Launch]:
    """ScatterND without reduction: copy data, then one work-item per update element."""
    if node.attrs.get("reduction", "none") != "none":
        raise NotLowerable(f"ScatterND reduction {node.attrs['reduction']!r} has no kernel")
    data, indices, updates = node.inputs[:3]
    y = node.outputs[0]
    shape, k = p.shape(data), p.shape(indices)[-1]
    if k > len(shape):
        raise ModelError(f"node {node.name!r} (ScatterND): indices address {k} axes of a rank-{len(shape)} input")
    strides = contiguous_strides(shape)
    meta = list(shape[:k]) + strides[:k]
    kern = p.kernel(FILE, "scatter_nd", {"ELT": elt_type(p, y), "IDX": _idx_type(p, indices, "ScatterND")})
    n = _size(p.shape(updates))
    args = [p.buf(indices), p.buf(updates), p.buf(y), p.ints(meta), k, _size(shape[k:]), n]
    return _copy_all(node, p, data, y) + p.launch(node, kern, args, (n,), (64,))


def lower_one_hot(node: Node, p: Plan) -> list[Launch]:
    """OneHot with its depth known at plan time (it sets the output shape)."""
    indices, depth, values = node.inputs[:3]
    y = node.outputs[0]
    out = p.shape(y)
    axis = int(node.attrs.get("axis", -1)) % len(out)
    kern = p.kernel(FILE, "one_hot", {"ELT": elt_type(p, y), "IDX": _idx_type(p, indices, "OneHot", floats=True)})
    n = _size(out)
    args = [p.buf(indices), p.buf(values), p.buf(y), out[axis], _size(out[axis + 1:]), n]
    return p.launch(node, kern, args, (n,), (64,))


LOWER = {**{op: lower_probed for op in PROBED}, "Gather": lower_gather, "Concat": lower_concat,
         "Where": lower_where, "ScatterElements": lower_scatter_elements, "Scatter": lower_scatter_elements,
         "ScatterND": lower_scatter_nd, "OneHot": lower_one_hot}
