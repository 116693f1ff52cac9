"""Control flow on OpenCL: If/Loop/Scan cases of the ONNX node suite give the right outputs; an If decided by
shapes or by a scalar control input is inlined, so every node runs on the device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

import clmace
from tests.opencl.conftest import compare, make_model, runtime_of
from tests.test_onnx_node_suite import CASES, _array

CONTROL = [c for c in CASES if c.name in ("test_if", "test_loop11", "test_scan9_sum", "test_scan_sum",
                                          "test_range_float_type_positive_delta_expanded",
                                          "test_range_int32_type_negative_delta_expanded")]


@pytest.mark.parametrize("case", CONTROL, ids=[c.name for c in CONTROL])
def test_node_suite_control_flow_on_opencl(case) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bodies that stay control flow run on the host: checked all the same
        session = clmace.InferenceSession(case.model, device="opencl")
        names = [arg.name for arg in session.get_inputs()]
        for inputs, outputs in case.data_sets:
            got = session.run(None, dict(zip(names, (_array(v) for v in inputs), strict=True)))
            for g, want in zip(got, (_array(v) for v in outputs)):
                np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


def _branch(name: str, scale: float) -> object:
    """A body reading the outer x: y = Relu(x) * scale."""
    nodes = [helper.make_node("Relu", ["x"], [f"{name}_r"]),
             helper.make_node("Mul", [f"{name}_r", f"{name}_s"], [f"{name}_y"])]
    s = helper.make_tensor(f"{name}_s", TensorProto.FLOAT, [], [scale])
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None)],
                             [s])


def test_if_on_a_scalar_input_is_inlined_per_value() -> None:
    """If(mode == 1) over a scalar int input: each value gets its plan with the branch inlined (no host node),
    and the outputs equal the NumPy runtime's for both values."""
    nodes = [helper.make_node("Equal", ["mode", "one"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=_branch("then", 2.0),
                              else_branch=_branch("else", -3.0))]
    model = make_model(nodes, [("x", [2, 5]), ("mode", [], TensorProto.INT64)], [("y", None)],
                       [("one", np.array(1, np.int64))])
    x = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    for mode in (1, 0):
        sess = compare(model, {"x": x, "mode": np.array(mode, np.int64)})
        assert "If" not in {n.op_type for n in runtime_of(sess).plan.nodes}


def test_if_on_a_shape_is_inlined() -> None:
    """If(Size(x) > 8): decided once the input shape is known."""
    nodes = [helper.make_node("Size", ["x"], ["n"]),
             helper.make_node("Greater", ["n", "eight"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=_branch("then", 2.0),
                              else_branch=_branch("else", -3.0))]
    model = make_model(nodes, [("x", ["a", 5])], [("y", None)], [("eight", np.array(8, np.int64))])
    for rows in (1, 3):
        x = np.random.default_rng(rows).standard_normal((rows, 5)).astype(np.float32)
        sess = compare(model, {"x": x})
        assert "If" not in {n.op_type for n in runtime_of(sess).plan.nodes}


def test_a_branch_of_another_shape_re_plans() -> None:
    """If(sum(x) > 0) whose branches give different shapes: the plan made for one branch meets the other, the
    host step says so (PlannedShapeError) and the session plans again for these inputs; outputs stay right."""
    then = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["t_y"], axis=0)], "then", [],
                             [helper.make_tensor_value_info("t_y", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Relu", ["x"], ["e_y"])], "else", [],
                              [helper.make_tensor_value_info("e_y", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    model = make_model(nodes, [("x", [2, 3])], [("y", None)], [("zero", np.array(0, np.float32))], opset=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = clmace.InferenceSession(model, device="opencl")
        for x in (np.ones((2, 3), np.float32), -np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)):
            y = sess.run(None, {"x": x})[0]
            want = np.concatenate([x, x]) if x.sum() > 0 else np.maximum(x, 0)
            np.testing.assert_array_equal(y, want)
