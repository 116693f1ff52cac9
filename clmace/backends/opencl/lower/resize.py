"""Resize / Upsample in linear or cubic mode (any coordinate mode, antialias, tf_crop_and_resize): one launch
per resized axis, each output a weighted sum of a few taps; the taps and weights come from the reference op's
own per-axis maps (ops.resize.axis_maps), computed once at plan time."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl.lower.data import lower_probed
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node
from clmace.ops import resize as ref

FILE = "data.cl"


def _taps(m: ref.AxisMap, fill: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(index [out, K], weight [out, K], bias [out], K) of one axis map's non-zero weights."""
    mat = m.matrix
    if mat is None:  # nearest with tf_crop_and_resize: a one-tap matrix
        mat = np.zeros((m.out, int(m.index.max()) + 1 if m.index is not None and m.index.size else 1))  # type: ignore[union-attr]
        mat[np.arange(m.out), m.index] = 1.0
    k = max(1, int((mat != 0).sum(axis=1).max()))
    idx = np.zeros((m.out, k), np.int32)
    w = np.zeros((m.out, k), np.float32)
    for j, row in enumerate(mat):
        cols = np.flatnonzero(row)
        idx[j, : len(cols)], w[j, : len(cols)] = cols, row[cols]
    bias = np.zeros(m.out, np.float32)
    if m.outside is not None:
        w[m.outside] = 0.0
        bias[m.outside] = fill
    return idx, w, bias, k


def lower_resize(node: Node, p: Plan) -> list[Launch]:
    """Linear / cubic Resize (and Upsample) with constant roi, scales and sizes on float data (nearest:
    lower_probed)."""
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs.get("mode", "nearest") == "nearest" and \
            node.attrs.get("coordinate_transformation_mode") != "tf_crop_and_resize":
        return lower_probed(node, p)
    if p.dtype(x) not in (np.float32, np.float16):
        raise NotLowerable("Resize: interpolation of integer images (rounded back) runs on the host")
    shape = p.shape(x)
    a = dict(node.attrs)
    if node.op_type == "Resize" and p.graph.opset >= 11:
        consts = []
        for name in (node.inputs + ["", "", ""])[1:4]:
            value = p.const(name) if name else None
            if name and value is None:
                raise NotLowerable(f"Resize: {name} computed at run time")
            consts.append(None if value is None or value.size == 0 else value)
    else:  # Resize-10 and Upsample: scales only (an input, or Upsample-7's attribute), asymmetric coordinates
        scales = np.asarray(a["scales"], np.float32) if "scales" in a else p.const(node.inputs[1])
        if scales is None:
            raise NotLowerable(f"{node.op_type}: scales computed at run time")
        consts = [None, scales, None]
        a.update(mode="linear" if a["mode"] == "bilinear" else a["mode"], coordinate_transformation_mode="asymmetric",
                 nearest_mode="simple", cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0)
    axes = list(range(len(shape))) if a.get("axes") is None else [int(v) % len(shape) for v in a["axes"]]
    maps = ref.axis_maps(shape, axes, *consts, mode=a["mode"], coord_mode=a["coordinate_transformation_mode"],
                         nearest_mode=a["nearest_mode"], cubic_a=float(a["cubic_coeff_a"]),
                         antialias=bool(a.get("antialias", 0)), exclude_outside=bool(a["exclude_outside"]),
                         policy=a.get("keep_aspect_ratio_policy", "stretch"))
    if not maps or any(m.out == 0 for m in maps):
        raise NotLowerable("Resize: an identity or empty resize")
    launches: list[Launch] = []
    cur, src, dims = p.buf(x), x, list(shape)
    for i, m in enumerate(maps):
        kern = p.kernel(FILE, "resize_axis", p.float_defines(x))  # one each: a launch binds its arguments once
        idx, w, bias, k = _taps(m, float(a["extrapolation_value"]))
        size, dims[m.axis] = dims[m.axis], m.out
        n = int(np.prod(dims))
        last = i == len(maps) - 1
        dst = p.buf(y) if last else p.workspace(n * p.stored(src).itemsize)
        inner = int(np.prod(dims[m.axis + 1:]))
        args = [cur, dst, p.ints(idx.ravel().tolist()), p.upload(w, like=x, count=False),
                p.upload(bias, like=x, count=False),
                size, m.out, inner, k, n]
        launches += p.launch(node, kern, args, (n,), (64,) if p.is_gpu else None)
        cur = dst
    return launches


LOWER = {"Resize": lower_resize, "Upsample": lower_resize}
