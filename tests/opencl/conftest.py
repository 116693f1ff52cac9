"""Fixtures for the OpenCL runtime tests: a device or a reasoned skip/failure, comparison with NumPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from clmace import InferenceSession
from tests.opencl_probe import require_device


@pytest.fixture(autouse=True)
def _opencl_device() -> None:
    """Every test here needs an OpenCL device: without one it skips with the reason (fails under
    CLMACE_REQUIRE_OPENCL=1)."""
    require_device()


def random_feeds(session: InferenceSession, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the right shapes and types for a session."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.graph.inputs:
        shape = tuple(int(d) for d in arg.shape)
        if arg.dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(arg.dtype)
        elif arg.dtype == np.bool_:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[arg.name] = rng.integers(-5, 6, shape).astype(arg.dtype)
    return feeds


def compare(model, feeds: dict[str, np.ndarray] | None = None, rtol: float = 1e-4, atol: float = 1e-4,
            expect_device: str | None = "opencl", **session_options) -> InferenceSession:
    """Run model on OpenCL and on NumPy, assert equal outputs; return the OpenCL session.

    expect_device: every non-view node must run there ("opencl"), or None to allow host fallback.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cl_sess = InferenceSession(model, device="opencl", **session_options)
    fallback = [str(w.message) for w in caught if "run on the host" in str(w.message)]
    assert expect_device is None or not fallback, fallback
    ref = InferenceSession(model, device="cpu")
    feeds = feeds if feeds is not None else random_feeds(cl_sess)
    got = cl_sess.run(None, feeds)
    want = ref.run(None, feeds)
    for g, w, arg in zip(got, want, cl_sess.get_outputs()):
        assert g.shape == w.shape, f"{arg.name}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{arg.name}: dtype {g.dtype} != {w.dtype}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=arg.name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=arg.name)
    if expect_device is not None:
        devices = runtime_of(cl_sess).node_devices()
        wrong = {n: d for n, d in devices.items() if d not in (expect_device, "view")}
        assert not wrong, f"nodes not on {expect_device}: {wrong}"
    return cl_sess


def runtime_of(session: InferenceSession):
    """The single OpenCLRuntime of a session."""
    runtimes = list(session._runtimes.values())
    assert len(runtimes) == 1
    return runtimes[0]


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17):
    """A checked ModelProto; inputs are (name, shape[, elem type]); output shapes and types are inferred."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def vi(item):
        elem = item[2] if len(item) > 2 else TensorProto.FLOAT
        return helper.make_tensor_value_info(item[0], elem, item[1])

    names = [o[0] if isinstance(o, tuple) else o for o in outputs]
    graph = helper.make_graph(nodes, "test", [vi(i) for i in inputs], [onnx.ValueInfoProto(name=n) for n in names],
                              [numpy_helper.from_array(np.asarray(v), name=k) for k, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {v.name: v for v in inferred.graph.value_info}
    for out in model.graph.output:
        out.type.CopyFrom(known[out.name].type)
    onnx.checker.check_model(model)
    return model
