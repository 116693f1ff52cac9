"""Gemm / MatMul kernels against the NumPy runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from tests.opencl.conftest import compare, make_model, runtime_of

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 40), trans_a=st.booleans(),
       trans_b=st.booleans(), c_shape=st.sampled_from(["none", "n", "1n", "m1", "mn", "scalar"]),
       alpha=st.sampled_from([1.0, 0.5]), beta=st.sampled_from([1.0, 2.0]))
def test_gemm(m, k, n, trans_a, trans_b, c_shape, alpha, beta) -> None:
    """Gemm with transposes, alpha/beta and every broadcast shape of C."""
    rng = np.random.default_rng(0)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    inits = [("b", b)]
    inputs = ["a", "b"]
    shapes = {"n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n), "scalar": ()}
    if c_shape != "none":
        inits.append(("c", rng.standard_normal(shapes[c_shape]).astype(np.float32)))
        inputs.append("c")
    node = helper.make_node("Gemm", inputs, ["y"], transA=int(trans_a), transB=int(trans_b), alpha=alpha,
                            beta=beta)
    compare(make_model([node], [("a", [k, m] if trans_a else [m, k])], ["y"], inits))


def test_gemm_runtime_c() -> None:
    """C as a run-time input is read by the kernel (broadcast by strides)."""
    rng = np.random.default_rng(1)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=0.5)
    model = make_model([node], [("a", [5, 7]), ("c", [5, 1])], ["y"],
                       [("b", rng.standard_normal((7, 20)).astype(np.float32))])
    compare(model)


@SETTINGS
@given(a_shape=st.sampled_from([(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5), (1, 4, 3, 5)]),
       b_shape=st.sampled_from([(5,), (5, 6), (2, 5, 6), (3, 1, 5, 6), (4, 5, 6)]),
       const_b=st.booleans())
def test_matmul(a_shape, b_shape, const_b) -> None:
    """MatMul: 1-D operands, batches and broadcast batch dims, constant or run-time B."""
    try:
        np.matmul(np.zeros(a_shape), np.zeros(b_shape))
    except ValueError:
        return
    rng = np.random.default_rng(2)
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    if const_b:
        model = make_model([node], [("a", list(a_shape))], ["y"],
                           [("b", rng.standard_normal(b_shape).astype(np.float32))])
    else:
        model = make_model([node], [("a", list(a_shape)), ("b", list(b_shape))], ["y"])
    compare(model)


@pytest.mark.parametrize("act", [None, "Relu"])
def test_matmul_bias_fusion(act) -> None:
    """MatMul by a constant, + constant bias (+ Relu): one launch."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["m"]),
             helper.make_node("Add", ["bias", "m"], ["s" if act else "y"])]
    if act:
        nodes.append(helper.make_node(act, ["s"], ["y"]))
    model = make_model(nodes, [("a", [1, 16, 24])], ["y"],
                       [("w", rng.standard_normal((24, 33)).astype(np.float32)),
                        ("bias", rng.standard_normal(33).astype(np.float32))])
    assert len(runtime_of(compare(model)).plan.steps) == 1


@pytest.mark.parametrize("variant", ["4x4", "2x2", "r8x32", "r4x32", "r1x32"])
def test_matmul_variants_with_ragged_edges(variant) -> None:
    """Every run-time MatMul variant: broadcast batches, rows and columns that do not fill the last block."""
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", [2, 1, 9, 13]), ("b", [3, 13, 45])],
                       ["y"])
    compare(model, variants={"matmul": variant})


@pytest.mark.parametrize("variant", ["r4", "r1", "r8x32", "r4x32", "r6x32"])
@pytest.mark.parametrize("n", [40, 64, 7])
def test_gemm_variants_with_ragged_edges(variant, n) -> None:
    """Every CPU Gemm variant, with an odd count of 16-column blocks (40), whole pairs (64) and a part block (7),
    a bias, a C and a fused Relu."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["g"], beta=0.5), helper.make_node("Relu", ["g"], ["y"])]
    model = make_model(nodes, [("a", [11, 30])], ["y"], [("b", rng.standard_normal((30, n)).astype(np.float32)),
                                                          ("c", rng.standard_normal((11, n)).astype(np.float32))])
    compare(model, variants={"gemm": variant})
