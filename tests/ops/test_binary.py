"""Broadcasting binary / variadic ops, comparisons, logic, bit ops and Where against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from clmace.core.errors import ModelError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARITH = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"]
COMPARE = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
DTYPES = [np.float32, np.float64, np.int32, np.int64]



def _operand(rng: np.random.Generator, shape, dtype, nonzero: bool = False) -> np.ndarray:
    """Random values of dtype; nonzero keeps divisors away from 0 (integer division by 0 is UB)."""
    x = rng.integers(-20, 20, shape) if np.issubdtype(dtype, np.integer) else rng.normal(0, 5, shape)
    if nonzero:
        x = np.where(x == 0, 3, x)
    return np.asarray(x).astype(dtype)


@SETTINGS
@given(
    op=st.sampled_from(ARITH + COMPARE),
    dtype=st.sampled_from(DTYPES),
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
    seed=st.integers(0, 2**16),
)
def test_binary_broadcast_matches_onnxruntime(op, dtype, shapes, seed) -> None:
    rng = np.random.default_rng(seed)
    a = _operand(rng, shapes.input_shapes[0], dtype)
    b = _operand(rng, shapes.input_shapes[1], dtype, nonzero=op == "Div")
    if op in ("Mean", "Sum") and dtype != np.float32:  # onnxruntime's Sum/Mean kernels are float32-only
        b = b.astype(np.float32)
        a = a.astype(np.float32)
    out_type = bool if op in COMPARE else a.dtype
    want = run_ort(op, [a, b], {}, 14, out_types=[out_type])[0]
    got = ours(op, 14, a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_int_division_truncates_toward_zero() -> None:
    a = np.array([7, -7, 7, -7, 6, -6, -128], np.int8)
    b = np.array([2, 2, -2, -2, 3, -3, 3], np.int8)
    got = ours("Div", 14, a, b)
    assert got.dtype == np.int8
    assert got.tolist() == [3, -3, -3, 3, 2, 2, -42]
    assert_close(got, run_ort("Div", [a, b], {}, 14)[0])


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
def test_mod_signs(fmod, dtype) -> None:
    if np.issubdtype(dtype, np.floating) and not fmod:
        pytest.skip("float Mod requires fmod=1")
    a = np.array([-4, 7, 5, 4, -7, 8], dtype)
    b = np.array([2, -3, 8, -2, 3, 5], dtype)
    assert_close(ours("Mod", 13, a, b, fmod=fmod), run_ort("Mod", [a, b], {"fmod": fmod}, 13)[0])


@pytest.mark.parametrize("base, exp", [(np.float32, np.float32), (np.float32, np.int64), (np.int32, np.int32),
                                       (np.int64, np.int64), (np.int32, np.float32), (np.float64, np.int32)])
def test_pow_keeps_base_dtype(base, exp) -> None:
    x = np.array([[1, 2, 3], [4, 5, 6]], base)
    y = np.array([2, 3, 1], exp)
    got = ours("Pow", 15, x, y)
    assert got.dtype == np.dtype(base)
    assert_close(got, run_ort("Pow", [x, y], {}, 15)[0])


def test_variadic_three_inputs() -> None:
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=s).astype(np.float32) for s in [(2, 3, 4), (3, 1), (4,)]]
    for op in ("Max", "Min", "Sum", "Mean"):
        assert_close(ours(op, 13, *xs), run_ort(op, xs, {}, 13)[0])
        assert_close(ours(op, 13, xs[0]), xs[0])


def test_max_min_propagate_nan() -> None:
    a = np.array([1.0, np.nan, 3.0], np.float32)
    b = np.array([2.0, 0.0, np.nan], np.float32)
    assert np.isnan(ours("Max", 13, a, b)[1:]).all()
    assert np.isnan(ours("Min", 13, a, b)[1:]).all()


def test_variadic_needs_an_input() -> None:
    with pytest.raises(ModelError, match="Sum"):
        ours("Sum", 13)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic_broadcast(op) -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2, (3, 4)).astype(bool)
    b = rng.integers(0, 2, (4,)).astype(bool)
    assert_close(ours(op, 7, a, b), run_ort(op, [a, b], {}, 7)[0])


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_bit_shift(direction, dtype) -> None:
    x = np.array([16, 4, 1, 255], dtype)
    y = np.array([1, 2, 3, 1], dtype)
    want = run_ref("BitShift", [x, y], {"direction": direction}, 11)[0]
    assert_close(ours("BitShift", 11, x, y, direction=direction), want)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_bitwise(op, dtype) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 120, (3, 4)).astype(dtype)
    b = rng.integers(0, 120, (1, 4)).astype(dtype)
    assert_close(ours(op, 18, a, b), run_ref(op, [a, b], {}, 18)[0])


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=st.integers(0, 99))
def test_where_three_way_broadcast(shapes, seed) -> None:
    rng = np.random.default_rng(seed)
    cond = rng.integers(0, 2, shapes.input_shapes[0]).astype(bool)
    x = rng.normal(size=shapes.input_shapes[1]).astype(np.float32)
    y = rng.normal(size=shapes.input_shapes[2]).astype(np.float32)
    want = run_ort("Where", [cond, x, y], {}, 16, out_types=[np.float32])[0]
    got = ours("Where", 16, np.asarray(cond), np.asarray(x), np.asarray(y))
    assert_close(got, want)
