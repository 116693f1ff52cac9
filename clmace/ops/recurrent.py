"""Recurrent ops (LSTM, GRU, RNN) per the ONNX spec: directions, sequence_lens, initial states, peepholes,
clip, custom activations and both layouts. The input projections of all time steps are one GEMM; only the
recurrence loops over time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from clmace.core.errors import ModelError
from clmace.ops.conv import work_dtype

Act = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


# name -> (number of parameters it takes from activation_alpha/beta, defaults, function of (x, alpha, beta))
ACTIVATIONS: dict[str, tuple[int, tuple[float, ...], Callable[..., np.ndarray]]] = {
    "relu": (0, (), lambda x: np.maximum(x, 0)),
    "tanh": (0, (), np.tanh),
    "sigmoid": (0, (), _sigmoid),
    "softsign": (0, (), lambda x: x / (1 + np.abs(x))),
    "softplus": (0, (), lambda x: np.logaddexp(0, x)),
    "affine": (2, (1.0, 0.0), lambda x, a, b: a * x + b),
    "leakyrelu": (1, (0.01,), lambda x, a: np.where(x >= 0, x, a * x)),
    "thresholdedrelu": (1, (1.0,), lambda x, a: np.where(x > a, x, 0)),
    "scaledtanh": (2, (1.0, 1.0), lambda x, a, b: a * np.tanh(b * x)),
    "hardsigmoid": (2, (0.2, 0.5), lambda x, a, b: np.clip(a * x + b, 0, 1)),
    "elu": (1, (1.0,), lambda x, a: np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0)) - 1))),
}


def activation_functions(op: str, names: Sequence[str], alphas: Sequence[float] | None,
                         betas: Sequence[float] | None) -> list[Act]:
    """The activation callables, alphas and betas consumed in order by the functions that take them."""
    alphas, betas = list(alphas or []), list(betas or [])
    out: list[Act] = []
    for name in names:
        entry = ACTIVATIONS.get(name.lower())
        if entry is None:
            raise ModelError(f"{op}: activation {name!r} is not one of {sorted(ACTIVATIONS)}")
        count, defaults, fn = entry
        params = []
        if count >= 1:
            params.append(float(alphas.pop(0)) if alphas else defaults[0])
        if count >= 2:
            params.append(float(betas.pop(0)) if betas else defaults[1])
        out.append((lambda f, p: (lambda x: f(x, *p)))(fn, params))
    return out


@dataclass
class _Setup:
    """Inputs of one recurrent node in layout 0, in the working dtype."""

    x: np.ndarray  # [seq, batch, input]
    w: np.ndarray  # [dirs, gates*hidden, input]
    r: np.ndarray  # [dirs, gates*hidden, hidden]
    b: np.ndarray  # [dirs, 2*gates*hidden]
    lens: np.ndarray  # [batch]
    dirs: int
    hidden: int


def _setup(op: str, gates: int, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
           sequence_lens: np.ndarray | None, direction: str, hidden_size: int | None, layout: int) -> _Setup:
    dirs = {"forward": 1, "reverse": 1, "bidirectional": 2}.get(direction)
    if dirs is None:
        raise ModelError(f"{op}: direction {direction!r} is not forward, reverse or bidirectional")
    if x.ndim != 3 or w.ndim != 3 or r.ndim != 3:
        raise ModelError(f"{op}: X, W and R must be 3-D, got {x.shape}, {w.shape}, {r.shape}")
    ct = work_dtype(x.dtype)
    x = np.swapaxes(x, 0, 1) if layout else x
    hidden = int(hidden_size) if hidden_size else r.shape[-1]
    if w.shape != (dirs, gates * hidden, x.shape[2]) or r.shape != (dirs, gates * hidden, hidden):
        raise ModelError(f"{op}: W {w.shape} / R {r.shape} do not fit {dirs} direction(s), {gates} gates, "
                         f"hidden_size {hidden} and input size {x.shape[2]}")
    b = np.zeros((dirs, 2 * gates * hidden), ct) if b is None else b.astype(ct)
    seq, batch = x.shape[:2]
    lens = np.full(batch, seq, np.int64) if sequence_lens is None else np.asarray(sequence_lens, np.int64)
    if lens.shape != (batch,) or (lens < 0).any() or (lens > seq).any():
        raise ModelError(f"{op}: sequence_lens {lens.tolist()} must hold {batch} lengths in [0, {seq}]")
    return _Setup(x.astype(ct), w.astype(ct), r.astype(ct), b, lens, dirs, hidden)


def _state(init: np.ndarray | None, s: _Setup, layout: int) -> np.ndarray:
    """An initial state as [dirs, batch, hidden] (zeros when omitted)."""
    if init is None:
        return np.zeros((s.dirs, s.x.shape[1], s.hidden), s.x.dtype)
    return (np.swapaxes(init, 0, 1) if layout else init).astype(s.x.dtype)


def _steps(s: _Setup, d: int, reverse: bool) -> list[tuple[int, np.ndarray]]:
    """(time step, mask of the batch rows still inside their sequence) in processing order."""
    seq = s.x.shape[0]
    order = range(seq - 1, -1, -1) if reverse else range(seq)
    return [(t, (t < s.lens)[:, None]) for t in order]


def _clip(v: np.ndarray, clip: float | None) -> np.ndarray:
    return v if clip is None else np.clip(v, -clip, clip)


def _outputs(ys: np.ndarray, finals: list[np.ndarray], dtype: np.dtype, layout: int) -> list[np.ndarray]:
    """Y [seq, dirs, batch, hidden] and each final state [dirs, batch, hidden], in the node's layout."""
    if layout:
        return [np.transpose(ys, (2, 0, 1, 3)).astype(dtype)] + [np.swapaxes(f, 0, 1).astype(dtype)
                                                                for f in finals]
    return [ys.astype(dtype)] + [f.astype(dtype) for f in finals]


def _recur(op: str, gates: int, s: _Setup, direction: str, states: list[np.ndarray],
           cell: Callable[[int, np.ndarray, list[np.ndarray]], list[np.ndarray]]) -> tuple[np.ndarray, list]:
    """Run `cell` over time for every direction; rows past their sequence length keep their state and
    output zeros."""
    seq, batch = s.x.shape[:2]
    ys = np.zeros((seq, s.dirs, batch, s.hidden), s.x.dtype)
    finals = [st.copy() for st in states]
    for d in range(s.dirs):
        reverse = direction == "reverse" or d == 1
        # All time steps' input projections at once: [seq, batch, gates*hidden].
        xw = s.x @ s.w[d].T + s.b[d, : gates * s.hidden]
        cur = [st[d] for st in states]
        for t, live in _steps(s, d, reverse):
            new = cell(d, xw[t], cur)
            cur = [np.where(live, n, c) for n, c in zip(new, cur)]
            ys[t, d] = np.where(live, cur[0], 0)
        for f, c in zip(finals, cur):
            f[d] = c
    return ys, finals


def lstm(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
         sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None,
         initial_c: np.ndarray | None = None, p: np.ndarray | None = None, *,
         activation_alpha: Sequence[float] | None = None, activation_beta: Sequence[float] | None = None,
         activations: Sequence[str] | None = None, clip: float | None = None, direction: str,
         hidden_size: int | None = None, input_forget: int, layout: int = 0,
         output_sequence: int = 0) -> tuple[np.ndarray, ...]:
    """LSTM (gates i, o, f, c; peepholes i, o, f): returns Y, Y_h, Y_c."""
    s = _setup("LSTM", 4, x, w, r, b, sequence_lens, direction, hidden_size, layout)
    names = list(activations) if activations else ["Sigmoid", "Tanh", "Tanh"] * s.dirs
    acts = activation_functions("LSTM", names, activation_alpha, activation_beta)
    peep = np.zeros((s.dirs, 3 * s.hidden), s.x.dtype) if p is None else p.astype(s.x.dtype)
    hs = s.hidden

    def cell(d: int, xw: np.ndarray, cur: list[np.ndarray]) -> list[np.ndarray]:
        h, c = cur
        f_act, g_act, h_act = acts[3 * d: 3 * d + 3]
        g = xw + h @ s.r[d].T + s.b[d, 4 * hs:]
        pi, po, pf = peep[d, :hs], peep[d, hs: 2 * hs], peep[d, 2 * hs:]
        i = f_act(_clip(g[:, :hs] + pi * c, clip))
        f = 1 - i if input_forget else f_act(_clip(g[:, 2 * hs: 3 * hs] + pf * c, clip))
        c_new = f * c + i * g_act(_clip(g[:, 3 * hs:], clip))
        o = f_act(_clip(g[:, hs: 2 * hs] + po * c_new, clip))
        return [o * h_act(c_new), c_new]

    ys, finals = _recur("LSTM", 4, s, direction, [_state(initial_h, s, layout), _state(initial_c, s, layout)],
                        cell)
    return tuple(_outputs(ys, finals, x.dtype, layout))


def gru(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None, activation_beta: Sequence[float] | None = None,
        activations: Sequence[str] | None = None, clip: float | None = None, direction: str,
        hidden_size: int | None = None, layout: int = 0, linear_before_reset: int,
        output_sequence: int = 0) -> tuple[np.ndarray, ...]:
    """GRU (gates z, r, h): returns Y, Y_h."""
    s = _setup("GRU", 3, x, w, r, b, sequence_lens, direction, hidden_size, layout)
    names = list(activations) if activations else ["Sigmoid", "Tanh"] * s.dirs
    acts = activation_functions("GRU", names, activation_alpha, activation_beta)
    hs = s.hidden

    def cell(d: int, xw: np.ndarray, cur: list[np.ndarray]) -> list[np.ndarray]:
        (h,) = cur
        f_act, g_act = acts[2 * d: 2 * d + 2]
        rw, rb = s.r[d], s.b[d, 3 * hs:]
        zr = xw[:, : 2 * hs] + h @ rw[: 2 * hs].T + rb[: 2 * hs]
        z = f_act(_clip(zr[:, :hs], clip))
        rg = f_act(_clip(zr[:, hs:], clip))
        if linear_before_reset:
            cand = xw[:, 2 * hs:] + rg * (h @ rw[2 * hs:].T + rb[2 * hs:])
        else:
            cand = xw[:, 2 * hs:] + (rg * h) @ rw[2 * hs:].T + rb[2 * hs:]
        return [(1 - z) * g_act(_clip(cand, clip)) + z * h]

    ys, finals = _recur("GRU", 3, s, direction, [_state(initial_h, s, layout)], cell)
    return tuple(_outputs(ys, finals, x.dtype, layout))


def rnn(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None, activation_beta: Sequence[float] | None = None,
        activations: Sequence[str], clip: float | None = None, direction: str,
        hidden_size: int | None = None, layout: int = 0, output_sequence: int = 0) -> tuple[np.ndarray, ...]:
    """RNN (one gate): returns Y, Y_h."""
    s = _setup("RNN", 1, x, w, r, b, sequence_lens, direction, hidden_size, layout)
    names = list(activations)
    if len(names) < s.dirs:  # the schema's default names one function for one direction
        names = names * s.dirs
    acts = activation_functions("RNN", names, activation_alpha, activation_beta)

    def cell(d: int, xw: np.ndarray, cur: list[np.ndarray]) -> list[np.ndarray]:
        (h,) = cur
        return [acts[d](_clip(xw + h @ s.r[d].T + s.b[d, s.hidden:], clip))]

    ys, finals = _recur("RNN", 1, s, direction, [_state(initial_h, s, layout)], cell)
    return tuple(_outputs(ys, finals, x.dtype, layout))


OPS = {"LSTM": lstm, "GRU": gru, "RNN": rnn}
