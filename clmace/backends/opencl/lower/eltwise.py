"""Element-wise ops lowered to kernels/eltwise.cl and kernels/cast.cl."""

from __future__ import annotations

from typing import Any

import numpy as np

from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node

FILE = "eltwise.cl"
# A broadcast (binary or chain) whose merged last dim is at least this long runs over rows: that dim as the
# launch's dimension 0, so that its loads are affine in the work-item (PoCL vectorises those, not gathers).
ROW_MIN = 16


def exact_group(count: int) -> int | None:
    """The largest work-group size up to 64 that divides count (16 at least, or count itself below 16)."""
    for size in range(min(64, count), min(16, count) - 1, -1):
        if count % size == 0:
            return size
    return None


def row_range(row: int, n: int) -> tuple[tuple[int, int], tuple[int, int], dict[str, Any]]:
    """(gws, lws, defines) of a launch over n elements as rows of `row`: a row along dimension 0, rows along
    1; with a group that divides the row, -DEXACT_RANGE (no bounds check: see common.cl)."""
    size = exact_group(row)
    if size is None:
        return (row, n // row), (min(64, 1 << (row - 1).bit_length()), 1), {}
    return (row, n // row), (size, 1), {"EXACT_RANGE": None}


def flat_range(n: int) -> tuple[tuple[int], tuple[int], dict[str, Any]]:
    """(gws, lws, defines) of a one-dimensional launch over n elements, exact where a group divides n."""
    size = exact_group(n)
    return ((n,), (size,), {"EXACT_RANGE": None}) if size is not None else ((n,), (64,), {})


# OpenCL C names of the element types the arithmetic kernels accept.
CL_TYPES = {np.dtype(np.int8): "char", np.dtype(np.uint8): "uchar", np.dtype(np.int16): "short",
            np.dtype(np.uint16): "ushort", np.dtype(np.int32): "int", np.dtype(np.uint32): "uint",
            np.dtype(np.int64): "long", np.dtype(np.uint64): "ulong", np.dtype(np.bool_): "uchar",
            np.dtype(np.float32): "float"}
FLOAT_ONLY = {"Reciprocal", "Floor", "Ceil", "Round", "Exp", "Log", "Sqrt", "Erf", "Sin", "Cos", "Tan", "Asin",
              "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "LeakyRelu", "Sigmoid", "HardSigmoid",
              "HardSwish", "Swish", "Tanh", "Gelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
              "ThresholdedRelu", "IsNaN", "IsInf"}
UNARY = {"Abs": "ABS", "Neg": "NEG", "Sign": "SIGN", "Relu": "RELU", "Clip": "CLIP", "Not": "NOT",
         "Identity": "COPY", **{op: "".join("_" + ch if ch.isupper() else ch for ch in op).lstrip("_").upper()
                                for op in FLOAT_ONLY}}
UNARY.update({"IsNaN": "ISNAN", "IsInf": "ISINF", "HardSwish": "HARD_SWISH", "HardSigmoid": "HARD_SIGMOID",
              "LeakyRelu": "LEAKY_RELU", "ThresholdedRelu": "THRESHOLDED_RELU"})
ARITH = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Pow": "POW", "Max": "MAX", "Min": "MIN",
         "Sum": "SUM", "Mean": "MEAN", "PRelu": "PRELU", "Mod": "MOD"}
COMPARE = {"Equal": "EQUAL", "Less": "LESS", "Greater": "GREATER", "LessOrEqual": "LESS_OR_EQUAL",
           "GreaterOrEqual": "GREATER_OR_EQUAL"}
LOGIC = {"And": "AND", "Or": "OR", "Xor": "XOR"}


def type_defines(p: Plan, name: str) -> dict[str, Any]:
    """T/F (or HALF) options for arithmetic on a value's storage type; NotLowerable if none fits."""
    stored = p.stored(name)
    if stored == np.float16:
        return {"HALF": None}
    if stored not in CL_TYPES:
        raise NotLowerable(f"no arithmetic kernel for {stored} tensors")
    cl_type = CL_TYPES[stored]
    return {} if cl_type == "float" else {"T": cl_type, "F": cl_type, "INT_MATH": None}


def _size(p: Plan, name: str) -> int:
    return int(np.prod(p.shape(name), dtype=np.int64))


def _lws(p: Plan) -> tuple[int]:
    return (64,)


def lower_unary(node: Node, p: Plan) -> list[Launch]:
    """One work-item per element; parameters (alpha, bounds) as arguments."""
    x, y = node.inputs[0], node.outputs[0]
    if node.op_type == "Clip" and p.graph.opset >= 11 and any(p.const(b) is None for b in node.inputs[1:3] if b):
        return _clip_bufs(node, p)
    op = UNARY[node.op_type]
    is_float = p.dtype(x).kind == "f"
    if (node.op_type in FLOAT_ONLY or node.op_type == "Clip") and not is_float:
        raise NotLowerable(f"{node.op_type} on {p.dtype(x)} has no kernel")
    if node.op_type == "Not" and p.dtype(x) != np.bool_:
        raise NotLowerable("Not needs bool")
    a = node.attrs
    p0, p1 = 0.0, 0.0
    if node.op_type in ("LeakyRelu", "Elu", "Celu", "ThresholdedRelu"):
        p0 = float(a.get("alpha", {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0}.get(node.op_type, 1.0)))
    elif node.op_type == "Selu":
        p0, p1 = float(a.get("alpha", 1.67326319217681884765625)), float(a.get("gamma", 1.05070102214813232421875))
    elif node.op_type == "HardSigmoid":
        p0, p1 = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    elif node.op_type == "Swish":
        p0 = float(a.get("alpha", 1.0))
    elif node.op_type == "IsInf":
        p0, p1 = float(a.get("detect_negative", 1)), float(a.get("detect_positive", 1))
    elif node.op_type == "Gelu" and a.get("approximate", "none") == "tanh":
        op = "GELU_TANH"
    elif node.op_type == "Clip":
        p0, p1 = _clip_bounds(node, p)
    defines = {**type_defines(p, x), f"OP_{op}": None}
    if node.op_type in ("IsNaN", "IsInf"):
        defines["BOOL_OUT"] = None
    kern = p.kernel(FILE, "unary", defines)
    return p.launch(node, kern, [p.buf(x), p.buf(y), _size(p, y), p0, p1], (_size(p, y),), _lws(p))


def _clip_bufs(node: Node, p: Plan) -> list[Launch]:
    """Clip with a bound computed at run time (e.g. the peak minus a floor in a log-mel front end): the bounds
    are read from their single-element tensors by the kernel, so nothing goes back to the host."""
    x, y = node.inputs[0], node.outputs[0]
    bounds = [node.inputs[i] if len(node.inputs) > i else "" for i in (1, 2)]
    for b in bounds:
        if b and _size(p, b) != 1:
            raise NotLowerable(f"Clip bound {b!r} has {_size(p, b)} elements, not 1")
    kern = p.kernel(FILE, "clip_bufs", {**type_defines(p, x), "CLIP_BUFS": None})
    lo, hi = (p.buf(b) if b else p.buf(x) for b in bounds)  # an absent bound is never read
    args = [p.buf(x), p.buf(y), _size(p, y), lo, hi, int(bool(bounds[0])), int(bool(bounds[1]))]
    return p.launch(node, kern, args, (_size(p, y),), _lws(p))


def _clip_bounds(node: Node, p: Plan) -> tuple[float, float]:
    if p.graph.opset < 11:
        return float(node.attrs.get("min", -3.4e38)), float(node.attrs.get("max", 3.4e38))
    bounds = []
    for i, default in ((1, -3.4e38), (2, 3.4e38)):
        name = node.inputs[i] if len(node.inputs) > i else ""
        value = p.const(name) if name else np.array(default)
        if value is None:
            raise NotLowerable("Clip bounds computed at run time")
        bounds.append(float(np.clip(np.asarray(value, np.float64).reshape(-1)[0], -3.4e38, 3.4e38)))
    return bounds[0], bounds[1]


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of shape broadcast to out, padded to rank 6 (0 on broadcast axes)."""
    full = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for dim in reversed(full):
        strides.append(step if dim != 1 else 0)
        step *= dim
    strides = list(reversed(strides))
    return [0] * (6 - len(strides)) + strides


def collapse(shape: tuple[int, ...], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """The same element walk over fewer dimensions: dims of size 1 dropped, and neighbours merged where every
    operand steps through them as one (contiguously, or both broadcast). Each kernel's coordinate loop then
    does one integer division per remaining dimension instead of six. Returns (dims, strides per operand),
    at least one dimension; strides given in shape's rank."""
    keep = [d for d in range(len(shape)) if shape[d] != 1]
    dims = [int(shape[d]) for d in keep] or [1]
    out = [[int(s[d]) for d in keep] or [0] for s in strides]
    k = len(dims) - 2
    while k >= 0:
        if all(st[k] == st[k + 1] * dims[k + 1] for st in out):
            dims[k + 1] *= dims[k]
            del dims[k]
            for st in out:
                del st[k]
        k -= 1
    return dims, out


def dims6(shape: tuple[int, ...]) -> list[int]:
    """shape padded with leading 1s to rank 6."""
    if len(shape) > 6:
        raise NotLowerable(f"rank {len(shape)} > 6")
    return [1] * (6 - len(shape)) + [int(d) for d in shape]


def lower_binary(node: Node, p: Plan) -> list[Launch]:
    """Broadcasting binary op: a flat kernel when shapes match (or one side is a single element)."""
    inputs = [i for i in node.inputs if i]
    if len(inputs) != 2:
        raise NotLowerable(f"{node.op_type} with {len(inputs)} inputs")
    a, b = inputs
    y = node.outputs[0]
    if p.dtype(a) != p.dtype(b):
        raise NotLowerable(f"{node.op_type} of {p.dtype(a)} and {p.dtype(b)}")
    op = node.op_type
    is_float = p.dtype(a).kind == "f"
    if op in LOGIC:
        if p.dtype(a) != np.bool_:
            raise NotLowerable(f"{op} needs bool")
        name = LOGIC[op]
    elif op in COMPARE:
        name = COMPARE[op]
    elif op == "Mod":
        fmod = node.attrs.get("fmod", 0)
        name = ("FMOD" if fmod else "MOD_FLOAT") if is_float else ("FMOD_INT" if fmod else "MOD_INT")
    else:
        if op in ("Pow", "Mean") and not is_float:
            raise NotLowerable(f"{op} on {p.dtype(a)} has no kernel")
        name = ARITH[op]
    defines = {**type_defines(p, a), f"OP_{name}": None}
    if op in COMPARE or op in LOGIC:
        defines["BOOL_OUT"] = None
    out = p.shape(y)
    n = _size(p, y)
    sa, sb = p.shape(a), p.shape(b)
    if (sa == out or _size(p, a) == 1) and (sb == out or _size(p, b) == 1):
        gws, lws, exact = flat_range(n)
        kern = p.kernel(FILE, "binary_flat", {**defines, **exact})
        args = [p.buf(a), p.buf(b), p.buf(y), n, int(_size(p, a) != 1 or n == 1), int(_size(p, b) != 1 or n == 1)]
        return p.launch(node, kern, args, gws, lws)
    dims, (st_a, st_b) = collapse(out, [broadcast_strides(sa, out)[6 - len(out):],
                                        broadcast_strides(sb, out)[6 - len(out):]])
    meta = dims6(tuple(dims)) + [0] * (6 - len(dims)) + st_a + [0] * (6 - len(dims)) + st_b
    if len(dims) >= 2 and dims[-1] >= ROW_MIN:  # rows: loads affine in the work-item (WALK_START)
        row = dims[-1]
        gws, lws, exact = row_range(row, n)
        kern = p.kernel(FILE, "binary", {**defines, **exact, "ROWS": None, "RANK": len(dims), "ROW_SA": st_a[-1],
                                              "ROW_SB": st_b[-1]})
        return p.launch(node, kern, [p.buf(a), p.buf(b), p.buf(y), p.ints(meta), row], gws, lws)
    kern = p.kernel(FILE, "binary", {**defines, "RANK": len(dims)})
    return p.launch(node, kern, [p.buf(a), p.buf(b), p.buf(y), p.ints(meta), n], (n,), _lws(p))


def lower_cast(node: Node, p: Plan) -> list[Launch]:
    """Cast between the numeric types (float64 and strings stay on the host)."""
    x, y = node.inputs[0], node.outputs[0]
    src, dst = p.stored(x), p.stored(y)
    defines: dict[str, Any] = {}
    for side, dt in (("I", src), ("O", dst)):
        if dt == np.float16:
            defines[f"T{side}"] = "half"
            defines["IN_HALF" if side == "I" else "OUT_HALF"] = None
        elif dt.name == "bfloat16":  # ml_dtypes' type, named rather than imported (it loads slowly)
            defines[f"T{side}"] = "ushort"
            defines["IN_BF16" if side == "I" else "OUT_BF16"] = None
        elif dt in CL_TYPES:
            defines[f"T{side}"] = CL_TYPES[dt]
        else:
            raise NotLowerable(f"Cast to or from {dt} has no kernel")
    if dst == np.bool_:
        defines["OUT_BOOL"] = None
    kern = p.kernel("cast.cl", "cast", defines)
    return p.launch(node, kern, [p.buf(x), p.buf(y), _size(p, y)], (_size(p, y),), _lws(p))


def lower_cast_like(node: Node, p: Plan) -> list[Launch]:
    """CastLike: a Cast to the second input's type."""
    return lower_cast(Node(node.name, "Cast", node.inputs[:1], node.outputs, {}), p)


LOWER = {**{op: lower_unary for op in UNARY}, **{op: lower_binary for op in (*ARITH, *COMPARE, *LOGIC)},
         "Cast": lower_cast, "CastLike": lower_cast_like}
LOWER.pop("Identity")  # Identity is a view
