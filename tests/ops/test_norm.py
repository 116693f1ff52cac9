"""Normalizations and the Softmax family against onnxruntime (and onnx.reference where ORT lacks an op)."""

from __future__ import annotations

import numpy as np
import pytest

from clmace.core.errors import ModelError
from clmace.ops import norm as norm_module
from tests.ops.helpers import SchemaBound, check_against, run_ort, run_ref

rng = np.random.default_rng(0)


norm = SchemaBound(norm_module)

def _rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 3), (2, 2, 2, 3, 2)])
def test_batch_normalization(shape: tuple[int, ...]) -> None:
    c = shape[1]
    inputs = [_rand(*shape), _rand(c), _rand(c), _rand(c), _positive(c)]
    check_against(run_ort("BatchNormalization", inputs, {"epsilon": 1e-3}, 15),
                  norm.batch_normalization(*inputs, epsilon=1e-3))


def test_batch_normalization_training_mode() -> None:
    inputs = [_rand(2, 3, 4, 4), _rand(3), _rand(3), _rand(3), _positive(3)]
    attrs = {"training_mode": 1, "momentum": 0.8}
    want = run_ref("BatchNormalization", inputs, attrs, 15, n_outputs=3)
    check_against(want, norm.batch_normalization(*inputs, **attrs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4, 5), 2), ((6,), 0)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_normalization(shape: tuple[int, ...], axis: int, with_bias: bool) -> None:
    x = _rand(*shape)
    scale = _rand(*shape[axis % len(shape):])
    bias = _rand(*shape[axis % len(shape):]) if with_bias else None
    want = run_ort("LayerNormalization", [x, scale, bias], {"axis": axis, "epsilon": 1e-4}, 17, n_outputs=3)
    check_against(want, norm.layer_normalization(x, scale, bias, axis=axis, epsilon=1e-4))


def test_instance_normalization() -> None:
    for shape in [(2, 3, 5), (1, 4, 3, 3)]:
        inputs = [_rand(*shape), _rand(shape[1]), _rand(shape[1])]
        check_against(run_ort("InstanceNormalization", inputs, {"epsilon": 1e-3}, 6),
                      norm.instance_normalization(*inputs, epsilon=1e-3))


def test_group_normalization_per_group_and_per_channel() -> None:
    x = _rand(2, 6, 3, 3)
    scale18, bias18 = _rand(3), _rand(3)
    want = run_ref("GroupNormalization", [x, scale18, bias18], {"num_groups": 3}, 18)
    check_against(want, norm.group_normalization_18(x, scale18, bias18, num_groups=3))
    scale21, bias21 = _rand(6), _rand(6)
    want = run_ort("GroupNormalization", [x, scale21, bias21], {"num_groups": 2, "epsilon": 1e-3}, 21)
    check_against(want, norm.group_normalization_21(x, scale21, bias21, num_groups=2, epsilon=1e-3),
                  rtol=1e-4, atol=1e-4)
    assert norm_module.OPS["GroupNormalization"] == {18: norm_module.group_normalization_18,
                                                     21: norm_module.group_normalization_21}


SOFTMAXES = [("Softmax", norm.softmax_1, norm.softmax_13), ("LogSoftmax", norm.log_softmax_1, norm.log_softmax_13),
             ("Hardmax", norm.hardmax_1, norm.hardmax_13)]


@pytest.mark.parametrize(("op", "old", "new"), SOFTMAXES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_family_both_semantics(op: str, old: object, new: object, axis: int) -> None:
    x = _rand(2, 3, 4)
    check_against(run_ort(op, [x], {"axis": axis}, 11), old(x, axis=axis))
    check_against(run_ort(op, [x], {"axis": axis}, 13), new(x, axis=axis))


def test_softmax_defaults_and_table() -> None:
    x = _rand(2, 3, 4)
    check_against(run_ort("Softmax", [x], {}, 11), norm.softmax_1(x))
    check_against(run_ort("Softmax", [x], {}, 13), norm.softmax_13(x))
    assert norm_module.OPS["Softmax"] == {1: norm_module.softmax_1, 13: norm_module.softmax_13}
    big = np.array([[1000.0, 1000.0, -1000.0]], np.float32)
    np.testing.assert_allclose(norm.softmax_13(big), [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_normalization(p: int, axis: int) -> None:
    x = _rand(3, 4, 2)
    x[0] = 0  # an all-zero slice must give 0, not NaN
    np.testing.assert_array_equal(norm.lp_normalization(np.zeros((2, 2), np.float32)), np.zeros((2, 2)))
    got = norm.lp_normalization(x, axis=axis, p=p)
    want = x / np.maximum(np.linalg.norm(x, ord=p, axis=axis, keepdims=True), 1e-30)
    check_against([want], got)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_lrn(size: int) -> None:
    x = _rand(2, 6, 3, 3)
    attrs = {"size": size, "alpha": 1e-2, "beta": 0.6, "bias": 2.0}
    if size % 2:
        check_against(run_ort("LRN", [x], attrs, 13), norm.lrn(x, **attrs))
    # onnxruntime takes odd sizes only; the spec's own loop covers every size.
    want = np.empty_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + size // 2)
        square_sum = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        want[:, c] = x[:, c] / (2.0 + 1e-2 / size * square_sum) ** 0.6
    check_against([want], norm.lrn(x, **attrs))


def test_mean_variance_normalization() -> None:
    x = _rand(2, 3, 4, 5)
    check_against(run_ort("MeanVarianceNormalization", [x], {}, 13), norm.mean_variance_normalization(x),
                  rtol=1e-4, atol=1e-4)
    check_against(run_ort("MeanVarianceNormalization", [x], {"axes": [1, 3]}, 13),
                  norm.mean_variance_normalization(x, axes=[1, 3]), rtol=1e-4, atol=1e-4)


def test_float16_keeps_dtype() -> None:
    x = _rand(2, 3, 4, dtype=np.float16)
    assert norm.softmax_13(x).dtype == np.float16
    assert norm.layer_normalization(x, np.ones(4, np.float16))[0].dtype == np.float16
    c = np.ones(3, np.float16)
    assert norm.batch_normalization(x, c, c * 0, c * 0, c).dtype == np.float16


def test_errors() -> None:
    with pytest.raises(ModelError, match="GroupNormalization: channels 6 / num_groups 4"):
        norm.group_normalization_21(_rand(1, 6, 2), _rand(6), _rand(6), num_groups=4)
    with pytest.raises(ModelError, match=r"BatchNormalization: input scale has shape \(2,\), expected \(3,\)"):
        norm.batch_normalization(_rand(1, 3, 2), _rand(2), _rand(3), _rand(3), _positive(3))
    with pytest.raises(ModelError, match="Softmax: axis 3 is out of range for rank 2"):
        norm.softmax_13(_rand(2, 2), axis=3)
