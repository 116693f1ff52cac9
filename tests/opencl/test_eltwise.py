"""Element-wise kernels (unary, broadcasting binary, comparisons, Where, Cast) against the NumPy runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from tests.opencl.conftest import compare, make_model

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))

UNARY = [("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("Erf", {}), ("Exp", {}), ("Abs", {}), ("Neg", {}),
         ("Floor", {}), ("Ceil", {}), ("Round", {}), ("Sign", {}), ("Sin", {}), ("Cos", {}), ("Atan", {}),
         ("HardSwish", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("LeakyRelu", {"alpha": 0.2}),
         ("Elu", {"alpha": 0.7}), ("Selu", {}), ("Softplus", {}), ("Softsign", {}), ("Mish", {}),
         ("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Celu", {"alpha": 1.5}),
         ("ThresholdedRelu", {"alpha": 0.4}), ("Reciprocal", {})]


@pytest.mark.parametrize("op,attrs", UNARY, ids=[f"{o}{'_' + str(a) if a else ''}" for o, a in UNARY])
def test_unary(op, attrs) -> None:
    """Each unary op on a (2, 3, 5) tensor."""
    opset = {"Gelu": 20, "Mish": 18}.get(op, 17)
    compare(make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [2, 3, 5])], ["y"], opset=opset),
            rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["Sqrt", "Log"])
def test_unary_positive(op) -> None:
    """Sqrt and Log on positive inputs."""
    model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", [4, 7])], ["y"])
    compare(model, {"x": np.random.default_rng(0).uniform(0.1, 5, (4, 7)).astype(np.float32)})


def test_clip_and_isnan() -> None:
    """Clip with constant bounds, IsNaN / IsInf to bool."""
    inits = [("lo", np.array(-0.5, np.float32)), ("hi", np.array(0.7, np.float32))]
    compare(make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", [3, 8])], ["y"], inits))
    x = np.array([[1.0, np.nan, np.inf, -np.inf, 0.0]], np.float32)
    compare(make_model([helper.make_node("IsNaN", ["x"], ["y"])], [("x", [1, 5])], ["y"]), {"x": x})
    compare(make_model([helper.make_node("IsInf", ["x"], ["y"], detect_negative=0)], [("x", [1, 5])], ["y"]),
            {"x": x})


def test_clip_with_bounds_computed_at_run_time() -> None:
    """A log-mel floor, Clip(x, max(x) - 80, hi): the lower bound comes from a reduction, the upper from an input
    or nowhere; both read on the device (no host step)."""
    nodes = [helper.make_node("ReduceMax", ["s"], ["peak"], keepdims=0),
             helper.make_node("Sub", ["peak", "floor"], ["lo"]),
             helper.make_node("Clip", ["x", "lo", "hi"], ["y"]),
             helper.make_node("Clip", ["x", "", "hi"], ["z"]),
             helper.make_node("Clip", ["x", "lo"], ["w"])]
    model = make_model(nodes, [("x", [4, 50]), ("s", [4, 50]), ("hi", [])], ["y", "z", "w"],
                       [("floor", np.array(2.0, np.float32))])
    x = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32) * 3
    x[0, 0] = np.nan
    compare(model, {"x": x, "s": np.nan_to_num(x) * 0.5 + 0.1, "hi": np.array(1.5, np.float32)})


SHAPES = st.sampled_from([((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (5, 2)),
                          ((), (2, 3)), ((2, 3, 1, 5), (1, 1, 4, 1)), ((6,), ())])


@SETTINGS
@given(shapes=SHAPES, op=st.sampled_from(["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"]))
def test_binary_broadcast(shapes, op) -> None:
    """Broadcasting arithmetic in every shape combination."""
    a, b = shapes
    if op == "PRelu" and np.broadcast_shapes(a, b) != tuple(a):
        return
    rng = np.random.default_rng(0)
    feeds = {"a": rng.uniform(0.5, 2, a).astype(np.float32), "b": rng.uniform(-2, 2, b).astype(np.float32)}
    compare(make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", list(a)), ("b", list(b))], ["y"]),
            feeds)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_compare(op) -> None:
    """Comparisons give bool tensors."""
    rng = np.random.default_rng(1)
    feeds = {"a": rng.integers(0, 3, (3, 4)).astype(np.float32), "b": rng.integers(0, 3, (4,)).astype(np.float32)}
    compare(make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", [3, 4]), ("b", [4])], ["y"]), feeds)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Mod", "Max"])
def test_integer_binary(op) -> None:
    """int64 and int32 arithmetic (Div truncates, Mod follows the divisor's sign)."""
    for elem, dtype in ((TensorProto.INT64, np.int64), (TensorProto.INT32, np.int32)):
        rng = np.random.default_rng(2)
        feeds = {"a": rng.integers(-20, 20, (2, 5)).astype(dtype),
                 "b": rng.choice([-3, -2, 1, 2, 7], (5,)).astype(dtype)}
        compare(make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", [2, 5], elem), ("b", [5], elem)], ["y"]),
                feeds)


def test_logic_and_where() -> None:
    """And / Or / Xor / Not on bool, and Where with three-way broadcasting."""
    for op in ("And", "Or", "Xor"):
        compare(make_model([helper.make_node(op, ["a", "b"], ["y"])],
                           [("a", [3, 4], TensorProto.BOOL), ("b", [4], TensorProto.BOOL)], ["y"]))
    compare(make_model([helper.make_node("Not", ["a"], ["y"])], [("a", [3, 4], TensorProto.BOOL)], ["y"]))
    compare(make_model([helper.make_node("Where", ["c", "a", "b"], ["y"])],
                       [("c", [3, 1], TensorProto.BOOL), ("a", [4]), ("b", [3, 4])], ["y"]))


@pytest.mark.parametrize("src,dst", [(TensorProto.FLOAT, TensorProto.INT64), (TensorProto.INT64, TensorProto.FLOAT),
                                     (TensorProto.FLOAT, TensorProto.FLOAT16), (TensorProto.FLOAT16, TensorProto.FLOAT),
                                     (TensorProto.FLOAT, TensorProto.BOOL), (TensorProto.INT32, TensorProto.INT8)])
def test_cast(src, dst) -> None:
    """Cast between numeric types, half storage and bool."""
    compare(make_model([helper.make_node("Cast", ["x"], ["y"], to=dst)], [("x", [3, 5], src)], ["y"]))


def test_cast_to_and_from_bfloat16_on_the_device() -> None:
    """float32 -> bfloat16 rounds to nearest even exactly as ml_dtypes (ties, NaN, infinities, subnormals,
    overflow to infinity), bfloat16 -> float32 and int32 -> bfloat16 too, all on the device."""
    import ml_dtypes

    from clmace import InferenceSession
    from tests.opencl.conftest import runtime_of

    bf16 = np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    ties = (np.arange(1, 2000, dtype=np.uint32) << 16) | 0x8000  # exactly halfway: even wins
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4028235e38, 1e-45, -1e-40, 1.0, 1.00390625], np.float32)
    x = np.concatenate([bits.view(np.float32), ties.view(np.float32), special])
    model = make_model([helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
                        helper.make_node("Cast", ["b"], ["f"], to=TensorProto.FLOAT),
                        helper.make_node("Cast", ["i"], ["c"], to=TensorProto.BFLOAT16)],
                       [("x", [x.size]), ("i", [7], TensorProto.INT32)],
                       [("b", None, TensorProto.BFLOAT16), ("f", None), ("c", None, TensorProto.BFLOAT16)])
    ints = np.array([0, 1, -1, 255, 257, 65535, 2**31 - 1], np.int32)
    sess = InferenceSession(model, device="opencl")
    assert set(runtime_of(sess).node_devices().values()) == {"opencl"}
    b, f, c = sess.run(None, {"x": x, "i": ints})
    want = x.astype(bf16)
    np.testing.assert_array_equal(b.view(np.uint16), want.view(np.uint16))  # NaNs included: same bits
    np.testing.assert_array_equal(f.view(np.uint32), want.astype(np.float32).view(np.uint32))
    np.testing.assert_array_equal(c.view(np.uint16), ints.astype(np.float32).astype(bf16).view(np.uint16))


@pytest.mark.parametrize("op", ["Exp", "Sigmoid"])
def test_exp_over_the_whole_float_range(op) -> None:
    """exp within 2 ulp of float64 exp over [-100, 100] (on CPU devices common.cl's inline exp_f, on GPUs the
    driver's), with exp's NaN, infinity, overflow and underflow; Sigmoid built on it within 3 ulp."""
    x = np.concatenate([np.linspace(-100, 100, 40001, dtype=np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72, 88.73, -87.3, -87.4, 1e-8], np.float32)])
    sess = compare(make_model([helper.make_node(op, ["x"], ["y"])], [("x", [x.size])], [("y", None)]),
                   {"x": x}, rtol=1e-5, atol=1e-37)  # below 1e-37 float exp is subnormal, ours 0
    (got,) = sess.run(None, {"x": x})
    wide = x.astype(np.float64)
    want = np.exp(wide) if op == "Exp" else 1.0 / (1.0 + np.exp(-wide))
    normal = np.isfinite(want) & (np.abs(want) > 2.4e-38) & (np.abs(want) < 3.4e38)
    ulps = np.abs(got[normal] - want[normal]) / (np.abs(want[normal]) * 2.0 ** -23)
    assert ulps.max() <= (2 if op == "Exp" else 3), float(ulps.max())
    assert np.isnan(got[np.isnan(x)]).all()
    if op == "Exp":
        tiny = got[x < -87.4]  # exp's subnormal range: the CPU's exp_f flushes it to zero, GPUs need not
        assert ((tiny >= 0) & (tiny < 1.2e-38)).all()
        assert np.isposinf(got[x > 88.73]).all()
    else:
        assert (got[x < -88.8] >= 0).all() and (got[x < -88.8] < 2.4e-38).all()
        assert (got[x > 17] == 1).all()


def test_tanh_over_the_whole_float_range() -> None:
    """tanh within 3 ulp of float64 tanh over [-20, 20] and near zero (on CPU devices common.cl's inline
    tanh_f, on GPUs the driver's), odd, saturating to +-1, NaN kept; the same through a fused Tanh chain."""
    x = np.concatenate([np.linspace(-20, 20, 40001, dtype=np.float32),
                        np.geomspace(1e-30, 0.7, 2000).astype(np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.625, -0.625, 0.6249999, 100.0], np.float32)])
    x = np.concatenate([x, -x[40001:42001]])
    sess = compare(make_model([helper.make_node("Tanh", ["x"], ["y"])], [("x", [x.size])], [("y", None)]),
                   {"x": x}, rtol=1e-5, atol=1e-30)
    (got,) = sess.run(None, {"x": x})
    want = np.tanh(x.astype(np.float64))
    finite = np.isfinite(x) & (x != 0)
    ulps = np.abs(got[finite] - want[finite]) / (np.abs(want[finite]) * 2.0 ** -23)
    assert ulps.max() <= 3, float(ulps.max())
    assert np.isnan(got[np.isnan(x)]).all()
    assert (got[x >= 9.1] == 1).all() and (got[x <= -9.1] == -1).all()
    assert (np.signbit(got[x == 0]) == np.signbit(x[x == 0])).all()


def test_erf_over_the_whole_float_range() -> None:
    """erf_f (eltwise.cl, both pieces computed and one selected) within 3e-7 of float64 erf over [-10, 10],
    odd, +-1 at the infinities, NaN kept, -0 kept."""
    import math

    x = np.concatenate([np.linspace(-10, 10, 40001, dtype=np.float32), np.geomspace(1e-30, 0.6, 500).astype(np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 0.4999999], np.float32)])
    sess = compare(make_model([helper.make_node("Erf", ["x"], ["y"])], [("x", [x.size])], [("y", None)]),
                   {"x": x}, rtol=1e-5, atol=1e-6)
    (got,) = sess.run(None, {"x": x})
    want = np.array([math.erf(v) if np.isfinite(v) else np.nan for v in x.astype(np.float64)])
    finite = np.isfinite(x)
    assert np.abs(got[finite] - want[finite]).max() <= 3e-7
    assert np.isnan(got[np.isnan(x)]).all()
    assert got[x == np.inf][0] == 1 and got[x == -np.inf][0] == -1
    assert (np.signbit(got[x == 0]) == np.signbit(x[x == 0])).all()
