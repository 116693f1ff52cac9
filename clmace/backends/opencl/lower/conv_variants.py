"""Conv variants: pointwise, depthwise and general families, each a TuneSpec the plan binds and the tuner searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clmace.backends.opencl.plan.arena import SLACK
from clmace.backends.opencl.plan.schedule import NotLowerable, Plan
from clmace.backends.opencl.plan.variants import (
    Bound,
    TuneSpec,
    Variant,
    options_text,
    pick_tile,
    record_key,
    tiled_variants,
)
from clmace.backends.opencl.programs import ACT_CODES

FILES = ("conv.cl", "conv_gpu.cl")


def pack_blocks(w: np.ndarray, groups: int, cb: int) -> np.ndarray:
    """[G*cout][cin][k...] -> [G][ncb][cin][k...][cb] with zero rows padding cout up to ncb*cb."""
    cout = w.shape[0] // groups
    ncb = -(-cout // cb)
    wg = w.reshape(groups, cout, *w.shape[1:])
    if cout % cb == 0:  # no padding: one copy instead of zero-fill + two copies (start-up time)
        return np.ascontiguousarray(np.moveaxis(wg.reshape(groups, ncb, cb, *w.shape[1:]), 2, -1), np.float32)
    padded = np.zeros((groups, ncb * cb, *w.shape[1:]), np.float32)
    padded[:, :cout] = wg
    blocks = padded.reshape(groups, ncb, cb, *w.shape[1:])
    return np.ascontiguousarray(np.moveaxis(blocks, 2, -1))


def pack_bias(b: np.ndarray, groups: int, cout: int, cb: int) -> np.ndarray:
    """[G*cout] -> [G][ncb*cb] with zeros padding each group's channels up to whole blocks."""
    ncb = -(-cout // cb)
    out = np.zeros((groups, ncb * cb), np.float32)
    out[:, :cout] = b.reshape(groups, cout)
    return out


def vec_ok(p: Plan, x: str, w: int, ow: int, kw: int, sw: int, dw: int, pad_l: int, width: int = 8) -> int:
    """1 when `width`-pixel vector loads of border blocks stay within the buffers' slack (SLACK bytes)."""
    guard = SLACK // p.stored(x).itemsize
    last = (ow - 1) // width * width
    max_read = last * sw - pad_l + (kw - 1) * dw + width * max(sw, 2) - 1
    return int(sw <= 2 and pad_l <= guard and max_read - (w - 1) <= guard)


def activation_args(name: str | None, params: tuple[float, ...] | list[float] = ()) -> tuple[int, float, float]:
    """(ACT code, p0, p1) of a fused activation; infinite Clip bounds become float32 limits."""
    if name not in ACT_CODES:
        raise NotLowerable(f"fused activation {name!r} has no kernel")
    p = [float(np.clip(v, -3.4e38, 3.4e38)) for v in params] + [0.0, 0.0]
    return ACT_CODES[name], p[0], p[1]


@dataclass
class ConvOp:
    """One Conv node's geometry, constants and fused epilogue, as lower_conv parsed it."""

    x: str
    y: str
    w: np.ndarray
    bias: np.ndarray
    res: str
    n: int
    c: int
    h: int
    wd: int
    cout_all: int
    oh: int
    ow: int
    groups: int
    kh: int
    kw: int
    strides: list[int]
    dil: list[int]
    begin: list[int]
    base: dict[str, Any]
    tail: tuple[Any, ...]

    @property
    def cin(self) -> int:
        """Input channels per group."""
        return self.c // self.groups

    @property
    def cout(self) -> int:
        """Output channels per group."""
        return self.cout_all // self.groups

    def shape(self) -> str:
        """The op's shapes and attributes, as they appear in record keys."""
        s, d, b = self.strides, self.dil, self.begin
        return (f"x={self.n}x{self.c}x{self.h}x{self.wd} w={self.cout_all}x{self.cin}x{self.kh}x{self.kw} "
                f"g={self.groups} s={s[0]}x{s[1]} d={d[0]}x{d[1]} p={b[0]}x{b[1]} y={self.oh}x{self.ow} "
                f"res={self.tail[0]}")


def _spec(family: str, op: ConvOp, p: Plan, variants: list[Variant], build: Any, cpu: Variant,
          gpu: Variant) -> TuneSpec:
    key = record_key(family, FILES, options_text(op.base), op.shape(), p.stored(op.x).name)
    return TuneSpec(family, key, op.shape(), variants, build, gpu if p.is_gpu else cpu)


def _io(op: ConvOp, p: Plan) -> tuple[Any, Any, Any]:
    """x, residual (x when none) and y buffers."""
    return p.buf(op.x), p.buf(op.res) if op.res else p.buf(op.x), p.buf(op.y)


def _tiled(op: ConvOp, p: Plan, v: Variant) -> Bound:
    """The implicit-GEMM tiled kernel: weights transposed to [G][K][cout]."""
    d = dict(v.defines)
    k = p.kernel(v.file, v.kernel, v.options(op.base))
    wt = op.w.reshape(op.groups, op.cout, -1).transpose(0, 2, 1)
    x, res, y = _io(op, p)
    (sh, sw), (dh, dw), (pt, pl) = op.strides, op.dil, op.begin
    args = [x, p.upload(np.ascontiguousarray(wt), like=op.x), p.upload(op.bias, like=op.x), res, y, op.cin, op.cout,
            op.h, op.wd, op.oh, op.ow, sh, sw, dh, dw, pt, pl, op.groups, op.n * op.groups, *op.tail]
    gws = (-(-op.oh * op.ow // (16 * d["WN"])) * 16, -(-op.cout // (16 * d["WM"])) * 16, op.n * op.groups)
    return Bound(k, args, gws)


# (pixels, channels) per work-item of conv_fixed: 8 x 8 and 16 x 4 keep 8 vector accumulators (AVX2's 16
# registers hold them with the loads), 16 x 8 fills AVX-512's 32.
FIXED_BLOCKS = ((8, 8), (16, 4), (16, 6), (16, 8))


def _fixed(op: ConvOp, p: Plan, v: Variant) -> Bound:
    """conv_fixed: the window compiled in, FCB channels x FPX pixels per work-item."""
    d = dict(v.defines)
    cb, px = d["FCB"], d["FPX"]
    k = p.kernel(v.file, v.kernel, v.options(op.base))
    wb = p.upload(pack_blocks(op.w, op.groups, cb), like=op.x)
    bb = p.upload(pack_bias(op.bias, op.groups, op.cout, cb), like=op.x)
    x, res, y = _io(op, p)
    ng = op.n * op.groups
    args = [x, wb, bb, res, y, op.cin, op.cout, op.h, op.wd, op.oh, op.ow, op.begin[0], op.begin[1], op.groups, ng,
            *op.tail]
    return Bound(k, args, (-(-op.ow // px), op.oh, ng * -(-op.cout // cb)))


def spec_variant(variants: list[Variant], name: str) -> Variant:
    """The variant called name (a default chosen by name must exist)."""
    return next(v for v in variants if v.name == name)


# (channels, pixels) per work-item of conv_taps: 8 or 12 accumulators of 8 lanes.
TAP_BLOCKS = ((4, 2), (4, 3), (8, 1))


def pack_taps(w: np.ndarray, groups: int, cb: int) -> tuple[np.ndarray, int]:
    """[G*cout][cin][KH][KW] -> [G][ncb][cin][KH][KW8 / 8][cb][8], taps and channels zero-padded; and KW8."""
    cout_all, cin, kh, kw = w.shape
    cout, kw8 = cout_all // groups, -(-kw // 8) * 8
    ncb = -(-cout // cb)
    padded = np.zeros((groups, ncb * cb, cin, kh, kw8), np.float32)
    padded[:, :cout, :, :, :kw] = w.reshape(groups, cout, cin, kh, kw)
    blocks = padded.reshape(groups, ncb, cb, cin, kh, kw8 // 8, 8).transpose(0, 1, 3, 4, 5, 2, 6)
    return np.ascontiguousarray(blocks), kw8


def _taps(op: ConvOp, p: Plan, v: Variant) -> Bound:
    """conv_taps: vectors along the taps, TCB channels x TPX pixels per work-item."""
    d = dict(v.defines)
    cb, px = d["TCB"], d["TPX"]
    k = p.kernel(v.file, v.kernel, v.options(op.base))
    packed, kw8 = pack_taps(op.w, op.groups, cb)
    x, res, y = _io(op, p)
    ng = op.n * op.groups
    args = [x, p.upload(packed, like=op.x), p.upload(pack_bias(op.bias, op.groups, op.cout, cb), like=op.x), res, y,
            op.cin, op.cout, op.h, op.wd, op.oh, op.ow, op.kh, kw8, op.strides[0], op.strides[1], op.dil[0],
            op.begin[0], op.begin[1], op.groups, ng, *op.tail]
    return Bound(k, args, (-(-op.ow // px), op.oh, ng * -(-op.cout // cb)))


def pointwise_spec(op: ConvOp, p: Plan) -> TuneSpec:
    """1x1 stride-1 convs: CB x PX blocks per work-item (CPU), one pixel x CB (GPU), or __local tiles (GPU)."""
    variants = [Variant(f"px{px}_cb{cb}", "conv.cl", "conv1x1", (("CB", cb),) + ((("PX", px),) if px != 16 else ()))
                for px, cb in ((16, 16), (16, 8), (8, 16), (8, 8), (4, 8), (16, 6), (16, 4), (8, 12))]
    variants += [Variant(f"pix_cb{cb}", "conv_gpu.cl", "conv1x1_pix", (("CONV1X1_PIX", None), ("CB", cb)), gpu=True)
                 for cb in (4, 8)]
    variants += tiled_variants("conv_gpu.cl", "conv_tiled", (("CONV_TILED", None), ("KH", 1), ("KW", 1), ("PW", None)))
    npix, ng = op.h * op.wd, op.n * op.groups

    def build(v: Variant) -> Bound:
        if v.kernel == "conv_tiled":
            return _tiled(op, p, v)
        d = dict(v.defines)
        cb, px = d["CB"], d.get("PX", 16) if v.kernel == "conv1x1" else 1
        k = p.kernel(v.file, v.kernel, v.options(op.base))
        wb = p.upload(pack_blocks(op.w.reshape(op.cout_all, op.cin), op.groups, cb), like=op.x)
        bb = p.upload(pack_bias(op.bias, op.groups, op.cout, cb), like=op.x)
        x, res, y = _io(op, p)
        args = [x, wb, bb, res, y, op.cin, op.cout, npix, op.groups, ng, *op.tail]
        return Bound(k, args, (-(-npix // px), -(-op.cout // cb), ng))

    if p.vector_lanes >= 16:  # 16 x 16 accumulators: 16 of AVX-512's 32 registers
        cpu = variants[0] if op.cout >= 16 else variants[1]
    else:  # AVX2: 16 pixels x 6 channels, 12 of its 16 registers (1.1-1.4x the 16 x 16 block there)
        cpu = spec_variant(variants, "px16_cb6" if op.cout >= 12 else "px8_cb8")
    gpu = pick_tile(variants, op.cout, npix, ng, int(p.device.max_compute_units))
    return _spec("conv1x1", op, p, variants, build, cpu, gpu)


def depthwise_spec(op: ConvOp, p: Plan) -> TuneSpec:
    """Depthwise convs: `rows` output rows of 16-pixel vectors per work-item (CPU), or OPX pixels (GPU)."""
    geometry = (("KH", op.kh), ("KW", op.kw), ("SH", op.strides[0]), ("SW", op.strides[1]))
    variants = [Variant(f"rows_{r or 'auto'}", "conv.cl", "conv_dw", geometry, params=(("rows", r),))
                for r in (0, 1, 4)]
    variants += [Variant(f"pix{opx}", "conv_gpu.cl", "conv_dw_pix", (("DW_PIX", None), *geometry, ("OPX", opx)),
                         gpu=True) for opx in (1, 2, 4)]
    nco, mult = op.n * op.cout_all, op.cout_all // op.c

    def build(v: Variant) -> Bound:
        k = p.kernel(v.file, v.kernel, v.options(op.base))
        wb = p.upload(op.w.reshape(op.cout_all, op.kh * op.kw), like=op.x)
        bb = p.upload(op.bias, like=op.x)
        x, res, y = _io(op, p)
        head = [x, wb, bb, res, y, op.c, op.h, op.wd, op.oh, op.ow, mult, op.begin[0], op.begin[1], op.dil[0],
                op.dil[1]]
        if v.kernel == "conv_dw_pix":
            opx = dict(v.defines)["OPX"]
            return Bound(k, [*head, nco, *op.tail], (-(-op.ow // opx), op.oh, nco))
        # Enough rows per work-item to amortise its start (PoCL: one work-group each), while leaving a few
        # hundred work-items to spread over the cores.
        rows = dict(v.params)["rows"] or max(1, min(op.oh, (nco * op.oh) // 512, -(-4096 // (op.ow * op.kh * op.kw))))
        loads_ok = vec_ok(p, op.x, op.wd, op.ow, op.kw, op.strides[1], op.dil[1], op.begin[1], 16)
        return Bound(k, [*head, rows, loads_ok, nco, *op.tail], (-(-op.oh // rows), nco))

    return _spec("conv_dw", op, p, variants, build, variants[0], variants[3])


def general_spec(op: ConvOp, p: Plan) -> TuneSpec:
    """Other convs: 8 pixels x 8 channels per work-item (CPU), one pixel x CB (GPU), or implicit-GEMM tiles."""
    variants = [Variant("direct_8x8", "conv.cl", "conv_general", (("CONV_GENERAL", None),)),
                Variant("direct_16x8", "conv.cl", "conv_general", (("CONV_GENERAL", None), ("GPX", 16)))]
    variants += [Variant(f"pix_cb{cb}", "conv_gpu.cl", "conv_general_pix", (("GENERAL_PIX", None), ("CB", cb)),
                         gpu=True) for cb in (4, 8)]
    variants += tiled_variants("conv_gpu.cl", "conv_tiled", (("CONV_TILED", None), ("KH", op.kh), ("KW", op.kw)))
    (sh, sw), (dh, dw), (pt, pl) = op.strides, op.dil, op.begin
    window = (("CONV_FIXED", None), ("FKH", op.kh), ("FKW", op.kw), ("FSH", sh), ("FSW", sw), ("FDH", dh), ("FDW", dw))
    variants += [Variant(f"fixed_{px}x{cb}", "conv.cl", "conv_fixed", (*window, ("FPX", px), ("FCB", cb)))
                 for px, cb in FIXED_BLOCKS]
    if dw == 1:  # taps consecutive in memory
        variants += [Variant(f"taps_{cb}x{px}", "conv.cl", "conv_taps", (("CONV_TAPS", None), ("TCB", cb), ("TPX", px)))
                     for cb, px in TAP_BLOCKS]
    ng = op.n * op.groups

    def build(v: Variant) -> Bound:
        if v.kernel == "conv_tiled":
            return _tiled(op, p, v)
        if v.kernel == "conv_fixed":
            return _fixed(op, p, v)
        if v.kernel == "conv_taps":
            return _taps(op, p, v)
        cb = dict(v.defines).get("CB", 8)
        k = p.kernel(v.file, v.kernel, v.options(op.base))
        wb = p.upload(pack_blocks(op.w, op.groups, cb), like=op.x)
        bb = p.upload(pack_bias(op.bias, op.groups, op.cout, cb), like=op.x)
        x, res, y = _io(op, p)
        head = [x, wb, bb, res, y, op.cin, op.cout, op.h, op.wd, op.oh, op.ow, op.kh, op.kw, sh, sw, dh, dw, pt, pl,
                op.groups]
        if v.kernel == "conv_general_pix":
            return Bound(k, [*head, ng, *op.tail], (op.oh * op.ow, -(-op.cout // cb), ng))
        px = dict(v.defines).get("GPX", 8)
        loads_ok = vec_ok(p, op.x, op.wd, op.ow, op.kw, sw, dw, pl, px)
        return Bound(k, [*head, loads_ok, ng, *op.tail], (-(-op.ow // px), op.oh, ng * -(-op.cout // 8)))

    gpu = pick_tile(variants, op.cout, op.oh * op.ow, ng, int(p.device.max_compute_units))
    # The window compiled in, 8 accumulators of the CPU's vector width (3x3 convs on AVX2: 25 -> 75 GFLOP/s
    # beside direct_16x8); 16-pixel vectors waste lanes on narrow rows.
    cpu = spec_variant(variants, "fixed_16x8" if p.vector_lanes >= 16 and op.ow >= 24 else "fixed_8x8")
    if dw == 1 and op.kw >= 32:  # long rows of taps (an STFT as a Conv1d: 512 taps, stride 160): 2.3x fixed_8x8
        cpu = spec_variant(variants, "taps_4x3")
    return _spec("conv_general", op, p, variants, build, cpu, gpu)


def transpose_spec(op: ConvOp, p: Plan, w_onnx: np.ndarray) -> TuneSpec:
    """ConvTranspose: the gather kernel (one output per work-item; GPUs) or 8 channels x 8 output pixels of one
    phase per work-item (CPUs). op.w is the per-group [cout][cin] weight; w_onnx the [G*cin][cout] original."""
    variants = [Variant("block8", "conv.cl", "conv_transpose_block", (("CONV_TRANSPOSE_BLOCK", None),)),
                Variant("gather", "conv.cl", "conv_transpose", (("CONV_TRANSPOSE", None),), gpu=True)]
    (sh, sw), (dh, dw), (pt, pl) = op.strides, op.dil, op.begin
    geometry = [op.cin, op.cout, op.h, op.wd, op.oh, op.ow, op.kh, op.kw, sh, sw, dh, dw, pt, pl, op.groups]
    ng = op.n * op.groups

    def build(v: Variant) -> Bound:
        k = p.kernel(v.file, v.kernel, v.options(op.base))
        x, y = p.buf(op.x), p.buf(op.y)
        if v.kernel == "conv_transpose":
            args = [x, p.upload(w_onnx, like=op.x), p.upload(op.bias, like=op.x), y, *geometry, ng, *op.tail[1:]]
            return Bound(k, args, (op.ow, op.oh, ng * op.cout))
        wb = p.upload(pack_blocks(op.w, op.groups, 8), like=op.x)
        bb = p.upload(pack_bias(op.bias, op.groups, op.cout, 8), like=op.x)
        per_phase = -(-op.ow // sw)  # output pixels of one phase along x, at most
        blocks = -(-per_phase // 8)
        return Bound(k, [x, wb, bb, y, *geometry, ng, *op.tail[1:]], (sw * blocks, op.oh, ng * -(-op.cout // 8)))

    return _spec("conv_transpose", op, p, variants, build, variants[0], variants[1])
