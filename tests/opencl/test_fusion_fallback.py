"""Fusion decisions live in the OpenCL plan, not in IR attributes: a fused node that runs on the host still
gives the right answer; sessions dropped in a loop are collected; a misspelt option raises on every device."""

from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pytest
from onnx import helper

import clmace
from clmace.core.errors import ConfigError
from clmace.store import ProgramStore
from tests.onnx_build import ort_run
from tests.opencl.conftest import make_model, runtime_of

rng = np.random.default_rng(3)


def _runtime_weight_conv_residual():
    """Conv whose weight is a graph input (no OpenCL kernel: host), then a residual Add and a Relu."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 6, 6]), ("w", [4, 4, 3, 3])], ["y"],
                       [("b", rng.standard_normal(4).astype(np.float32))])
    feeds = {"x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32),
             "w": rng.standard_normal((4, 4, 3, 3)).astype(np.float32)}
    return model, feeds


def _conv1d_residual():
    """1-D Conv + residual Add + Relu (speech front ends)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]), helper.make_node("Add", ["c", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 16])], ["y"], [("w", rng.standard_normal((4, 4, 3)).astype(np.float32))])
    return model, {"x": rng.standard_normal((1, 4, 16)).astype(np.float32)}


@pytest.mark.parametrize("device", ["cpu", "opencl"])
@pytest.mark.parametrize("build", [_runtime_weight_conv_residual, _conv1d_residual])
def test_fused_node_on_the_host_matches_onnxruntime(build, device) -> None:
    model, feeds = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the host-fallback warning is expected here
        sess = clmace.InferenceSession(model, device=device)
        got = sess.run(None, feeds)[0]
    np.testing.assert_allclose(got, ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)
    if device == "opencl":
        plan = runtime_of(sess).plan
        assert not any(k.startswith("_") for n in plan.nodes for k in n.attrs), [n.attrs for n in plan.nodes]


def test_fusion_is_recorded_beside_the_ir() -> None:
    model, feeds = _runtime_weight_conv_residual()
    model.graph.input.pop()  # w becomes a constant: the Conv, its Add and Relu run as one launch
    w = feeds.pop("w")
    model.graph.initializer.append(__import__("onnx").numpy_helper.from_array(w, "w"))
    sess = clmace.InferenceSession(model, device="opencl")
    plan = runtime_of(sess).plan
    assert [e.residual for e in plan.epilogues.values()] == ["x"]
    assert all(not k.startswith("_") for n in plan.nodes for k in n.attrs)
    np.testing.assert_allclose(sess.run(None, feeds)[0], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)


def test_sessions_in_a_loop_are_collected(tmp_path) -> None:
    model, feeds = _conv1d_residual()
    alive = []
    for i in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sess = clmace.InferenceSession(model, device="opencl", compiled_program=str(tmp_path / f"p{i}.clmace"))
            sess.run(None, feeds)
        alive.append(weakref.ref(sess))
        del sess
    gc.collect()
    assert not [r for r in alive if r() is not None], "sessions kept alive after they were dropped"
    stores = [o for o in gc.get_objects() if isinstance(o, ProgramStore)]
    assert len(stores) <= 1, f"{len(stores)} program stores still alive"


@pytest.mark.parametrize("device", ["cpu", "opencl"])
def test_a_misspelt_option_raises_naming_the_valid_ones(device) -> None:
    model, _ = _conv1d_residual()
    with pytest.raises(ConfigError, match=r"unknown InferenceSession option\(s\) \['precison'\].*valid options"):
        clmace.InferenceSession(model, device=device, precison="fp16")


def test_storeless_sessions_leave_no_programs_behind() -> None:
    """Sessions without a program file share a device handle while they live; once they are gone, so are the
    handle and its programs."""
    from clmace.backends.opencl import device as device_module

    model, feeds = _conv1d_residual()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = clmace.InferenceSession(model, device="opencl", compiled_program=False)
        sess.run(None, feeds)
    handle = weakref.ref(runtime_of(sess).handle)
    assert handle() in device_module._CACHELESS.values()
    del sess
    gc.collect()
    assert handle() is None
