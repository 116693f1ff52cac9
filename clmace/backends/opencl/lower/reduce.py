"""Pools, reductions, Softmax, LayerNormalization and BatchNormalization: kernels/pool.cl, reduce.cl."""

from __future__ import annotations

from typing import Any

import numpy as np

from clmace.backends.opencl.lower.eltwise import CL_TYPES, dims6
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node
from clmace.ops.conv import window_pads

REDUCE = {"ReduceSum": "SUM", "ReduceMean": "MEAN", "ReduceMax": "MAX", "ReduceMin": "MIN", "ReduceProd": "PROD",
          "ReduceSumSquare": "SUM_SQUARE", "ReduceL1": "L1", "ReduceL2": "L2", "ReduceLogSum": "LOG_SUM",
          "ReduceLogSumExp": "LOG_SUM_EXP"}


def _floats(p: Plan, node: Node) -> None:
    for name in [*node.inputs[:1], *node.outputs[:1]]:
        if p.dtype(name) not in (np.float32, np.float16):
            raise NotLowerable(f"{node.op_type} on {p.dtype(name)} has no kernel")


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return list(reversed(strides))


def lower_pool(node: Node, p: Plan) -> list[Launch]:
    """MaxPool / AveragePool on 1-D (NCL, pooled as height 1) or 2-D NCHW (MaxPool's Indices output stays on the
    host)."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    rank = len(p.shape(x))
    if rank not in (3, 4, 5) or len([o for o in node.outputs if o]) != 1:
        raise NotLowerable(f"{node.op_type}: only 1-D, 2-D and 3-D pooling without Indices runs on the device")
    if rank == 5:
        return _pool3d(node, p)
    one = rank == 3  # the same memory as (N, C, 1, L), with a 1 x k window
    n, c, h, w = (*p.shape(x)[:2], 1, p.shape(x)[2]) if one else p.shape(x)
    oh, ow = (1, p.shape(y)[2]) if one else p.shape(y)[2:]
    kernel = [int(k) for k in node.attrs["kernel_shape"]]
    strides = [int(s) for s in node.attrs.get("strides") or [1] * (rank - 2)]
    dil = [int(d) for d in node.attrs.get("dilations") or [1] * (rank - 2)]
    begin, end = window_pads(node.op_type, p.shape(x)[2:], kernel, strides, dil, node.attrs.get("pads"),
                             node.attrs.get("auto_pad", "NOTSET"))
    if one:
        kernel, strides, dil = [1, *kernel], [1, *strides], [1, *dil]
        begin, end = [0, *begin], [0, *end]
    kind = "POOL_MAX" if node.op_type == "MaxPool" else "POOL_AVG"
    kern = p.kernel("pool.cl", "pool2d", {**p.float_defines(x), kind: None})
    args = [p.buf(x), p.buf(y), h, w, oh, ow, kernel[0], kernel[1], strides[0], strides[1], dil[0], dil[1],
            begin[0], begin[1], end[0], end[1], int(node.attrs.get("count_include_pad", 0))]
    return p.launch(node, kern, args, (ow, oh, n * c), (1, 1, 1) if not p.is_gpu else (16, 4, 1))


def _pool3d(node: Node, p: Plan) -> list[Launch]:
    """MaxPool / AveragePool over (D, H, W): one work-item per output voxel."""
    x, y = node.inputs[0], node.outputs[0]
    n, c, *spatial = p.shape(x)
    out = p.shape(y)[2:]
    kernel = [int(k) for k in node.attrs["kernel_shape"]]
    strides = [int(s) for s in node.attrs.get("strides") or [1, 1, 1]]
    dil = [int(d) for d in node.attrs.get("dilations") or [1, 1, 1]]
    begin, end = window_pads(node.op_type, spatial, kernel, strides, dil, node.attrs.get("pads"),
                             node.attrs.get("auto_pad", "NOTSET"))
    geometry = [*spatial, *out]
    for axis in range(3):
        geometry += [kernel[axis], strides[axis], dil[axis], begin[axis], end[axis]]
    kind = "POOL_MAX" if node.op_type == "MaxPool" else "POOL_AVG"
    kern = p.kernel("pool.cl", "pool3d", {**p.float_defines(x), kind: None})
    args = [p.buf(x), p.buf(y), p.ints(geometry), int(node.attrs.get("count_include_pad", 0))]
    return p.launch(node, kern, args, (out[2], out[1], n * c * out[0]), (1, 1, 1) if not p.is_gpu else (16, 4, 1))


# Planes at least this large are pooled by a whole work-group on GPUs (smaller ones: one work-item each).
GPU_WG_POOL_MIN = 256


def lower_global_pool(node: Node, p: Plan) -> list[Launch]:
    """GlobalAveragePool / GlobalMaxPool: one work-item per (n, c) plane."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    shape = p.shape(x)
    planes, size = shape[0] * shape[1], _size(shape[2:])
    kind = "POOL_MAX" if node.op_type == "GlobalMaxPool" else "POOL_AVG"
    if p.is_gpu and size >= GPU_WG_POOL_MIN:  # big planes: a whole work-group per plane (local reduction)
        kern = p.kernel("pool.cl", "global_pool_wg", {**p.float_defines(x), kind: None})
        return p.launch(node, kern, [p.buf(x), p.buf(y), size, planes], (planes * 256,), (256,))
    kern = p.kernel("pool.cl", "global_pool", {**p.float_defines(x), kind: None})
    lws = (64,) if p.is_gpu else (8,)
    return p.launch(node, kern, [p.buf(x), p.buf(y), size, planes], (planes,), lws)


def _reduce_axes(node: Node, p: Plan, rank: int) -> list[int]:
    axes = node.attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        value = p.const(node.inputs[1])
        if value is None:
            raise NotLowerable(f"{node.op_type}: axes computed at run time")
        axes = value.reshape(-1).tolist()
    if axes is None or len(axes) == 0:
        return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted({int(a) % max(rank, 1) for a in axes})


# Integer reductions (an index bookkeeping in Paddle's decoders, a mask's length): exact in the element type.
INT_REDUCE = {"ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"}
INT_LIMITS = {"int": ("INT_MIN", "INT_MAX"), "long": ("LONG_MIN", "LONG_MAX"), "uint": ("0", "UINT_MAX"),
              "ulong": ("0", "ULONG_MAX"), "char": ("CHAR_MIN", "CHAR_MAX"), "uchar": ("0", "UCHAR_MAX"),
              "short": ("SHRT_MIN", "SHRT_MAX"), "ushort": ("0", "USHRT_MAX")}


def _reduce_defines(node: Node, p: Plan) -> dict[str, Any]:
    """Element-type options of a reduction: float (or half), or an integer type for INT_REDUCE."""
    x = node.inputs[0]
    if p.dtype(x).kind in "iu" and node.op_type in INT_REDUCE and p.dtype(x) == p.dtype(node.outputs[0]):
        cl_type = CL_TYPES[p.dtype(x)]
        lo, hi = INT_LIMITS[cl_type]
        return {"T": cl_type, "F": cl_type, "INT_RED": None, "RMIN": lo, "RMAX": hi}
    _floats(p, node)
    return p.float_defines(x)


def lower_reduce(node: Node, p: Plan) -> list[Launch]:
    """Reduce* over any axes: one work-item per output element walks the reduced sub-tensor."""
    defines = _reduce_defines(node, p)
    x, y = node.inputs[0], node.outputs[0]
    shape = p.shape(x)
    if len(shape) > 6:
        raise NotLowerable("rank > 6")
    axes = _reduce_axes(node, p, len(shape))
    strides = _strides(shape)
    kept = [1 if d in axes else shape[d] for d in range(len(shape))]
    reduced = [shape[d] for d in axes]
    kept_strides = [0 if d in axes else strides[d] for d in range(len(shape))]
    meta = (dims6(tuple(kept)) + [0] * (6 - len(shape)) + kept_strides
            + dims6(tuple(reduced)) + [0] * (6 - len(axes)) + [strides[d] for d in axes])
    n = _size(tuple(kept))
    kern = p.kernel("reduce.cl", "reduce", {**defines, f"RED_{REDUCE[node.op_type]}": None})
    return p.launch(node, kern, [p.buf(x), p.buf(y), p.ints(meta), n, _size(tuple(reduced))], (n,), (8,))


def lower_softmax(node: Node, p: Plan) -> list[Launch]:
    """Softmax / LogSoftmax over one axis (opset >= 13) or the flattened trailing axes (before)."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    shape = p.shape(x)
    rank = len(shape)
    default = -1 if p.graph.opset >= 13 else 1
    axis = int(node.attrs.get("axis", default)) % max(rank, 1)
    if p.graph.opset >= 13:
        d, inner = shape[axis], _size(shape[axis + 1:])
    else:
        d, inner = _size(shape[axis:]), 1
    n = _size(shape) // max(d, 1)
    defines = {**p.float_defines(x), **({"LOG": None} if node.op_type == "LogSoftmax" else {})}
    if inner == 1 and d >= 16 and not p.is_gpu:  # contiguous rows: vectors along the row (CPUs)
        kern = p.kernel("reduce.cl", "softmax_rows", defines)
        return p.launch(node, kern, [p.buf(x), p.buf(y), d, n], (n,), (8,))
    kern = p.kernel("reduce.cl", "softmax", defines)
    return p.launch(node, kern, [p.buf(x), p.buf(y), d, inner, n], (n,), (8,))


def lower_layer_norm(node: Node, p: Plan) -> list[Launch]:
    """LayerNormalization with constant scale/bias (Mean and InvStdDev outputs stay on the host)."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    if len([o for o in node.outputs if o]) != 1:
        raise NotLowerable("LayerNormalization's Mean/InvStdDev outputs")
    shape = p.shape(x)
    axis = int(node.attrs.get("axis", -1)) % len(shape)
    tail = shape[axis:]
    scale = p.const(node.inputs[1])
    bias = p.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else np.zeros(1, np.float32)
    if scale is None or bias is None:
        raise NotLowerable("LayerNormalization with scale or bias computed at run time")
    d = _size(tail)
    full_scale = np.broadcast_to(scale.astype(np.float32), tail).reshape(-1)
    full_bias = np.broadcast_to(bias.astype(np.float32), tail).reshape(-1)
    kern = p.kernel("reduce.cl", "layer_norm", p.float_defines(x))
    rows = _size(shape) // max(d, 1)
    args = [p.buf(x), p.upload(full_scale, like=x), p.upload(full_bias, like=x), p.buf(y), d, rows,
            float(node.attrs.get("epsilon", 1e-5))]
    return p.launch(node, kern, args, (rows,), (8,))


def lower_group_norm(node: Node, p: Plan) -> list[Launch]:
    """InstanceNormalization and GroupNormalization: one work-item per group row; scale and bias per channel
    (constants, or run-time tensors of C values)."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    shape = p.shape(x)
    if len(shape) < 3:
        raise NotLowerable(f"{node.op_type} on rank {len(shape)}")
    c, inner = shape[1], _size(shape[2:])
    groups = int(node.attrs.get("num_groups", c))
    params = []
    for name in node.inputs[1:3]:
        value = p.const(name)
        if value is not None and value.size == groups != c:  # GroupNormalization-18: per-group parameters
            value = np.repeat(value, c // groups)
        if value is None and _size(p.shape(name)) != c:
            raise NotLowerable(f"{node.op_type}: per-group {name} computed at run time")
        params.append(p.buf(name) if value is None else p.upload(value.astype(np.float32), like=x))
    d = (c // groups) * inner
    rows = shape[0] * groups
    kern = p.kernel("reduce.cl", "group_norm", p.float_defines(x))
    args = [p.buf(x), *params, p.buf(y), d, rows, groups, inner, float(node.attrs["epsilon"])]
    return p.launch(node, kern, args, (rows,), (8,))


def lower_batch_norm(node: Node, p: Plan) -> list[Launch]:
    """Inference BatchNormalization with constant statistics: y = x * scale[c] + shift[c]."""
    _floats(p, node)
    if node.attrs.get("training_mode", 0) or len([o for o in node.outputs if o]) != 1:
        raise NotLowerable("BatchNormalization in training mode")
    params = [p.const(name) for name in node.inputs[1:5]]
    if any(v is None for v in params):
        raise NotLowerable("BatchNormalization statistics computed at run time")
    gamma, beta, mean, var = (v.astype(np.float64) for v in params)  # type: ignore[union-attr]
    scale = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    shift = beta - mean * scale
    x, y = node.inputs[0], node.outputs[0]
    shape = p.shape(x)
    c = shape[1] if len(shape) > 1 else 1
    inner = _size(shape[2:])
    n = _size(shape)
    kern = p.kernel("reduce.cl", "channel_affine", p.float_defines(x))
    args = [p.buf(x), p.upload(scale.astype(np.float32), like=x), p.upload(shift.astype(np.float32), like=x),
            p.buf(y), c, inner, n]
    return p.launch(node, kern, args, (n,), (64,))


def _middle(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(D, inner, outer * inner) of shape seen as [outer][D][inner] around axis."""
    d, inner = shape[axis], _size(shape[axis + 1:])
    return d, inner, _size(shape) // max(d, 1)


def lower_arg(node: Node, p: Plan) -> list[Launch]:
    """ArgMax / ArgMin over float values: one work-item per output element walks the axis."""
    x, y = node.inputs[0], node.outputs[0]
    if p.dtype(x) not in (np.float32, np.float16):
        raise NotLowerable(f"{node.op_type} on {p.dtype(x)} has no kernel")
    shape = p.shape(x)
    if not shape or 0 in shape:
        raise NotLowerable(f"{node.op_type} of an empty or scalar tensor")
    d, inner, n = _middle(shape, int(node.attrs.get("axis", 0)) % len(shape))
    defines = {**p.float_defines(x), "ARG_REDUCE": None,
               **({"ARG_MAX": None} if node.op_type == "ArgMax" else {}),
               **({"LAST": None} if node.attrs.get("select_last_index", 0) else {})}
    kern = p.kernel("reduce.cl", "arg_reduce", defines)
    return p.launch(node, kern, [p.buf(x), p.buf(y), d, inner, n], (n,), (8,))


def lower_cumsum(node: Node, p: Plan) -> list[Launch]:
    """CumSum over float values along a constant axis: one work-item per line."""
    _floats(p, node)
    x, y = node.inputs[0], node.outputs[0]
    axis_value = p.const(node.inputs[1])
    shape = p.shape(x)
    if axis_value is None or not shape:
        raise NotLowerable("CumSum: axis computed at run time, or a scalar input")
    d, inner, n = _middle(shape, int(axis_value.reshape(-1)[0]) % len(shape))
    defines = {**p.float_defines(x), "CUMSUM": None, **({"EXCLUSIVE": None} if node.attrs.get("exclusive") else {}),
               **({"REVERSE": None} if node.attrs.get("reverse") else {})}
    kern = p.kernel("reduce.cl", "cumsum", defines)
    return p.launch(node, kern, [p.buf(x), p.buf(y), d, inner, n], (n,), (8,))


LOWER = {"MaxPool": lower_pool, "ArgMax": lower_arg, "ArgMin": lower_arg, "CumSum": lower_cumsum,
         "AveragePool": lower_pool, "GlobalAveragePool": lower_global_pool,
         "GlobalMaxPool": lower_global_pool, "Softmax": lower_softmax, "LogSoftmax": lower_softmax,
         "LayerNormalization": lower_layer_norm, "BatchNormalization": lower_batch_norm,
         "InstanceNormalization": lower_group_norm, "GroupNormalization": lower_group_norm,
         **{op: lower_reduce for op in REDUCE}}
