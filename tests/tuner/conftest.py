"""Fixtures for the tuner tests: an OpenCL device (or a reasoned skip); a tiny CNN touching every tunable family."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.opencl.conftest import make_model
from tests.opencl_probe import require_device


@pytest.fixture(autouse=True)
def _opencl_device() -> None:
    """Every tuner test needs an OpenCL device: a reasoned skip without one (a failure under
    CLMACE_REQUIRE_OPENCL=1)."""
    require_device()


def tiny_cnn(seed: int = 0, c: int = 8, size: int = 16):
    """Stem conv (general), depthwise, pointwise with a residual, global pool, Gemm: one launch per family."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], group=c),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c2", "r0"], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = [("w0", w(c, 3, 3, 3)), ("b0", w(c)), ("w1", w(c, 1, 3, 3)), ("b1", w(c)), ("w2", w(c, c, 1, 1)),
             ("b2", w(c)), ("wf", w(10, c)), ("bf", w(10))]
    return make_model(nodes, [("x", [1, 3, size, size])], ["y"], inits)
