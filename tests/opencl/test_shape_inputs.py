"""Small graph inputs that set shapes or kernel parameters (Resize scales, a size vector that Range and
ConstantOfShape are computed from) get a plan per value on OpenCL, so those nodes run on the device; inputs
whose values only flow through Shape (token ids) do not."""

from __future__ import annotations

import warnings

import numpy as np
from onnx import TensorProto, helper

import clmace
from tests.onnx_build import ort_run
from tests.opencl.conftest import make_model

INTS = [("one", np.array(1, np.int64)), ("zero", np.array(0, np.int64)), ("step", np.array(1, np.int64))]


def _run(model, feeds_list):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = clmace.InferenceSession(model, device="opencl")
        for feeds in feeds_list:
            for got, want in zip(sess.run(None, feeds), ort_run(model, feeds), strict=True):
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not [w for w in caught if "run on the host" in str(w.message)]
    return sess


def test_resize_scales_given_as_an_input() -> None:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")]
    model = make_model(nodes, [("x", [1, 2, 4, 5]), ("scales", [4])], ["y"])
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)
    feeds = [{"x": x, "scales": np.array(s, np.float32)} for s in ([1, 1, 2, 2], [1, 1, 0.5, 1.5], [1, 1, 2, 2])]
    sess = _run(model, feeds)
    assert len(sess._runtimes) == 2  # one plan per distinct value


def test_a_size_input_that_range_and_constant_of_shape_are_computed_from() -> None:
    nodes = [helper.make_node("Gather", ["size", "one"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "step"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
             helper.make_node("ConstantOfShape", ["size"], ["c"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0])),
             helper.make_node("Add", ["c", "rf"], ["y"])]
    model = make_model(nodes, [("size", [2], TensorProto.INT64)], ["y"],
                       INTS)
    _run(model, [{"size": np.array([2, 3], np.int64)}, {"size": np.array([3, 5], np.int64)}])


def test_token_ids_read_through_shape_are_not_parameters() -> None:
    """ids -> Shape -> Range (positions): the ids' values never set a shape, so new ids reuse the plan."""
    nodes = [helper.make_node("Shape", ["ids"], ["s"]), helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "step"], ["pos"]), helper.make_node("Add", ["ids", "pos"], ["y"])]
    model = make_model(nodes, [("ids", [1, 6], TensorProto.INT64)], ["y"],
                       INTS)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = clmace.InferenceSession(model, device="opencl")
        for _ in range(3):
            ids = rng.integers(0, 100, (1, 6)).astype(np.int64)
            np.testing.assert_array_equal(sess.run(None, {"ids": ids})[0], ids + np.arange(6))
    assert len(sess._runtimes) == 1
