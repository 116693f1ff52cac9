"""Gemm and MatMul lowered to kernels/gemm.cl (the gemm and matmul families); constant B packed at plan time."""

from __future__ import annotations

from typing import Any

import numpy as np

from clmace.backends.opencl.lower.conv_variants import activation_args
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.backends.opencl.plan.variants import (
    AUTO,
    Bound,
    TuneSpec,
    Variant,
    options_text,
    pick_tile,
    record_key,
    tiled_variants,
)
from clmace.core.ir import Node

FILE = "gemm.cl"


def _pack_b(b: np.ndarray) -> np.ndarray:
    """[K][N] -> [ceil(N/16)][K][16], zero-padded columns."""
    k, n = b.shape
    nb = -(-n // 16)
    if b.flags.c_contiguous:
        padded = np.zeros((k, nb * 16), np.float32)
        padded[:, :n] = b
        return np.ascontiguousarray(padded.reshape(k, nb, 16).transpose(1, 0, 2))
    # A transposed view (transB: the weight is stored [N][K]): copy 16-row blocks of it, ~6x faster than
    # copying the strided view at once (a classifier's 5 MB weight: 8 ms -> 1.3 ms).
    bt = b.T
    out = np.zeros((nb, k, 16), np.float32)
    for j in range(nb):
        rows = bt[16 * j:16 * j + 16]
        out[j, :, :len(rows)] = rows.T
    return out


def _floats(p: Plan, node: Node) -> None:
    for name in list(node.inputs) + list(node.outputs):
        if name and p.dtype(name) not in (np.float32, np.float16):
            raise NotLowerable(f"{node.op_type} on {p.dtype(name)} tensors has no kernel")


def packed_gemm(node: Node, p: Plan, a: str, a_strides: tuple[int, int], m: int, k: int, b: np.ndarray,
                bias: np.ndarray, c: str, c_strides: tuple[int, int], beta: float,
                bufs: tuple[Any, Any] | None = None) -> list[Launch]:
    """Y[M,N] = act(A @ b + bias + beta * C) with a constant b: the gemm family's variants. bufs: the A and Y
    buffers when they are a node's own workspaces (A then has value a's storage type), else a's and the output's."""
    n = b.shape[1]
    fused = p.epilogue(node).activation  # the plan's fused activation after a bias, else the node's own
    act, p0, p1 = activation_args(*(fused or (node.attrs.get("activation"), node.attrs.get("activation_params", ()))))
    base = {**p.float_defines(a), "ACT": act}
    b32 = np.asarray(b, np.float32)  # no copy when already float32: the packers copy anyway
    bias32 = np.broadcast_to(np.asarray(bias, np.float32).reshape(-1), (n,))
    variants = [Variant(f"r{gm}", FILE, "gemm_packed", (("GM", gm),) if gm != 4 else ()) for gm in (4, 1)]
    variants += [Variant(f"r{gm}x32", FILE, "gemm_packed32", (("GM", gm),)) for gm in (8, 4, 6)]
    variants += [Variant(f"col{gm}", FILE, "gemm_col", (("GM", gm),), gpu=True) for gm in (1, 4)]
    variants += tiled_variants(FILE, "gemm_tiled")
    variants += [Variant(f"ksplit{ks}", FILE, "gemm_ksplit", (("KS", ks),), (256 // ks, ks, 1), True) for ks in (8, 16)]
    tail = [m, n, k, a_strides[0], a_strides[1], 1 if c else 0, c_strides[0], c_strides[1], float(beta), p0, p1]

    abuf, ybuf = bufs or (p.buf(a), p.buf(node.outputs[0]))

    def build(v: Variant) -> Bound:
        d = dict(v.defines)
        kern = p.kernel(FILE, v.kernel, v.options(base))
        cbuf = p.buf(c) if c else abuf
        if v.kernel in ("gemm_tiled", "gemm_ksplit"):
            args = [abuf, p.upload(b32, like=a), p.upload(np.ascontiguousarray(bias32), like=a), cbuf, ybuf, *tail]
            if v.kernel == "gemm_ksplit":
                return Bound(kern, args, (-(-n // (256 // d["KS"])) * (256 // d["KS"]), d["KS"], m))
            return Bound(kern, args, (-(-n // (16 * d["WN"])) * 16, -(-m // (16 * d["WM"])) * 16))
        padded_bias = np.zeros(-(-n // 16) * 16, np.float32)
        padded_bias[:n] = bias32
        args = [abuf, p.upload(_pack_b(b32), like=a), p.upload(padded_bias, like=a), cbuf, ybuf, *tail]
        gm = d.get("GM", 4)
        cols = {"gemm_packed": -(-n // 16), "gemm_packed32": -(-n // 32)}.get(v.kernel, n)
        return Bound(kern, args, (cols, -(-m // gm)))

    shape = f"m={m} n={n} k={k} sa={a_strides[0]}x{a_strides[1]} c={1 if c else 0}:{c_strides[0]}x{c_strides[1]}"
    key = record_key("gemm", [FILE], options_text(base), shape, p.stored(a).name)
    # GPUs: few rows are a GEMV (split K across a work-group), more rows a tiled GEMM.
    gpu = variants[-1] if m <= 8 else pick_tile(variants, m, n, 1, int(p.device.max_compute_units))
    # CPUs with AVX-512: 8 rows x 32 columns per work-item once there are 8 rows (1.2-3x the 4 x 16 block,
    # bench/bench_gemm.py), the 4 x 16 block below that. AVX2 has half the registers of half the width: the
    # 4 x 16 block (8 accumulators) is 1.0-2x the 8 x 32 one there.
    wide = m >= 8 and p.vector_lanes >= 16
    cpu = next(v for v in variants if v.name == "r8x32") if wide else variants[0]
    spec = TuneSpec("gemm", key, shape, variants, build, gpu if p.is_gpu else cpu)
    return p.tunable(node, spec)


def lower_gemm(node: Node, p: Plan) -> list[Launch]:
    """Gemm with a constant B: alpha folded into the packed B, a row-vector C into the bias."""
    _floats(p, node)
    a, bname = node.inputs[0], node.inputs[1]
    b = p.const(bname)
    if b is None:
        raise NotLowerable("Gemm with B computed at run time")
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    bm = b.T if node.attrs.get("transB", 0) else b
    if alpha != 1.0:
        bm = bm * np.float32(alpha)
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
    return packed_gemm(node, p, a, strides, m, k, bm, bias, c, c_strides, beta)


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
    epilogue = p.epilogue(node)
    bias_name = epilogue.bias
    if b is not None and b.ndim == 2 and len(ashape) >= 1:
        k = ashape[-1]
        m = int(np.prod(ashape[:-1], dtype=np.int64))
        bias = p.const(bias_name) if bias_name else np.zeros(b.shape[1], np.float32)
        return packed_gemm(node, p, a, (k, 1), m, k, b, bias, "", (0, 0), 1.0)
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
    base = {**p.float_defines(a), "ACT": act}
    batches = int(np.prod(out_batch, dtype=np.int64))
    variants = [Variant(f"{mr}x{nr}", FILE, "matmul", (("MR", mr), ("NR", nr)) if (mr, nr) != (4, 4) else ())
                for mr, nr in ((4, 4), (2, 2), (1, 4), (1, 1))]
    variants += [Variant(f"r{gm}x32", FILE, "matmul16", (("GM", gm),)) for gm in (8, 4, 1)]

    def build(v: Variant) -> Bound:
        d = dict(v.defines)
        if v.kernel == "matmul16":
            kern = p.kernel(FILE, "matmul16", v.options(base))
            args = [p.buf(a), p.buf(bname), p.buf(y), p.ints(offs), m, n, k, batches, p0, p1]
            return Bound(kern, args, (-(-n // 32), -(-m // d["GM"]), batches))
        mr, nr = d.get("MR", 4), d.get("NR", 4)
        kern = p.kernel(FILE, "matmul", v.options(base))
        args = [p.buf(a), p.buf(bname), p.buf(y), p.ints(offs), m, n, k, k, 1, n, 1, batches, p0, p1]
        return Bound(kern, args, (-(-n // nr), -(-m // mr), batches))

    shape = f"a={'x'.join(map(str, ashape))} b={'x'.join(map(str, bshape))}"
    key = record_key("matmul", [FILE], options_text(base), shape, p.stored(a).name)
    # CPUs: vector rows of B once there are columns to fill them (r8x32: 8 rows, r1x32: a row vector).
    by_name = {v.name: v for v in variants}
    cpu = variants[0] if n < 16 else by_name["r8x32" if m >= 8 else "r4x32" if m >= 4 else "r1x32"]
    spec = TuneSpec("matmul", key, shape, variants, build, variants[0] if p.is_gpu else cpu,
                    (16, 4, 1) if p.is_gpu else AUTO)
    return p.tunable(node, spec)


LOWER = {"Gemm": lower_gemm, "MatMul": lower_matmul}
