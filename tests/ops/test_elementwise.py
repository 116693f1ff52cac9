"""Unary math, standalone activations, Cast and CastLike against onnx.reference and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from clmace.core.errors import ModelError, UnsupportedOpError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

RNG = np.random.default_rng(0)



def _data(domain: str, dtype=np.float32, shape=(3, 4, 5)) -> np.ndarray:
    """Random input inside the op's domain."""
    if domain == "unit":
        x = RNG.uniform(-0.99, 0.99, shape)
    elif domain == "pos":
        x = RNG.uniform(0.01, 5, shape)
    elif domain == "ge1":
        x = RNG.uniform(1, 5, shape)
    else:
        x = RNG.normal(0, 2, shape)
        x.flat[:4] = [0.5, -0.5, 2.5, -1.5]  # rounding ties
    return x.astype(dtype)


# (op, input domain, attributes, opset)
UNARY = [
    ("Abs", "any", {}, 13), ("Neg", "any", {}, 13), ("Reciprocal", "pos", {}, 13),
    ("Floor", "any", {}, 13), ("Ceil", "any", {}, 13), ("Round", "any", {}, 11), ("Sign", "any", {}, 13),
    ("Exp", "any", {}, 13), ("Log", "pos", {}, 13), ("Sqrt", "pos", {}, 13), ("Erf", "any", {}, 13),
    ("Sin", "any", {}, 7), ("Cos", "any", {}, 7), ("Tan", "any", {}, 7), ("Asin", "unit", {}, 7),
    ("Acos", "unit", {}, 7), ("Atan", "any", {}, 7), ("Sinh", "any", {}, 9), ("Cosh", "any", {}, 9),
    ("Asinh", "any", {}, 9), ("Acosh", "ge1", {}, 9), ("Atanh", "unit", {}, 9),
    ("Relu", "any", {}, 14), ("LeakyRelu", "any", {"alpha": 0.1}, 16), ("Sigmoid", "any", {}, 13),
    ("HardSigmoid", "any", {"alpha": 0.3, "beta": 0.4}, 6), ("HardSwish", "any", {}, 14),
    ("Tanh", "any", {}, 13), ("Gelu", "any", {}, 20), ("Gelu", "any", {"approximate": "tanh"}, 20),
    ("Elu", "any", {"alpha": 0.7}, 6), ("Selu", "any", {}, 6), ("Celu", "any", {"alpha": 1.5}, 12),
    ("Softplus", "any", {}, 1), ("Softsign", "any", {}, 1), ("Mish", "any", {}, 18),
    ("ThresholdedRelu", "any", {"alpha": 0.5}, 10), ("Shrink", "any", {"bias": 0.2, "lambd": 0.7}, 9),
]


@pytest.mark.parametrize("op, domain, attrs, opset", UNARY, ids=[f"{u[0]}{u[2] or ''}" for u in UNARY])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_float(op, domain, attrs, opset, dtype) -> None:
    x = _data(domain, dtype)
    want = run_ref(op, [x], attrs, opset)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(ours(op, opset, x, **attrs), want[0], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "Exp", "HardSwish", "Gelu", "Softplus"])
def test_float16_stays_float16(op) -> None:
    x = _data("any", np.float16)
    out = ours(op, 20, x)
    assert out.dtype == np.float16
    assert_close(out, run_ort(op, [x], {}, 20)[0], rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign", "Relu"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_unary_int(op, dtype) -> None:
    x = RNG.integers(-50, 50, (4, 5)).astype(dtype)
    assert_close(ours(op, 14, x), run_ref(op, [x], {}, 14)[0])


def test_is_nan_is_inf() -> None:
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
    assert_close(ours("IsNaN", 20, x), run_ref("IsNaN", [x], {}, 20, out_types=[bool])[0])
    for neg in (0, 1):
        for pos in (0, 1):
            attrs = {"detect_negative": neg, "detect_positive": pos}
            want = run_ref("IsInf", [x], attrs, 20, out_types=[bool])[0]
            assert_close(ours("IsInf", 20, x, **attrs), want)


def test_not_and_bitwise_not() -> None:
    b = np.array([[True, False], [False, True]])
    assert_close(ours("Not", 1, b), ~b)
    for dtype in (np.uint8, np.int32, np.uint64):
        x = RNG.integers(0, 100, (3, 3)).astype(dtype)
        assert_close(ours("BitwiseNot", 18, x), run_ref("BitwiseNot", [x], {}, 18)[0])


def test_prelu_broadcasts_slope() -> None:
    x = _data("any", shape=(2, 3, 4, 4))
    slope = RNG.uniform(0, 1, (3, 1, 1)).astype(np.float32)
    assert_close(ours("PRelu", 16, x, slope), run_ort("PRelu", [x, slope], {}, 16)[0])


def test_clip_attributes_before_opset_11() -> None:
    x = _data("any")
    want = run_ref("Clip", [x], {"min": -0.5, "max": 0.5}, 6)[0]
    assert_close(ours("Clip", 6, x, min=-0.5, max=0.5), want)
    assert_close(ours("Clip", 6, x), x)


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (None, 0.5), (-0.5, None), (None, None), (2.0, 1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_clip_inputs(lo, hi, dtype) -> None:
    x = (_data("any") * 3).astype(dtype)
    lo_arr = None if lo is None else np.array(lo, dtype)
    hi_arr = None if hi is None else np.array(hi, dtype)
    want = run_ort("Clip", [x, lo_arr, hi_arr], {}, 13)[0]
    args = [x, lo_arr, hi_arr]
    while args[-1] is None:
        args.pop()
    assert_close(ours("Clip", 13, *args), want)  # min > max clips everything to max


def test_swish_alpha() -> None:
    x = _data("any")
    want = x / (1 + np.exp(-0.5 * x))
    assert_close(ours("Swish", 24, x, alpha=0.5), want.astype(np.float32))


def test_gelu_bad_approximate() -> None:
    with pytest.raises(ModelError, match="Gelu.*approximate"):
        ours("Gelu", 20, _data("any"), approximate="fast")


CAST_TYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32,
              np.uint32, np.int64, np.uint64, np.bool_]
ENUM = {np.dtype(t): e for t, e in [
    (np.float32, TensorProto.FLOAT), (np.float64, TensorProto.DOUBLE), (np.float16, TensorProto.FLOAT16),
    (np.int8, TensorProto.INT8), (np.uint8, TensorProto.UINT8), (np.int16, TensorProto.INT16),
    (np.uint16, TensorProto.UINT16), (np.int32, TensorProto.INT32), (np.uint32, TensorProto.UINT32),
    (np.int64, TensorProto.INT64), (np.uint64, TensorProto.UINT64), (np.bool_, TensorProto.BOOL)]}


@pytest.mark.parametrize("src", CAST_TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("dst", CAST_TYPES, ids=lambda t: np.dtype(t).name)
def test_cast_matches_onnxruntime(src, dst) -> None:
    # Values every type can hold, with fractions so float -> int truncation shows.
    x = np.array([[0, 1.7, 2.2, 100.5], [3, 0, 7.9, 1]]).astype(src)
    want = run_ort("Cast", [x], {"to": ENUM[np.dtype(dst)]}, 13, out_types=[dst])[0]
    assert_close(ours("Cast", 13, x, to=ENUM[np.dtype(dst)]), want)
    like = np.zeros(0, dst)
    assert_close(ours("CastLike", 15, x, like), want)


def test_cast_opset1_string_type_name() -> None:
    x = np.array([1.5, -2.5], np.float32)
    assert_close(ours("Cast", 1, x, to="INT32"), np.array([1, -2], np.int32))


@pytest.mark.parametrize("to", [TensorProto.STRING, TensorProto.FLOAT8E4M3FN, TensorProto.INT4,
                                TensorProto.FLOAT4E2M1])
def test_cast_out_of_scope_types_name_the_type(to) -> None:
    with pytest.raises(UnsupportedOpError, match=TensorProto.DataType.Name(to)):
        ours("Cast", 21, np.ones(3, np.float32), to=to)


def test_cast_bfloat16_round_trip() -> None:
    x = np.array([1.0, 3.14159, -2.5e10, np.inf], np.float32)
    bf = ours("Cast", 21, x, to=TensorProto.BFLOAT16)
    assert bf.dtype.name == "bfloat16"
    back = ours("Cast", 21, bf, to=TensorProto.FLOAT)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, rtol=1e-2)
