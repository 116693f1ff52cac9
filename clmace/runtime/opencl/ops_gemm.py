"""Gemm and MatMul lowered to kernels/gemm.cl; constant right operands are packed at plan time."""

from __future__ import annotations

import numpy as np

from clmace.ir import Node
from clmace.runtime.opencl.ops_conv import activation_args
from clmace.runtime.opencl.plan import Launch, NotLowerable, Plan

FILE = "gemm.cl"


def _pack_b(b: np.ndarray) -> np.ndarray:
    """[K][N] -> [ceil(N/16)][K][16], zero-padded columns."""
    k, n = b.shape
    nb = -(-n // 16)
    padded = np.zeros((k, nb * 16), np.float32)
    padded[:, :n] = b
    return np.ascontiguousarray(padded.reshape(k, nb, 16).transpose(1, 0, 2))


def _floats(p: Plan, node: Node) -> None:
    for name in list(node.inputs) + list(node.outputs):
        if name and p.dtype(name) not in (np.float32, np.float16):
            raise NotLowerable(f"{node.op_type} on {p.dtype(name)} tensors has no kernel")


def _packed(node: Node, p: Plan, a: str, a_strides: tuple[int, int], m: int, k: int, b: np.ndarray,
            bias: np.ndarray, c: str, c_strides: tuple[int, int], beta: float) -> list[Launch]:
    """Launch gemm_packed: Y[M,N] = act(A @ b + bias + beta * C)."""
    n = b.shape[1]
    act, p0, p1 = activation_args(node.attrs.get("activation"), node.attrs.get("activation_params", ()))
    kern = p.kernel(FILE, "gemm_packed", {**p.float_defines(a), "ACT": act})
    padded_bias = np.zeros(-(-n // 16) * 16, np.float32)
    padded_bias[:n] = np.broadcast_to(bias.astype(np.float32).reshape(-1), (n,))
    args = [p.buf(a), p.upload(_pack_b(b.astype(np.float32)), like=a), p.upload(padded_bias, like=a),
            p.buf(c) if c else p.buf(a), p.buf(node.outputs[0]), m, n, k, a_strides[0], a_strides[1],
            1 if c else 0, c_strides[0], c_strides[1], float(beta), p0, p1]
    return p.launch(node, kern, args, (-(-n // 16), -(-m // 4)))


def lower_gemm(node: Node, p: Plan) -> list[Launch]:
    """Gemm with a constant B: alpha folded into the packed B, a row-vector C into the bias."""
    _floats(p, node)
    a, bname = node.inputs[0], node.inputs[1]
    b = p.const(bname)
    if b is None:
        raise NotLowerable("Gemm with B computed at run time")
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    bm = (b.T if node.attrs.get("transB", 0) else b) * np.float32(alpha)
    am, ak = p.shape(a)
    m, k = (ak, am) if node.attrs.get("transA", 0) else (am, ak)
    strides = (1, m) if node.attrs.get("transA", 0) else (k, 1)
    n = bm.shape[1]
    cname = node.inputs[2] if len(node.inputs) > 2 else ""
    cconst = p.const(cname)
    bias = np.zeros(n, np.float32)
    c, c_strides = "", (0, 0)
    if cname and beta != 0.0:
        cshape = p.shape(cname)
        if cconst is not None and int(np.prod(cshape)) in (1, n) and (len(cshape) < 2 or cshape[0] == 1):
            bias = np.broadcast_to(cconst.astype(np.float32).reshape(-1), (n,)) * np.float32(beta)
        else:
            full = (1,) * (2 - len(cshape)) + tuple(cshape)
            c = cname
            c_strides = (full[1] if full[0] > 1 else 0, 1 if full[1] > 1 else 0)
    return _packed(node, p, a, strides, m, k, bm, bias, c, c_strides, beta)


def _batch_offsets(a_batch: tuple, b_batch: tuple, out_batch: tuple, a_mat: int, b_mat: int) -> list[int]:
    ai = np.broadcast_to(np.arange(int(np.prod(a_batch))).reshape(a_batch), out_batch).reshape(-1)
    bi = np.broadcast_to(np.arange(int(np.prod(b_batch))).reshape(b_batch), out_batch).reshape(-1)
    return np.stack([ai * a_mat, bi * b_mat], axis=1).reshape(-1).tolist()


def lower_matmul(node: Node, p: Plan) -> list[Launch]:
    """MatMul: packed GEMM when B is a constant matrix, else the batched strided kernel."""
    _floats(p, node)
    a, bname, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ashape, bshape = p.shape(a), p.shape(bname)
    b = p.const(bname)
    bias_name = node.attrs.get("_bias", "")
    if b is not None and b.ndim == 2 and len(ashape) >= 1:
        k = ashape[-1]
        m = int(np.prod(ashape[:-1], dtype=np.int64))
        bias = p.const(bias_name) if bias_name else np.zeros(b.shape[1], np.float32)
        return _packed(node, p, a, (k, 1), m, k, b, bias, "", (0, 0), 1.0)
    if bias_name:
        raise NotLowerable("MatMul with a fused bias needs a constant 2-D B")  # fusion only picks those
    a2 = (1,) + ashape if len(ashape) == 1 else ashape
    b2 = bshape + (1,) if len(bshape) == 1 else bshape
    m, k = a2[-2:]
    n = b2[-1]
    a_batch, b_batch = a2[:-2], b2[:-2]
    out_batch = tuple(np.broadcast_shapes(a_batch, b_batch))
    offs = _batch_offsets(a_batch, b_batch, out_batch, m * k, k * n)
    act, p0, p1 = activation_args(node.attrs.get("activation"), node.attrs.get("activation_params", ()))
    kern = p.kernel(FILE, "matmul", {**p.float_defines(a), "ACT": act})
    args = [p.buf(a), p.buf(bname), p.buf(y), p.ints(offs), m, n, k, k, 1, n, 1, p0, p1]
    batches = int(np.prod(out_batch, dtype=np.int64))
    return p.launch(node, kern, args, (-(-n // 4), -(-m // 4), batches),
                    (1, 1, 1) if not p.is_gpu else (16, 4, 1))


LOWER = {"Gemm": lower_gemm, "MatMul": lower_matmul}
