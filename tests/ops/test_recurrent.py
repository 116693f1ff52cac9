"""LSTM, GRU and RNN against onnxruntime: directions, layouts, sequence_lens, initial states, peepholes, clip,
custom activations, linear_before_reset, input_forget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.ops.helpers import check_against, ours, run_ort

rng = np.random.default_rng(11)
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _inputs(op: str, dirs: int, layout: int, lens: bool, init: bool, peep: bool) -> list:
    g = GATES[op]
    x = rng.standard_normal((BATCH, SEQ, INPUT) if layout else (SEQ, BATCH, INPUT)).astype(np.float32)
    w = (rng.standard_normal((dirs, g * HIDDEN, INPUT)) * 0.5).astype(np.float32)
    r = (rng.standard_normal((dirs, g * HIDDEN, HIDDEN)) * 0.5).astype(np.float32)
    b = (rng.standard_normal((dirs, 2 * g * HIDDEN)) * 0.2).astype(np.float32)
    seq_lens = np.array([SEQ, 2, 4][:BATCH], np.int32) if lens else None
    state = (BATCH, dirs, HIDDEN) if layout else (dirs, BATCH, HIDDEN)
    h0 = rng.standard_normal(state).astype(np.float32) if init else None
    ins = [x, w, r, b, seq_lens, h0]
    if op == "LSTM":
        c0 = rng.standard_normal(state).astype(np.float32) if init else None
        ins += [c0, (rng.standard_normal((dirs, 3 * HIDDEN)) * 0.3).astype(np.float32) if peep else None]
    while ins[-1] is None:
        ins.pop()
    return ins


def _oracle(op: str, inputs: list, attrs: dict, n_out: int) -> list[np.ndarray]:
    """onnxruntime's outputs; it has no layout 1, so that layout is run as layout 0 on transposed inputs
    (X and the initial states) and its outputs transposed back."""
    if not attrs.get("layout"):
        return run_ort(op, inputs, attrs, 14, n_outputs=n_out)
    swapped = [None if a is None else (np.swapaxes(a, 0, 1) if i in (0, 5, 6) else a) for i, a in enumerate(inputs)]
    out = run_ort(op, swapped, {**attrs, "layout": 0}, 14, n_outputs=n_out)
    return [np.transpose(out[0], (2, 0, 1, 3))] + [np.swapaxes(o, 0, 1) for o in out[1:]]


CASES = [(op, direction, layout, lens, init)
         for op, direction, layout, lens, init in itertools.product(
             GATES, ("forward", "reverse", "bidirectional"), (0, 1), (False, True), (False, True))]


@pytest.mark.parametrize(("op", "direction", "layout", "lens", "init"), CASES)
def test_recurrent_matches_onnxruntime(op: str, direction: str, layout: int, lens: bool, init: bool) -> None:
    dirs = 2 if direction == "bidirectional" else 1
    inputs = _inputs(op, dirs, layout, lens, init, peep=True)
    attrs = {"hidden_size": HIDDEN, "direction": direction, "layout": layout}
    n_out = 3 if op == "LSTM" else 2
    want = _oracle(op, inputs, attrs, n_out)
    got = ours(op, 14, *inputs, **attrs)
    for w, g in zip(want, got):
        check_against([w], g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("op", "attrs"), [
    ("LSTM", {"clip": 0.5}),
    ("LSTM", {"input_forget": 1}),
    ("LSTM", {"activations": ["HardSigmoid", "LeakyRelu", "Softsign"], "activation_alpha": [0.3, 0.1],
              "activation_beta": [0.4]}),
    ("GRU", {"linear_before_reset": 1}),
    ("GRU", {"clip": 0.7, "activations": ["Sigmoid", "Relu"]}),
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"clip": 0.3}),
])
def test_recurrent_options_match_onnxruntime(op: str, attrs: dict) -> None:
    inputs = _inputs(op, 1, 0, True, True, peep=True)
    attrs = {"hidden_size": HIDDEN, **attrs}
    n_out = 3 if op == "LSTM" else 2
    want = run_ort(op, inputs, attrs, 14, n_outputs=n_out)
    for w, g in zip(want, ours(op, 14, *inputs, **attrs)):
        check_against([w], g, rtol=1e-4, atol=1e-5)
