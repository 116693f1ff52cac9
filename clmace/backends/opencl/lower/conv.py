"""Conv and ConvTranspose lowered to kernels/conv.cl, with weights packed once at plan time."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl.lower import conv_gemm, conv_variants
from clmace.backends.opencl.lower.conv_variants import activation_args
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node
from clmace.ops.conv import transpose_pads, window_pads


def _float_check(p: Plan, node: Node, names: list[str]) -> None:
    for name in names:
        if name and p.dtype(name) not in (np.float32, np.float16):
            raise NotLowerable(f"{node.op_type} on {p.dtype(name)} tensors has no kernel")


def _planar(p: Plan, node: Node, w: np.ndarray | None) -> tuple[list[tuple[int, ...]], np.ndarray, dict]:
    """A 1-D (NCL) node seen as 2-D with height 1, the memory layout being the same: the input and output
    shapes, the weight and the attributes in 2-D form; 2-D nodes as they are."""
    x, y = node.inputs[0], node.outputs[0]
    rank = len(p.shape(x))
    if w is None or rank not in (3, 4):
        raise NotLowerable(f"{node.op_type} needs a constant weight and a 1-D (NCL) or 2-D (NCHW) input")
    if rank == 4:
        return [p.shape(x), p.shape(y)], w, node.attrs
    attrs = dict(node.attrs)
    for name, one in (("strides", 1), ("dilations", 1), ("output_padding", 0)):
        if attrs.get(name) is not None:
            attrs[name] = [one, *attrs[name]]
    if attrs.get("pads") is not None:
        attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    if attrs.get("kernel_shape") is not None:
        attrs["kernel_shape"] = [1, *attrs["kernel_shape"]]
    if attrs.get("output_shape") is not None:
        attrs["output_shape"] = [1, *attrs["output_shape"][-1:]]
    shapes = [(s[0], s[1], 1, s[2]) for s in (p.shape(x), p.shape(y))]
    return shapes, w.reshape(*w.shape[:2], 1, w.shape[2]), attrs


def _column_as_row(shapes: list[tuple[int, ...]], w: np.ndarray, attrs: dict
                   ) -> tuple[list[tuple[int, ...]], np.ndarray, dict]:
    """A conv over a one-pixel-wide column (N, C, H, 1) with a (KH, 1) kernel, as the same conv over a row
    (N, C, 1, H): the memory is the same, and the kernels vectorise along the width (one valid pixel of
    eight otherwise: 1-D convs exported as 2-D, e.g. magika's)."""
    (n, c, h, wd), (_, cout, oh, ow) = shapes
    if not (wd == 1 and ow == 1 and w.shape[3] == 1 and h > 1):
        return shapes, w, attrs
    swapped = dict(attrs)
    for name in ("strides", "dilations", "kernel_shape"):
        if attrs.get(name) is not None:
            swapped[name] = list(attrs[name])[::-1]
    if attrs.get("pads") is not None:
        top, left, bottom, right = attrs["pads"]
        swapped["pads"] = [left, top, right, bottom]
    return [(n, c, 1, h), (n, cout, 1, oh)], w.reshape(*w.shape[:2], 1, w.shape[2]), swapped


def lower_conv(node: Node, p: Plan) -> list[Launch]:
    """Conv (1-D or 2-D): the pointwise, depthwise or general family, each with its variants
    (conv_variants.py)."""
    x, y = node.inputs[0], node.outputs[0]
    (xshape, yshape), w, attrs = _column_as_row(*_planar(p, node, p.const(node.inputs[1])))
    _float_check(p, node, [x, y])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = p.const(bias_name) if bias_name else np.zeros(w.shape[0], np.float32)
    if bias is None:
        raise NotLowerable("Conv bias computed at run time")
    n, c, h, wd = xshape
    _, cout_all, oh, ow = yshape
    groups = int(attrs.get("group", 1))
    kh, kw = w.shape[2:]
    strides = [int(s) for s in attrs.get("strides") or [1, 1]]
    dil = [int(d) for d in attrs.get("dilations") or [1, 1]]
    begin, _ = window_pads("Conv", (h, wd), (kh, kw), strides, dil, attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
    act, p0, p1 = activation_args(node.attrs.get("activation"), node.attrs.get("activation_params", ()))
    epilogue = p.epilogue(node)
    post, q0, q1 = activation_args(*(epilogue.activation or (None, ())))
    res_name = epilogue.residual
    op = conv_variants.ConvOp(
        x=x, y=y, w=np.asarray(w, np.float32), bias=np.asarray(bias, np.float32), res=res_name, n=n, c=c, h=h, wd=wd,
        cout_all=cout_all, oh=oh, ow=ow, groups=groups, kh=kh, kw=kw, strides=strides, dil=dil, begin=begin,
        base={**p.float_defines(x), "ACT": act, "ACT2": post}, tail=(1 if res_name else 0, p0, p1, q0, q1))
    if kh == kw == 1 and strides == [1, 1] and begin == [0, 0] and oh == h and ow == wd:
        return p.tunable(node, conv_variants.pointwise_spec(op, p))
    if groups == c and groups > 1 and cout_all % c == 0:
        return p.tunable(node, conv_variants.depthwise_spec(op, p))
    as_gemm = conv_gemm.row_conv_as_gemm(node, p, op, bool(epilogue.activation))
    if as_gemm is not None:
        return as_gemm
    return p.tunable(node, conv_variants.general_spec(op, p))


def lower_conv_transpose(node: Node, p: Plan) -> list[Launch]:
    """ConvTranspose (1-D or 2-D): a gather over the inputs reaching each output (GPU), or 8 channels x 8
    same-phase pixels per work-item (CPU); the conv_transpose family (conv_variants.transpose_spec)."""
    x, y = node.inputs[0], node.outputs[0]
    (xshape, yshape), w, attrs = _planar(p, node, p.const(node.inputs[1]))
    _float_check(p, node, [x, y])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    groups = int(attrs.get("group", 1))
    cout = w.shape[1]
    bias = p.const(bias_name) if bias_name else np.zeros(cout * groups, np.float32)
    if bias is None:
        raise NotLowerable("ConvTranspose bias computed at run time")
    n, c, h, wd = xshape
    _, _, oh, ow = yshape
    kh, kw = w.shape[2:]
    strides = [int(s) for s in attrs.get("strides") or [1, 1]]
    dil = [int(d) for d in attrs.get("dilations") or [1, 1]]
    out_pad = [int(v) for v in attrs.get("output_padding") or [0, 0]]
    begin, _ = transpose_pads("ConvTranspose", np.empty((1, 1, h, wd), np.uint8), (kh, kw), strides, dil,
                               out_pad, attrs.get("output_shape"), attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
    act, p0, p1 = activation_args(node.attrs.get("activation"), node.attrs.get("activation_params", ()))
    # The conv's own geometry (w as [G*cout][cin][kh][kw], the layout the conv variants pack): the input
    # is the transposed conv's output side.
    cin = c // groups
    w_conv = np.asarray(w, np.float32).reshape(groups, cin, cout, kh, kw).transpose(0, 2, 1, 3, 4)
    op = conv_variants.ConvOp(
        x=x, y=y, w=np.ascontiguousarray(w_conv.reshape(groups * cout, cin, kh, kw)),
        bias=np.asarray(bias, np.float32).reshape(-1), res="", n=n, c=c, h=h, wd=wd, cout_all=groups * cout, oh=oh,
        ow=ow, groups=groups, kh=kh, kw=kw, strides=strides, dil=dil, begin=begin,
        base={**p.float_defines(x), "ACT": act}, tail=(0, p0, p1))
    return p.tunable(node, conv_variants.transpose_spec(op, p, np.asarray(w, np.float32)))


LOWER = {"Conv": lower_conv, "ConvTranspose": lower_conv_transpose}
