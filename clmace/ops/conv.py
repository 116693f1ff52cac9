"""Conv and ConvTranspose (NCHW, any spatial rank), plus the window helpers that pools share."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from clmace.core.errors import ModelError
from clmace.ops.activation import apply_activation


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype to compute in: float64 stays, every other type works in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def int_list(op: str, name: str, value: Sequence[int] | None, n: int, default: int) -> list[int]:
    """An ints attribute with n entries (default-filled when absent), or ModelError."""
    if value is None:
        return [default] * n
    out = [int(v) for v in value]
    if len(out) != n:
        raise ModelError(f"{op}: attribute {name} has {len(out)} values, expected {n}")
    return out


def window_pads(
    op: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[list[int], list[int]]:
    """Begin and end pads of a sliding-window op, from pads or auto_pad."""
    n = len(spatial)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            # The odd pixel goes to the end for SAME_UPPER, to the start for SAME_LOWER.
            small = total // 2
            begin.append(total - small if auto_pad == "SAME_LOWER" else small)
            end.append(total - begin[-1])
        return begin, end
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("NOTSET", ""):
        raise ModelError(f"{op}: auto_pad {auto_pad!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    flat = int_list(op, "pads", pads, 2 * n, 0)
    if any(p < 0 for p in flat):
        raise ModelError(f"{op}: pads {flat} must be >= 0")
    return flat[:n], flat[n:]


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: float = 0) -> np.ndarray:
    """Pad the spatial axes (2..) of an NC... array; no copy when there is nothing to pad."""
    if not any(begin) and not any(end):
        return x
    widths = [(0, 0), (0, 0)] + list(zip(begin, end, strict=True))
    return np.pad(x, widths, mode="constant", constant_values=value)


def tap_slices(taps: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
               out: Sequence[int], offset: Sequence[int] | None = None) -> tuple[slice, ...]:
    """Index (over N, C and spatial axes) of the input pixels that kernel tap `taps` sees for each output."""
    offset = offset or [0] * len(taps)
    spans = [
        slice(o0 + t * d, o0 + t * d + s * (o - 1) + 1, s)
        for t, s, d, o, o0 in zip(taps, strides, dilations, out, offset, strict=True)
    ]
    return (slice(None), slice(None), *spans)


def _check_kernel(op: str, w: np.ndarray, kernel_shape: Sequence[int] | None) -> None:
    if kernel_shape is not None and list(kernel_shape) != list(w.shape[2:]):
        raise ModelError(f"{op}: kernel_shape {list(kernel_shape)} does not match weight shape {w.shape}")


def _depthwise(xp: np.ndarray, w: np.ndarray, strides: list[int], dilations: list[int],
               out: list[int]) -> np.ndarray:
    """One multiply-add of a shifted input view per kernel tap: no im2col copy for depthwise."""
    n, c = xp.shape[:2]
    mult = w.shape[0] // c
    rank = len(out)
    wc = w.reshape(c, mult, *w.shape[2:])
    y = np.zeros((n, c, mult, *out), xp.dtype)
    tmp = np.empty_like(y)
    for taps in itertools.product(*(range(k) for k in w.shape[2:])):
        view = xp[tap_slices(taps, strides, dilations, out)][:, :, None]
        np.multiply(view, wc[(slice(None), slice(None), *taps)].reshape(1, c, mult, *(1,) * rank), out=tmp)
        y += tmp
    return y.reshape(n, c * mult, *out)


def _im2col(xp: np.ndarray, w: np.ndarray, group: int, strides: list[int], dilations: list[int],
            out: list[int]) -> np.ndarray:
    """Grouped convolution as one batched matmul over gathered patches."""
    n, c = xp.shape[:2]
    m, kernel, rank = w.shape[0], w.shape[2:], len(out)
    spatial = tuple(range(2, 2 + rank))
    if all(k == 1 for k in kernel):
        cols = xp[tap_slices([0] * rank, strides, dilations, out)]
    else:
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
        win = sliding_window_view(xp, extent, axis=spatial)
        win = win[(slice(None), slice(None), *(slice(None, None, s) for s in strides),
                   *(slice(None, None, d) for d in dilations))]
        # (N, C, out..., k...) -> (N, C, k..., out...) so rows are (channel, tap), matching w's layout.
        cols = win.transpose(0, 1, *range(2 + rank, 2 + 2 * rank), *spatial)
    cols = cols.reshape(n, group, -1, int(np.prod(out)))
    wg = w.reshape(group, m // group, -1)
    return np.matmul(wg, cols).reshape(n, m, *out)


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, auto_pad: str,
         dilations: Sequence[int] | None = None, group: int, kernel_shape: Sequence[int] | None = None,
         pads: Sequence[int] | None = None, strides: Sequence[int] | None = None,
         activation: str | None = None, activation_params: Sequence[float] = ()) -> np.ndarray:
    """Conv: grouped N-D convolution with optional bias and fused activation."""
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ModelError(f"Conv: input rank {x.ndim} and weight rank {w.ndim} must be equal and >= 3")
    _check_kernel("Conv", w, kernel_shape)
    c, m, rank = x.shape[1], w.shape[0], x.ndim - 2
    if group < 1 or c % group:
        raise ModelError(f"Conv: input channels {c} / group {group} is not an integer")
    if w.shape[1] != c // group or m % group:
        raise ModelError(f"Conv: weight shape {w.shape} does not fit {c} input channels in {group} groups")
    if b is not None and b.shape != (m,):
        raise ModelError(f"Conv: bias shape {b.shape}, expected ({m},)")
    strides = int_list("Conv", "strides", strides, rank, 1)
    dilations = int_list("Conv", "dilations", dilations, rank, 1)
    begin, end = window_pads("Conv", x.shape[2:], w.shape[2:], strides, dilations, pads, auto_pad)
    ct = work_dtype(x.dtype)
    xp = pad_spatial(x.astype(ct, copy=False), begin, end)
    geometry = zip(xp.shape[2:], w.shape[2:], strides, dilations, strict=True)
    out = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in geometry]
    if any(o <= 0 for o in out):
        raise ModelError(f"Conv: kernel {list(w.shape[2:])} is larger than padded input {list(xp.shape[2:])}")
    wc = w.astype(ct, copy=False)
    if group == c and group > 1:
        y = _depthwise(xp, wc, strides, dilations, out)
    else:
        y = _im2col(xp, wc, group, strides, dilations, out)
    if b is not None:
        y += b.astype(ct, copy=False).reshape(1, m, *(1,) * rank)
    return apply_activation(y, activation, activation_params).astype(x.dtype, copy=False)


def transpose_pads(op: str, x: np.ndarray, kernel: Sequence[int], strides: list[int], dilations: list[int],
                    out_pad: list[int], output_shape: Sequence[int] | None, pads: Sequence[int] | None,
                    auto_pad: str) -> tuple[list[int], list[int]]:
    """ConvTranspose's begin pads and output size, per the ONNX rules."""
    in_sp, rank = x.shape[2:], x.ndim - 2
    geometry = zip(in_sp, strides, out_pad, kernel, dilations, strict=True)
    full = [s * (i - 1) + p + (k - 1) * d + 1 for i, s, p, k, d in geometry]
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [i * s for i, s in zip(in_sp, strides, strict=True)]
    if output_shape is not None:
        # Some exporters write the full N, C, spatial shape: only the spatial part counts.
        size = [int(v) for v in output_shape][-rank:]
        if len(size) != rank:
            raise ModelError(f"{op}: output_shape {list(output_shape)} has fewer than {rank} spatial sizes")
        totals = [f - o for f, o in zip(full, size, strict=True)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in totals]
        else:
            begin = [t - t // 2 for t in totals]
        return begin, size
    if auto_pad == "VALID":
        pads = None
    elif auto_pad not in ("NOTSET", ""):
        raise ModelError(f"{op}: auto_pad {auto_pad!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    flat = int_list(op, "pads", pads, 2 * rank, 0)
    size = [f - flat[i] - flat[rank + i] for i, f in enumerate(full)]
    if any(s <= 0 for s in size):
        raise ModelError(f"{op}: pads {flat} leave an empty output (full size {full})")
    return flat[:rank], size


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, auto_pad: str,
                   dilations: Sequence[int] | None = None, group: int,
                   kernel_shape: Sequence[int] | None = None, output_padding: Sequence[int] | None = None,
                   output_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                   strides: Sequence[int] | None = None, activation: str | None = None,
                   activation_params: Sequence[float] = ()) -> np.ndarray:
    """ConvTranspose: matmul to per-tap columns, then scatter-add each tap into the output (col2im)."""
    op = "ConvTranspose"
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ModelError(f"{op}: input rank {x.ndim} and weight rank {w.ndim} must be equal and >= 3")
    _check_kernel(op, w, kernel_shape)
    n, c, rank = x.shape[0], x.shape[1], x.ndim - 2
    if group < 1 or c % group:
        raise ModelError(f"{op}: input channels {c} / group {group} is not an integer")
    if w.shape[0] != c:
        raise ModelError(f"{op}: weight shape {w.shape} needs {c} rows, one per input channel")
    m, kernel, in_sp = w.shape[1] * group, w.shape[2:], x.shape[2:]
    if b is not None and b.shape != (m,):
        raise ModelError(f"{op}: bias shape {b.shape}, expected ({m},)")
    strides = int_list(op, "strides", strides, rank, 1)
    dilations = int_list(op, "dilations", dilations, rank, 1)
    out_pad = int_list(op, "output_padding", output_padding, rank, 0)
    begin, size = transpose_pads(op, x, kernel, strides, dilations, out_pad, output_shape, pads, auto_pad)

    ct = work_dtype(x.dtype)
    xg = x.astype(ct, copy=False).reshape(n, group, c // group, -1)
    wg = w.astype(ct, copy=False).reshape(group, c // group, -1)
    cols = np.matmul(wg.transpose(0, 2, 1), xg).reshape(n, m, *kernel, *in_sp)
    # The buffer spans both the full result and the requested window, so negative pads just add zeros.
    geometry = zip(in_sp, strides, kernel, dilations, strict=True)
    full = [s * (i - 1) + (k - 1) * d + 1 for i, s, k, d in geometry]
    lo = [min(0, bg) for bg in begin]
    hi = [max(f, bg + sz) for f, bg, sz in zip(full, begin, size, strict=True)]
    buf = np.zeros((n, m, *(h - lw for h, lw in zip(hi, lo, strict=True))), ct)
    for taps in itertools.product(*(range(k) for k in kernel)):
        target = tap_slices(taps, strides, dilations, in_sp, [-lw for lw in lo])
        buf[target] += cols[(slice(None), slice(None), *taps)]
    crop = tuple(slice(bg - lw, bg - lw + sz) for bg, lw, sz in zip(begin, lo, size, strict=True))
    # A contiguous result, not a window into the larger scratch buffer.
    y = np.ascontiguousarray(buf[(slice(None), slice(None), *crop)])
    if b is not None:
        y += b.astype(ct, copy=False).reshape(1, m, *(1,) * rank)
    return apply_activation(y, activation, activation_params).astype(x.dtype, copy=False)


OPS = {"Conv": conv, "ConvTranspose": conv_transpose}
