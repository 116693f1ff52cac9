"""Pools, reductions, Softmax, LayerNormalization and BatchNormalization against the NumPy runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

import clmace
from tests import onnx_build
from tests.opencl.conftest import compare, make_model

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(op=st.sampled_from(["MaxPool", "AveragePool"]), k=st.integers(1, 4), s=st.integers(1, 3),
       pads=st.tuples(*[st.integers(0, 1)] * 4), ceil=st.integers(0, 1), include=st.integers(0, 1),
       h=st.integers(4, 12), w=st.integers(4, 12))
def test_pool(op, k, s, pads, ceil, include, h, w) -> None:
    """Max / average pooling with pads, strides, ceil_mode and count_include_pad."""
    if max(pads) >= k:
        return
    for size, b, e in ((h, pads[0], pads[2]), (w, pads[1], pads[3])):
        if ceil and -(-(size + b + e - k) // s) * s >= size + b:
            return  # ONNX shape inference keeps a window that starts in the end padding; ORT drops it
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": list(pads), "ceil_mode": ceil}
    if op == "AveragePool":
        attrs["count_include_pad"] = include
    compare(make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [2, 3, h, w])], ["y"]))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op) -> None:
    """Global pools over odd plane sizes."""
    compare(make_model([helper.make_node(op, ["x"], ["y"])], [("x", [2, 5, 7, 9])], ["y"]))


REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
          "ReduceL2", "ReduceLogSumExp"]


@SETTINGS
@given(op=st.sampled_from(REDUCE), axes=st.sampled_from([[0], [1], [2, 3], [0, 3], [-1], []]),
       keep=st.integers(0, 1))
def test_reduce(op, axes, keep) -> None:
    """Reductions over any set of axes, keepdims on and off (opset 18: axes as an input)."""
    inputs, inits = ["x"], []
    if axes:
        inputs.append("axes")
        inits.append(("axes", np.array(axes, np.int64)))
    model = make_model([helper.make_node(op, inputs, ["y"], keepdims=keep)], [("x", [2, 3, 4, 5])], ["y"], inits,
                       opset=18)
    x = np.random.default_rng(0).uniform(0.5, 1.5, (2, 3, 4, 5)).astype(np.float32)
    compare(model, {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 17), (1, 17), (0, 17), (1, 11)])
def test_softmax(op, axis, opset) -> None:
    """Softmax over one axis (opset 13+) and over the flattened tail (opset 11)."""
    compare(make_model([helper.make_node(op, ["x"], ["y"], axis=axis)], [("x", [2, 3, 4])], ["y"], opset=opset))


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_norm(axis) -> None:
    """LayerNormalization with scale and bias over the last axes."""
    rng = np.random.default_rng(1)
    tail = [3, 8] if axis == 1 else [8]
    inits = [("s", rng.standard_normal(tail).astype(np.float32)), ("b", rng.standard_normal(tail).astype(np.float32))]
    compare(make_model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=axis)],
                       [("x", [2, 3, 8])], ["y"], inits))


def test_batch_norm() -> None:
    """Stand-alone inference BatchNormalization as a per-channel affine map."""
    rng = np.random.default_rng(2)
    inits = [(n, rng.uniform(0.5, 1.5, 4).astype(np.float32)) for n in ("g", "b", "m", "v")]
    node = helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)
    compare(make_model([node], [("x", [2, 4, 3, 5])], ["y"], inits))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_workgroup_kernel(op, monkeypatch):
    """The GPU path (a work-group per plane, local reduction) is exact on PoCL too, batch > 1, odd sizes."""
    from clmace.backends.opencl.plan.schedule import Plan

    monkeypatch.setattr(Plan, "is_gpu", property(lambda self: True, lambda self, value: None), raising=False)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [3, 5, 37, 41])],
                              [helper.make_tensor_value_info("y", 1, [3, 5, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.random.default_rng(0).standard_normal((3, 5, 37, 41)).astype(np.float32)
    sess = clmace.InferenceSession(model, device="opencl", compiled_program=False)
    assert "global_pool_wg" in sess.runtime.profile_run({"x": x})
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], clmace.InferenceSession(model).run(None, {"x": x})[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("op", "shape", "groups", "opset"), [
    ("InstanceNormalization", (2, 3, 17), None, 17), ("InstanceNormalization", (1, 4, 5, 6), None, 17),
    ("GroupNormalization", (2, 6, 4, 5), 3, 21), ("GroupNormalization", (1, 8, 9), 2, 21),
    ("GroupNormalization", (1, 4, 3, 3), 4, 21)])
def test_instance_and_group_norm_on_the_device(op, shape, groups, opset) -> None:
    rng = np.random.default_rng(9)
    c = shape[1]
    n_params = groups if op == "GroupNormalization" and opset == 18 else c
    scale = rng.standard_normal(n_params).astype(np.float32)
    bias = rng.standard_normal(n_params).astype(np.float32)
    attrs = {"epsilon": 1e-3, **({"num_groups": groups} if groups else {})}
    node = helper.make_node(op, ["x", "s", "b"], ["y"], **attrs)
    # Output shape given: ONNX shape inference leaves GroupNormalization's (a function op) unset.
    compare(onnx_build.make_model([node], [("x", list(shape))], [("y", list(shape))], [("s", scale), ("b", bias)],
                                  opset=opset))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum_on_the_device(axis, exclusive, reverse) -> None:
    """CumSum along a constant axis, exclusive and reversed too, against onnxruntime."""
    model = make_model([helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
                       [("x", [3, 4, 5])], ["y"], [("axis", np.array(axis, np.int64))])
    x = np.random.default_rng(7).standard_normal((3, 4, 5)).astype(np.float32)
    compare(model, {"x": x}, rtol=1e-5, atol=1e-5)
    onnx_build.assert_close(clmace.InferenceSession(model, device="opencl").run(None, {"x": x})[0],
                            onnx_build.ort_run(model, {"x": x})[0])


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_extremes_with_ties_and_nan(op, last) -> None:
    """Ties pick the first index (the last with select_last_index); a NaN wins, as NumPy's argmax."""
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=1, keepdims=0, select_last_index=last)],
                       [("x", [3, 6])], ["y"])
    x = np.array([[1, 5, 5, 2, 5, 0], [3, 3, 3, 3, 3, 3], [1, np.nan, 7, np.nan, -2, 9]], np.float32)
    compare(model, {"x": x})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("ceil,include", [(0, 0), (1, 1)])
def test_pool_1d_and_3d_on_the_device(op, ceil, include) -> None:
    """1-D pooling (as height 1) and 3-D pooling, with pads, strides, dilations, against onnxruntime."""
    extra = {"count_include_pad": include} if op == "AveragePool" else {}
    for shape, kernel, strides, pads, dil in (([2, 3, 11], [3], [2], [1, 1], [1]),
                                              ([1, 2, 5, 6, 7], [2, 3, 2], [2, 1, 2], [1, 0, 1, 0, 1, 1],
                                               [1, 2, 1])):
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "ceil_mode": ceil, **extra}
        if op == "MaxPool" or dil != [1]:
            attrs["dilations"] = dil
        model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], ["y"], opset=19)
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        onnx_build.assert_close(compare(model, {"x": x}).run(None, {"x": x})[0], onnx_build.ort_run(model, {"x": x})[0])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(3, 37), (2, 4, 64), (5, 16)])
def test_softmax_over_long_contiguous_rows(op, shape) -> None:
    """Rows of 16+ elements take the vector kernel (a 16-lane body and a scalar tail); large logits too."""
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32) * 30
    compare(make_model([helper.make_node(op, ["x"], ["y"], axis=-1)], [("x", list(shape))], ["y"]), {"x": x})
