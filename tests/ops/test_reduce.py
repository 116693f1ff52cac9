"""Reductions, ArgMax/ArgMin, TopK and CumSum/CumProd against onnx.reference and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from clmace.core.errors import ModelError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]



@SETTINGS
@given(
    op=st.sampled_from(REDUCE),
    shape=array_shapes(min_dims=1, max_dims=4, max_side=4),
    data=st.data(),
    keepdims=st.sampled_from([0, 1]),
    as_input=st.booleans(),
)
def test_reduce_matches_reference(op, shape, data, keepdims, as_input) -> None:
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), max_size=rank, unique_by=lambda a: a % rank))
    rng = np.random.default_rng(len(axes) * 7 + rank)
    # Positive inputs keep ReduceLogSum finite and ReduceProd well conditioned.
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if as_input:  # opset 18: axes is an optional input
        ax = np.array(axes, np.int64) if axes else None
        want = run_ref(op, [x, ax], {"keepdims": keepdims}, 18)[0]
        got = ours(op, 18, *([x, ax] if ax is not None else [x]), keepdims=keepdims)
    else:  # opset 13 (11 for ReduceSum): axes is an attribute
        opset = 11 if op == "ReduceSum" else 13
        attrs = {"keepdims": keepdims, **({"axes": axes} if axes else {})}
        want = run_ref(op, [x], attrs, opset)[0]
        got = ours(op, opset, x, **attrs)
    assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", REDUCE)
def test_noop_with_empty_axes(op) -> None:
    x = np.random.default_rng(0).uniform(0.5, 1.5, (2, 3)).astype(np.float32)
    assert_close(ours(op, 18, x, np.zeros(0, np.int64), noop_with_empty_axes=1), x)
    assert ours(op, 18, x, keepdims=0).shape == ()


@pytest.mark.parametrize("op, expected", [("ReduceMax", -np.inf), ("ReduceMin", np.inf), ("ReduceSum", 0),
                                          ("ReduceProd", 1), ("ReduceLogSum", -np.inf),
                                          ("ReduceLogSumExp", -np.inf), ("ReduceSumSquare", 0),
                                          ("ReduceL1", 0), ("ReduceL2", 0)])
def test_empty_set(op, expected) -> None:
    x = np.zeros((2, 0, 4), np.float32)
    got = ours(op, 18, x, np.array([1], np.int64), keepdims=1)
    assert got.shape == (2, 1, 4) and got.dtype == np.float32
    assert np.all(got == expected)


def test_integer_reductions_keep_dtype() -> None:
    x = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean", "ReduceSumSquare"):
        want = run_ort(op, [x, np.array([1], np.int64)], {}, 18)[0]
        assert_close(ours(op, 18, x, np.array([1], np.int64)), want)


def test_log_sum_exp_is_stable() -> None:
    x = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]], np.float32)
    got = ours("ReduceLogSumExp", 18, x, np.array([1], np.int64), keepdims=0)
    assert_close(got, np.array([1000 + np.log(2), -1000 + np.log(2)], np.float32))


def test_reduce_bad_axis() -> None:
    with pytest.raises(ModelError, match="ReduceSum.*axes entry 3"):
        ours("ReduceSum", 13, np.ones((2, 2), np.float32), np.array([3]))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_max_min_ties(op, axis, keepdims, last) -> None:
    x = np.array([[2, 2, 1], [3, 0, 3], [1, 1, 1]], np.float32)  # ties everywhere
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": last}
    want = run_ort(op, [x], attrs, 13, out_types=[np.int64])[0]
    got = ours(op, 13, x, **attrs)
    assert got.dtype == np.int64
    assert_close(got, want)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_top_k_ties_lower_index_first(largest, axis) -> None:
    x = np.array([[3, 1, 3, 2], [5, 5, 5, 5], [0, 2, 2, 1], [7, 1, 1, 7]], np.float32)
    k = np.array([3], np.int64)
    attrs = {"axis": axis, "largest": largest}
    want = run_ort("TopK", [x, k], attrs, 11, n_outputs=2, out_types=[np.float32, np.int64])
    got = ours("TopK", 11, x, k, **attrs)
    assert got[1].dtype == np.int64
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


def test_top_k_opset1_attribute_and_ints() -> None:
    x = np.array([[4, 9, 1, 9]], np.int64)
    values, idx = ours("TopK", 1, x, k=2)
    assert values.tolist() == [[9, 9]] and idx.tolist() == [[1, 3]]
    with pytest.raises(ModelError, match="TopK: K=5"):
        ours("TopK", 11, x, np.array([5]))


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumulative(op, exclusive, reverse, axis) -> None:
    x = np.arange(1, 13, dtype=np.float32).reshape(3, 4) / 4
    ax = np.array(axis, np.int64)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    opset = 14 if op == "CumSum" else 26
    got = ours(op, opset, x, ax, **attrs)
    if op == "CumSum":
        assert_close(got, run_ort(op, [x, ax], attrs, 14)[0])
    else:
        assert_close(got, run_ref(op, [x, ax], attrs, opset)[0])


def test_cumsum_int_keeps_dtype() -> None:
    x = np.array([1, 2, 3], np.int32)
    got = ours("CumSum", 14, x, np.array(0, np.int32))
    assert got.dtype == np.int32 and got.tolist() == [1, 3, 6]
