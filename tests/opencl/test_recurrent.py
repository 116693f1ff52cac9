"""LSTM, GRU and RNN on OpenCL: every node on the device (projection + recurrence kernels), outputs equal to
the NumPy runtime, which tests/ops/test_recurrent.py checks against onnxruntime."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.opencl.conftest import compare, make_model
from tests.ops.test_recurrent import GATES, _inputs

NAMES = ["x", "w", "r", "b", "sequence_lens", "initial_h", "initial_c", "p"]


def _model(op: str, inputs: list, attrs: dict, constant_weights: bool):
    """X (and the states) as graph inputs; W, R, B, P, sequence_lens as initializers when constant_weights."""
    nodes_in, graph_in, inits, feeds = [], [], [], {}
    for name, value in zip(NAMES, inputs):
        if value is None:
            nodes_in.append("")
            continue
        nodes_in.append(name)
        if constant_weights and name in ("w", "r", "b", "p", "sequence_lens"):
            inits.append((name, value))
        else:
            elem = TensorProto.INT32 if value.dtype == np.int32 else TensorProto.FLOAT
            graph_in.append((name, list(value.shape), elem))
            feeds[name] = value
    outs = ["y", "y_h", "y_c"][: 3 if op == "LSTM" else 2]
    node = helper.make_node(op, nodes_in, outs, **attrs)
    return make_model([node], graph_in, [(o, None) for o in outs], inits, opset=14), feeds


@pytest.mark.parametrize(("op", "direction", "layout", "lens", "init"),
                         list(itertools.product(GATES, ("forward", "reverse", "bidirectional"), (0, 1), (False, True),
                                                (False, True))))
def test_recurrent_on_the_device(op: str, direction: str, layout: int, lens: bool, init: bool) -> None:
    dirs = 2 if direction == "bidirectional" else 1
    inputs = _inputs(op, dirs, layout, lens, init, peep=True)
    attrs = {"hidden_size": inputs[2].shape[-1], "direction": direction, "layout": layout}
    model, feeds = _model(op, inputs, attrs, constant_weights=True)
    compare(model, feeds)


@pytest.mark.parametrize(("op", "attrs"), [("LSTM", {"clip": 0.5, "input_forget": 1}),
                                           ("GRU", {"linear_before_reset": 1}), ("RNN", {"activations": ["Relu"]})])
def test_recurrent_options_and_run_time_weights(op: str, attrs: dict) -> None:
    inputs = _inputs(op, 1, 0, True, True, peep=True)
    model, feeds = _model(op, inputs, {"hidden_size": inputs[2].shape[-1], **attrs}, constant_weights=False)
    compare(model, feeds)


def test_custom_activation_runs_on_the_host_and_is_right() -> None:
    inputs = _inputs("GRU", 1, 0, False, False, peep=False)
    attrs = {"hidden_size": inputs[2].shape[-1], "activations": ["HardSigmoid", "Softsign"]}
    model, feeds = _model("GRU", inputs, attrs, constant_weights=True)
    compare(model, feeds, expect_device=None)
