"""Row convolutions (1-D, or 2-D over one input row) with many input channels, on CPUs, as one packed GEMM.
In channels-last layout the im2col matrix of such a conv is a strided view of the input (output pixel p
reads the kw * cin consecutive elements from p * stride * cin), so the input is transposed once, the GEMM
runs on it with the packed weight (bias and activation fused), and its [pixels][cout] result is transposed
back: a speech encoder's 512-channel convs ran at 54 GFLOP/s in conv_fixed, the GEMM reaches ~140."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl.lower.conv_variants import ConvOp
from clmace.backends.opencl.lower.data import copy_launch
from clmace.backends.opencl.lower.gemm import packed_gemm
from clmace.backends.opencl.plan.schedule import Launch, Plan
from clmace.core.ir import Node

# The smallest reduction (cin * kw) and output channel count worth the two transposes.
MIN_K = 256
MIN_COUT = 32


def row_conv_as_gemm(node: Node, p: Plan, op: ConvOp, post_activation: bool) -> list[Launch] | None:
    """The launches of a conv this path takes (None for any other: GPUs, groups, padding, dilation, a fused
    residual or second activation, batches, half storage, few channels)."""
    if (p.is_gpu or op.n != 1 or op.groups != 1 or op.h != 1 or op.kh != 1 or op.oh != 1 or op.res
            or post_activation or op.dil[1] != 1 or op.begin != [0, 0] or p.float_defines(op.x)
            or op.cin * op.kw < MIN_K or op.cout < MIN_COUT):
        return None
    cin, wd, kw, sw, cout, ow = op.cin, op.wd, op.kw, op.strides[1], op.cout, op.ow
    if ow != (wd - kw) // sw + 1:  # padding at the end
        return None
    yt = p.workspace(ow * cout * 4)
    # B[kx * cin + ci][co] = w[co][ci][0][kx]: the order of a pixel's taps in channels-last memory.
    b = np.ascontiguousarray(op.w[:, :, 0, :].transpose(2, 1, 0).reshape(kw * cin, cout))
    launches: list[Launch] = []
    xt = p.buf(op.x)  # one channel is channels-last already
    if cin > 1:
        xt = p.workspace(wd * cin * 4)
        launches = copy_launch(node, p, op.x, op.x, (cin, wd), [wd, 1], 0, [1, cin], 0, bufs=(p.buf(op.x), xt))
    launches += packed_gemm(node, p, op.x, (sw * cin, 1), ow, kw * cin, b, op.bias, "", (0, 0), 1.0, bufs=(xt, yt))
    launches += copy_launch(node, p, op.y, op.y, (cout, ow), [1, cout], 0, [ow, 1], 0, bufs=(yt, p.buf(op.y)))
    return launches
