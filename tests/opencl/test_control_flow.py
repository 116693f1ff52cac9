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
    """Each case's bodies (test_loop11's Slice at the iteration number included) run on the device."""
    session = clmace.InferenceSession(case.model, device="opencl")
    names = [arg.name for arg in session.get_inputs()]
    for inputs, outputs in case.data_sets:
        got = session.run(None, dict(zip(names, (_array(v) for v in inputs), strict=True)))
        for g, want in zip(got, (_array(v) for v in outputs)):
            np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)
        assert session.runtime.plan.host_nodes() == [], session.runtime.plan.host_nodes()


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


# --- bodies as device plans -------------------------------------------------------------------------------------

def _vi(name: str, elem: int = TensorProto.FLOAT, shape=None) -> object:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, initializers=()) -> object:
    """A checked opset-17 model; inputs (name, shape[, elem]), outputs (name, shape[, elem])."""
    import onnx
    from onnx import numpy_helper

    outs = [_vi(o[0], o[2] if len(o) > 2 else TensorProto.FLOAT, o[1]) for o in outputs]
    graph = helper.make_graph(nodes, "test", [_vi(i[0], i[2] if len(i) > 2 else TensorProto.FLOAT, i[1])
                                              for i in inputs], outs,
                              [numpy_helper.from_array(np.asarray(v), name=k) for k, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def _on_device(model, feeds_list, **options) -> clmace.InferenceSession:
    """Run model on OpenCL for each feeds, compare with onnxruntime; every node must run on the device."""
    from tests.onnx_build import ort_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = clmace.InferenceSession(model, device="opencl", **options)
        for feeds in feeds_list:
            got = sess.run(None, feeds)
            for g, want in zip(got, ort_run(model, feeds), strict=True):
                assert g.shape == want.shape
                np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)
            devices = {n: d for rt in sess._runtimes.values() for n, d in rt.node_devices().items()}
            assert set(devices.values()) <= {"opencl", "view"}, devices
    host = [str(w.message) for w in caught if "run on the host" in str(w.message)]
    assert not host, host
    return sess


def test_loop_body_runs_on_the_device_with_state_and_scan_outputs() -> None:
    """Loop(M=5): h = tanh(h @ W + x); each h stacked: carried state and scan output stay on the device."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "W"], ["hw"]),
         helper.make_node("Add", ["hw", "x"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]),
         helper.make_node("Identity", ["h_out"], ["h_scan"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("h_in", shape=[2, 4])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("h_out", shape=[2, 4]), _vi("h_scan", shape=[2, 4])])
    w = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32) * 0.5
    nodes = [helper.make_node("Loop", ["M", "", "h0"], ["h", "hs"], body=body)]
    model = _model(nodes, [("x", [2, 4]), ("h0", [2, 4])], [("h", [2, 4]), ("hs", [5, 2, 4])],
                   [("M", np.array(5, np.int64)), ("W", w)])
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((2, 4)).astype(np.float32), "h0": rng.standard_normal((2, 4)).astype(np.float32)}
             for _ in range(2)]
    sess = _on_device(model, feeds)
    steps = runtime_of(sess).plan.steps
    assert [type(s).__name__ for s in steps] == ["LoopStep"]


def test_loop_whose_body_decides_when_to_stop() -> None:
    """while (sum(v) < limit) v = v * 2, with a swap of two carried values on the way: the body's condition is
    read back each iteration, the number of iterations depends on the data, state swaps go through scratch."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["a_in", "two"], ["a2"]),
         helper.make_node("Add", ["a2", "b_in"], ["b_out"]),
         helper.make_node("Identity", ["b_in"], ["a_out"]),
         helper.make_node("ReduceSum", ["b_out"], ["s"], keepdims=0),
         helper.make_node("Less", ["s", "limit"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("a_in", shape=[3]),
                 _vi("b_in", shape=[3])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("a_out", shape=[3]), _vi("b_out", shape=[3])])
    nodes = [helper.make_node("Loop", ["", "go", "a0", "b0"], ["a", "b"], body=body)]
    model = _model(nodes, [("go", [], TensorProto.BOOL), ("a0", [3]), ("b0", [3]), ("limit", [])],
                   [("a", [3]), ("b", [3])], [("two", np.array(2.0, np.float32))])
    feeds = [{"go": np.array(True), "a0": np.array([1, 2, 3], np.float32), "b0": np.array([0, 1, 0], np.float32),
              "limit": np.array(lim, np.float32)} for lim in (50.0, 400.0, -1.0)]
    _on_device(model, feeds)


def test_scan_in_both_directions_on_the_device() -> None:
    """Scan-9: running sum over a reversed input, outputs written in reverse too; state and slices on device."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "xt"], ["acc_out"]),
         helper.make_node("Mul", ["acc_out", "xt"], ["yt"])],
        "body", [_vi("acc_in", shape=[3]), _vi("xt", shape=[3])], [_vi("acc_out", shape=[3]), _vi("yt", shape=[3])])
    nodes = [helper.make_node("Scan", ["acc0", "xs"], ["acc", "ys"], body=body, num_scan_inputs=1,
                              scan_input_directions=[1], scan_output_directions=[1])]
    model = _model(nodes, [("acc0", [3]), ("xs", [6, 3])], [("acc", [3]), ("ys", [6, 3])])
    rng = np.random.default_rng(2)
    _on_device(model, [{"acc0": rng.standard_normal(3).astype(np.float32),
                        "xs": rng.standard_normal((6, 3)).astype(np.float32)}])


def test_an_if_on_data_runs_either_branch_on_the_device() -> None:
    """If(sum(x) > 0) with branches of one shape: the condition is read back, the branch taken runs as a device
    plan; the branch the first run did not take is planned when first taken, still with no host node."""
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=_branch("then", 2.0),
                              else_branch=_branch("else", -3.0))]
    model = _model(nodes, [("x", [2, 5])], [("y", [2, 5])], [("zero", np.array(0, np.float32))])
    x = np.random.default_rng(3).standard_normal((2, 5)).astype(np.float32)
    sess = _on_device(model, [{"x": abs(x)}, {"x": -abs(x)}, {"x": abs(x)}])
    assert len(sess._runtimes) == 1  # the other branch did not need another plan


def _typed_if(else_nodes: list, else_out: str, elem: int) -> object:
    """If(sum(x) > 0): the then-branch returns the outer k as it is, the else-branch else_nodes; outputs [3]."""
    then = helper.make_graph([helper.make_node("Identity", ["k"], ["t_y"])], "then", [], [_vi("t_y", elem, [3])])
    other = helper.make_graph(else_nodes, "else", [], [_vi(else_out, elem, [3])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    return nodes


def test_a_small_if_runs_both_branches_and_selects_on_the_device() -> None:
    """An If as Paddle's decoders have in each Loop step (one branch passes an outer value on, the other casts,
    adds and casts back) runs both branches and selects by the condition on the device, nothing read back;
    either condition, alternating on one plan, gives onnxruntime's result."""
    from clmace.backends.opencl.lower.control import IfStep

    else_nodes = [helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
                  helper.make_node("Add", ["kf", "half"], ["ka"]),
                  helper.make_node("Cast", ["ka"], ["e_y"], to=TensorProto.INT64)]
    model = _model(_typed_if(else_nodes, "e_y", TensorProto.INT64), [("x", [2, 5]), ("k", [3], TensorProto.INT64)],
                   [("y", [3], TensorProto.INT64)], [("zero", np.array(0, np.float32)),
                                                     ("half", np.array(2.5, np.float32))])
    x = np.random.default_rng(7).standard_normal((2, 5)).astype(np.float32)
    k = np.array([4, -9, 1], np.int64)
    sess = _on_device(model, [{"x": abs(x), "k": k}, {"x": -abs(x), "k": k}, {"x": abs(x), "k": k + 1},
                              {"x": -abs(x), "k": k - 1}])
    (step,) = [s for s in runtime_of(sess).plan.steps if isinstance(s, IfStep)]
    assert step.selects and all(b is not None for b in step.branches.values())
    assert len(sess._runtimes) == 1


def test_an_if_with_run_time_indices_still_reads_its_condition() -> None:
    """A branch that gathers by run-time indices could read out of bounds where it is not taken: that If is not
    converted; the condition is read back and only the branch taken runs."""
    from clmace.backends.opencl.lower.control import IfStep

    else_nodes = [helper.make_node("Gather", ["v", "k"], ["e_y"], axis=0)]
    x = np.random.default_rng(8).standard_normal((2, 5)).astype(np.float32)
    then = helper.make_graph([helper.make_node("Identity", ["w"], ["t_y"])], "then", [], [_vi("t_y", shape=[3])])
    other = helper.make_graph(else_nodes, "else", [], [_vi("e_y", shape=[3])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    model = _model(nodes, [("x", [2, 5]), ("k", [3], TensorProto.INT64), ("w", [3])], [("y", [3])],
                   [("zero", np.array(0, np.float32)), ("v", np.arange(4, dtype=np.float32))])
    w = np.ones(3, np.float32)
    sess = _on_device(model, [{"x": abs(x), "k": np.array([9999999, -5000000, 77], np.int64), "w": w},
                              {"x": -abs(x), "k": np.array([3, 0, -1], np.int64), "w": w}])
    (step,) = [s for s in runtime_of(sess).plan.steps if isinstance(s, IfStep)]
    assert step.selects is None


def test_an_if_inside_an_inlined_branch_reads_the_renamed_outer_value() -> None:
    """The outer If (constant condition) is inlined, which renames its branch's values; the inner If (on data)
    still reads them under the names its bodies use: its capture pairs map one to the other."""
    def scaled(name: str, scale: float) -> object:
        return helper.make_graph([helper.make_node("Mul", ["v", f"{name}_k"], [f"{name}_y"])], name, [],
                                 [_vi(f"{name}_y", shape=[2, 5])],
                                 [helper.make_tensor(f"{name}_k", TensorProto.FLOAT, [], [scale])])

    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["v"]), helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["inner_y"], then_branch=scaled("a", 2.0), else_branch=scaled("b", -3.0))],
        "outer_then", [], [_vi("inner_y", shape=[2, 5])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["o_y"])], "outer_else", [], [_vi("o_y", shape=[2, 5])])
    nodes = [helper.make_node("If", ["yes"], ["y"], then_branch=then, else_branch=other)]
    model = _model(nodes, [("x", [2, 5])], [("y", [2, 5])], [("yes", np.array(True)),
                                                              ("zero", np.array(0, np.float32))])
    x = np.random.default_rng(6).standard_normal((2, 5)).astype(np.float32)
    _on_device(model, [{"x": abs(x)}, {"x": -abs(x)}])


def _const(name: str, value) -> object:
    from onnx import numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def test_a_decoder_loop_as_paddle_exports_it_runs_on_the_device() -> None:
    """The shape of Paddle's decoder loops (table and text recognisers): a write-only carried placeholder that
    starts as () and becomes the output buffer, a counter that starts as () and is (1,) afterwards, an If whose
    branches give () and (1,), step results written with ScatterElements, a OneHot feedback and an integer
    ReduceMax. The whole loop runs as a device plan, as onnxruntime computes it."""
    then_g = helper.make_graph([_const("f_then", np.array([2], np.int64))], "then", [],
                               [_vi("f_then", TensorProto.INT64, None)])
    else_g = helper.make_graph([_const("f_else", np.array(0, np.int64))], "else", [],
                               [_vi("f_else", TensorProto.INT64, None)])
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "W"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
         helper.make_node("OneHot", ["idx", "depth", "onoff"], ["oh"], axis=-1),
         helper.make_node("MatMul", ["oh", "W2"], ["fb"]),
         helper.make_node("Add", ["h_in", "fb"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]),
         helper.make_node("Unsqueeze", ["i", "ax0"], ["i1"]),
         helper.make_node("Reshape", ["i1", "shape111"], ["i111"]),
         helper.make_node("Tile", ["i111", "reps"], ["rows"]),
         helper.make_node("Unsqueeze", ["logits", "ax1"], ["upd"]),
         helper.make_node("ScatterElements", ["acc_in", "rows", "upd"], ["acc_out"], axis=1),
         helper.make_node("Identity", ["acc_out"], ["ph_out"]),
         helper.make_node("Greater", ["i", "two"], ["late"]),
         helper.make_node("If", ["late"], ["flag"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Add", ["cnt_in", "flag"], ["cnt_f"]),
         helper.make_node("Add", ["cnt_f", "one"], ["cnt_out"]),
         helper.make_node("Cast", ["idx"], ["idx32"], to=TensorProto.INT32),
         helper.make_node("ReduceMax", ["idx32"], ["top"], keepdims=0),
         helper.make_node("Less", ["top", "big"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
                 _vi("ph_in", TensorProto.FLOAT, None), _vi("cnt_in", TensorProto.INT64, None),
                 _vi("h_in", shape=[1, 4]), _vi("acc_in", shape=[1, 5, 6])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("ph_out", TensorProto.FLOAT, None),
         _vi("cnt_out", TensorProto.INT64, None), _vi("h_out", shape=[1, 4]), _vi("acc_out", shape=[1, 5, 6])])
    rng = np.random.default_rng(4)
    inits = [("T", np.array(5, np.int64)), ("go", np.array(True)), ("ph0", np.array(0.0, np.float32)),
             ("cnt0", np.array(0, np.int64)), ("acc0", np.zeros((1, 5, 6), np.float32)),
             ("W", rng.standard_normal((4, 6)).astype(np.float32)),
             ("W2", rng.standard_normal((6, 4)).astype(np.float32) * 0.5), ("depth", np.array(6, np.int64)),
             ("onoff", np.array([0.0, 1.0], np.float32)), ("ax0", np.array([0], np.int64)),
             ("ax1", np.array([1], np.int64)), ("shape111", np.array([1, 1, 1], np.int64)),
             ("reps", np.array([1, 1, 6], np.int64)), ("two", np.array(2, np.int64)),
             ("one", np.array([1], np.int64)), ("big", np.array(100, np.int32))]
    nodes = [helper.make_node("Loop", ["T", "go", "ph0", "cnt0", "h0", "acc0"], ["ph", "cnt", "h", "acc"],
                              body=body)]
    model = _model(nodes, [("h0", [1, 4])], [("ph", [1, 5, 6]), ("cnt", [1], TensorProto.INT64), ("h", [1, 4]),
                                            ("acc", [1, 5, 6])], inits)
    feeds = [{"h0": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(2)]
    sess = _on_device(model, feeds)
    assert [type(s).__name__ for s in runtime_of(sess).plan.steps] == ["LoopStep"]


def _hoistable_loop(trip: int = 4) -> object:
    """Loop(M): h = tanh(h @ W^T + mean(feat @ P)); W carried through unchanged (as Paddle exports it), feat read
    from outside: W^T, feat @ P and its mean are the same every iteration."""
    body = helper.make_graph(
        [helper.make_node("Transpose", ["w_in"], ["wt"]),
         helper.make_node("MatMul", ["feat", "P"], ["proj"]),
         helper.make_node("ReduceMean", ["proj"], ["ctx"], axes=[0], keepdims=1),
         helper.make_node("MatMul", ["h_in", "wt"], ["hw"]),
         helper.make_node("Add", ["hw", "ctx"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("w_in", shape=[4, 4]),
                 _vi("h_in", shape=[1, 4])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("w_in", shape=[4, 4]), _vi("h_out", shape=[1, 4])])
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Loop", ["M", "", "W0", "h0"], ["w_final", "h"], body=body)]
    return _model(nodes, [("feat", [6, 3]), ("h0", [1, 4])], [("w_final", [4, 4]), ("h", [1, 4])],
                  [("M", np.array(trip, np.int64)), ("W0", rng.standard_normal((4, 4)).astype(np.float32) * 0.5),
                   ("P", rng.standard_normal((3, 4)).astype(np.float32))])


@pytest.mark.parametrize("device", ["cpu", "opencl"])
def test_loop_invariant_work_moves_out_of_the_body(device) -> None:
    """The frontend hoists the invariant nodes (the transpose of a passed-through weight, the projection of an
    outer value and its mean) in front of the loop; the results stay onnxruntime's."""
    from tests.onnx_build import ort_run

    model = _hoistable_loop()
    sess = clmace.InferenceSession(model, device=device)
    assert sess.pass_report["hoist_loop_invariants"] == 3
    loop = next(n for n in sess.graph.nodes if n.op_type == "Loop")
    assert [n.op_type for n in loop.attrs["body"].nodes] == ["MatMul", "Add", "Tanh", "Identity"]
    rng = np.random.default_rng(8)
    feeds = {"feat": rng.standard_normal((6, 3)).astype(np.float32),
             "h0": rng.standard_normal((1, 4)).astype(np.float32)}
    for got, want in zip(sess.run(None, feeds), ort_run(model, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
