"""Each graph pass must keep the outputs equal to onnxruntime's, and must actually fire."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from clmace import InferenceSession
from clmace.frontend.convert import build_graph
from tests.onnx_build import assert_close, make_model, ort_run

rng = np.random.default_rng(0)


def _bn(prefix: str, c: int):
    return [(f"{prefix}_s", rng.uniform(0.5, 1.5, c).astype(np.float32)),
            (f"{prefix}_b", rng.standard_normal(c).astype(np.float32)),
            (f"{prefix}_m", rng.standard_normal(c).astype(np.float32)),
            (f"{prefix}_v", rng.uniform(0.5, 2, c).astype(np.float32))]


def _check(model, feeds, expect_ops: dict[str, int], expect_nodes: int) -> None:
    graph, _ = build_graph(model)
    assert graph.op_histogram() == expect_ops
    assert len(graph.nodes) == expect_nodes
    want = ort_run(model, feeds)
    got = InferenceSession(model, device="cpu").run(None, feeds)
    for g, w in zip(got, want):
        assert_close(g, w)


@pytest.mark.parametrize("act,extra_nodes,extra_inits,name", [
    ("Relu", [], [], "Relu"),
    ("Clip", [], [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))], "Clip"),
    ("HardSwish", [], [], "HardSwish"),
    ("HardSigmoid", [], [], "HardSigmoid"),
    ("Sigmoid", [], [], "Sigmoid"),
    ("LeakyRelu", [], [], "LeakyRelu"),
    ("Tanh", [], [], "Tanh"),
])
def test_conv_bn_activation_fused(act, extra_nodes, extra_inits, name):
    """Conv -> BatchNormalization -> activation becomes one Conv with the activation fused."""
    inputs = ["bn", "lo", "hi"] if act == "Clip" else ["bn"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g_s", "g_b", "g_m", "g_v"], ["bn"], epsilon=1e-3),
             helper.make_node(act, inputs, ["y"])]
    inits = [("w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32))] + _bn("g", 8) + extra_inits
    model = make_model(nodes, [("x", [1, 3, 9, 9])], [("y", [1, 8, 9, 9])], inits)
    _check(model, {"x": rng.standard_normal((1, 3, 9, 9)).astype(np.float32)}, {f"Conv+{name}": 1}, 1)


def test_swish_and_bias_add_fused():
    """Conv (no bias) + Add(per-channel const) + x*sigmoid(x) -> Conv+Swish."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2]),
             helper.make_node("Add", ["c", "b"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Mul", ["a", "s"], ["y"])]
    inits = [("w", rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
             ("b", rng.standard_normal((4, 1, 1)).astype(np.float32))]
    model = make_model(nodes, [("x", [2, 2, 11, 11])], [("y", [2, 4, 5, 5])], inits)
    _check(model, {"x": rng.standard_normal((2, 2, 11, 11)).astype(np.float32)}, {"Conv+Swish": 1}, 1)


@pytest.mark.parametrize("opset,divide", [(11, True), (13, False), (9, True)])
def test_spelt_out_hard_swish_becomes_a_fused_activation(opset, divide):
    """Conv, then x * Clip(x + 3, 0, 6) / 6 (as Paddle and Keras export HardSwish; Clip bounds as inputs or,
    before opset 11, attributes; / 6 or * 1/6) -> one Conv+HardSwish, at any opset."""
    bounds = ["lo", "hi"] if opset >= 11 else []
    clip_attrs = {} if opset >= 11 else {"min": 0.0, "max": 6.0}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "three"], ["a"]),
             helper.make_node("Clip", ["a", *bounds], ["k"], **clip_attrs),
             helper.make_node("Mul", ["k", "c"], ["m"]),
             helper.make_node("Div" if divide else "Mul", ["m", "six" if divide else "sixth"], ["y"])]
    inits = [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)), ("three", np.array(3, np.float32)),
             ("six", np.array(6, np.float32)), ("sixth", np.array(1 / 6, np.float32))]
    if opset >= 11:
        inits += [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]
    model = make_model(nodes, [("x", [1, 3, 7, 7])], [("y", [1, 4, 7, 7])], inits, opset=opset)
    _check(model, {"x": 2 * rng.standard_normal((1, 3, 7, 7)).astype(np.float32)}, {"Conv+HardSwish": 1}, 1)


def test_gemm_bn_relu_fused():
    """Gemm(transB) -> BatchNormalization -> Relu becomes one Gemm+Relu."""
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1, alpha=0.5),
             helper.make_node("BatchNormalization", ["g", "n_s", "n_b", "n_m", "n_v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["y"])]
    inits = [("w", rng.standard_normal((6, 5)).astype(np.float32))] + _bn("n", 6)
    model = make_model(nodes, [("x", [3, 5])], [("y", [3, 6])], inits)
    _check(model, {"x": rng.standard_normal((3, 5)).astype(np.float32)}, {"Gemm+Relu": 1}, 1)


def test_shape_chain_folded():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape folds to a constant shape: only Reshape is left."""
    nodes = [helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("Shape", ["xi"], ["shp"]),
             helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["newshape"], axis=0),
             helper.make_node("Reshape", ["xi", "newshape"], ["r"]),
             helper.make_node("Dropout", ["r"], ["y"])]
    inits = [("zero", np.array(0, np.int64)), ("axes0", np.array([0], np.int64)),
             ("minus1", np.array([-1], np.int64))]
    model = make_model(nodes, [("x", [2, 3, 4])], [("y", [2, 12])], inits)
    _check(model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)}, {"Reshape": 1}, 1)


def test_identity_feeding_graph_output_keeps_name():
    """Removing an Identity whose output is a graph output renames the producer's output."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    model = make_model(nodes, [("x", [4])], [("y", [4])])
    sess = InferenceSession(model)
    assert [o.name for o in sess.get_outputs()] == ["y"]
    _check(model, {"x": np.array([-1, 0, 1, 2], np.float32)}, {"Relu": 1}, 1)


def test_shared_activation_input_not_fused():
    """A Conv output read by two nodes must not absorb the activation (the other reader needs it raw)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["c", "r"], ["y"])]
    inits = [("w", rng.standard_normal((2, 1, 1, 1)).astype(np.float32))]
    model = make_model(nodes, [("x", [1, 1, 3, 3])], [("y", [1, 2, 3, 3])], inits)
    _check(model, {"x": rng.standard_normal((1, 1, 3, 3)).astype(np.float32)},
           {"Add": 1, "Conv": 1, "Relu": 1}, 3)


def test_int_dtype_roundtrip_through_graph():
    """Integer tensors keep their dtype through the runtime."""
    nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
    model = make_model(nodes, [("a", [3], TensorProto.INT64), ("b", [3], TensorProto.INT64)],
                       [("y", [3], TensorProto.INT64)])
    feeds = {"a": np.array([1, 2, 3], np.int64), "b": np.array([4, 5, 6], np.int64)}
    _check(model, feeds, {"Add": 1}, 1)
