"""Slice and Range whose bounds are computed at run time run on the device, planned at the dry run's shape;
a run whose values give another shape is caught by the plan's shape guard and planned again, never returned
wrong."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

import clmace
from tests.opencl.conftest import make_model
from tests.opencl_probe import require_device

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference these tests compare against")


@pytest.fixture(autouse=True)
def _device() -> None:
    require_device("opencl")


def _run_all(model, feeds_list, caplog) -> int:
    """Run each feeds on one OpenCL session against onnxruntime, every node on the device; the re-plan count."""
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = clmace.InferenceSession(model, device="opencl")
        with caplog.at_level(logging.INFO, logger="clmace.session"):
            for feeds in feeds_list:
                for got, want in zip(sess.run(None, feeds), ref.run(None, feeds), strict=True):
                    assert got.shape == want.shape
                    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
                devices = sess.runtime.node_devices()
                assert set(devices.values()) <= {"opencl", "view"}, devices
    assert not [w for w in caught if "run on the host" in str(w.message)]
    return sum("re-planning" in r.getMessage() for r in caplog.records)


def test_slice_from_a_computed_start(caplog) -> None:
    """A window of 3 columns from the argmax on: clamped at the end it is shorter, and the guard re-plans."""
    nodes = [helper.make_node("ArgMax", ["score"], ["at"], axis=0, keepdims=1),
             helper.make_node("Add", ["at", "three"], ["end"]),
             helper.make_node("Slice", ["x", "at", "end", "one"], ["y"]),
             helper.make_node("Slice", ["x", "end", "at", "one", "minus"], ["back"])]
    model = make_model(nodes, [("x", [4, 10]), ("score", [10])], ["y", "back"],
                       [("three", np.array([3], np.int64)), ("one", np.array([1], np.int64)),
                        ("minus", np.array([-1], np.int64))])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    feeds = []
    for peak in (2, 5, 8, 9, 1):  # 3 wide, 3 wide, clamped to 2, to 1, 3 wide again
        score = rng.random(10).astype(np.float32)
        score[peak] = 2.0
        feeds.append({"x": x, "score": score})
    assert _run_all(model, feeds, caplog) == 3


def test_range_of_a_computed_length(caplog) -> None:
    """Range(0, max(n), 1) and a float Range, n computed from float data: the length follows the data; the guard
    re-plans on a change."""
    nodes = [helper.make_node("Cast", ["v"], ["n"], to=TensorProto.INT64),
             helper.make_node("ReduceMax", ["n"], ["limit"], keepdims=0),
             helper.make_node("Range", ["zero", "limit", "one"], ["idx"]),
             helper.make_node("Cast", ["limit"], ["flimit"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["fstart", "flimit", "fstep"], ["f"])]
    model = make_model(nodes, [("v", [3])], ["idx", "f"],
                       [("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64)),
                        ("fstart", np.array(0.5, np.float32)), ("fstep", np.array(0.75, np.float32))], opset=18)
    feeds = [{"v": np.array(v, np.float32)} for v in ([2, 7, 1], [7, 0, 0], [3, 3, 1], [9, 9, 9])]
    assert _run_all(model, feeds, caplog) == 2


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_by_computed_pads(mode, caplog) -> None:
    """Pad whose pads come from data (negative ones crop), in every mode, with a computed fill value."""
    nodes = [helper.make_node("Cast", ["p"], ["pads"], to=TensorProto.INT64),
             helper.make_node("ReduceMean", ["x"], ["fill"], keepdims=0),
             helper.make_node("Pad", ["x", "pads", *(["fill"] if mode == "constant" else [])], ["y"], mode=mode)]
    model = make_model(nodes, [("x", [2, 5, 6]), ("p", [6])], ["y"], opset=18)
    x = np.random.default_rng(1).standard_normal((2, 5, 6)).astype(np.float32)
    pads = ([0, 1, 2, 0, 3, 1], [0, 2, 1, 0, 2, 2], [0, -1, 2, 1, 1, -2], [1, 0, -1, 0, 2, 3])
    feeds = [{"x": x, "p": np.array(v, np.float32)} for v in pads]
    assert _run_all(model, feeds, caplog) == 2  # the first two pad to the same shape
