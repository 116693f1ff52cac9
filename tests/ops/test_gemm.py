"""Gemm, MatMul and Einsum against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmace.core.errors import ModelError
from clmace.ops import gemm
from tests.ops.helpers import SchemaBound, check_against, run_ort

rng = np.random.default_rng(0)


gemm_ops = SchemaBound(gemm)

def _rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), trans_a=st.integers(0, 1),
       trans_b=st.integers(0, 1), alpha=st.sampled_from([1.0, 0.5, -2.0]), beta=st.sampled_from([1.0, 0.0, 3.0]),
       c_kind=st.sampled_from(["none", "scalar", "row", "column", "full", "one"]))
def test_gemm_matches_ort(m: int, k: int, n: int, trans_a: int, trans_b: int, alpha: float, beta: float,
                          c_kind: str) -> None:
    a = _rand(k, m) if trans_a else _rand(m, k)
    b = _rand(n, k) if trans_b else _rand(k, n)
    c_shape = {"none": None, "scalar": (), "row": (n,), "column": (m, 1), "full": (m, n), "one": (1,)}[c_kind]
    c = None if c_shape is None else _rand(*c_shape)
    attrs = {"alpha": alpha, "beta": beta, "transA": trans_a, "transB": trans_b}
    check_against(run_ort("Gemm", [a, b, c], attrs, 13), gemm_ops.gemm(a, b, c, **attrs))


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2)


@settings(max_examples=40, deadline=None)
@given(batch_a=shapes, batch_b=shapes, m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       vec_a=st.booleans(), vec_b=st.booleans(), data=st.data())
def test_matmul_matches_ort(batch_a: list[int], batch_b: list[int], m: int, k: int, n: int, vec_a: bool,
                            vec_b: bool, data: st.DataObject) -> None:
    # Make the batch dims broadcast-compatible: each pair equal or one of them 1.
    rank = min(len(batch_a), len(batch_b))
    for i in range(1, rank + 1):
        if batch_a[-i] != batch_b[-i] and 1 not in (batch_a[-i], batch_b[-i]):
            batch_b[-i] = data.draw(st.sampled_from([1, batch_a[-i]]))
    a = _rand(k) if vec_a else _rand(*batch_a, m, k)
    b = _rand(k) if vec_b else _rand(*batch_b, k, n)
    check_against(run_ort("MatMul", [a, b], {}, 13), gemm_ops.matmul(a, b))


def test_int_and_fp16_matmul() -> None:
    a, b = rng.integers(-5, 5, (2, 3, 4)).astype(np.int32), rng.integers(-5, 5, (4, 2)).astype(np.int32)
    check_against(run_ort("MatMul", [a, b], {}, 13), gemm_ops.matmul(a, b))
    a16, b16 = _rand(3, 8, dtype=np.float16), _rand(8, 2, dtype=np.float16)
    got = gemm_ops.matmul(a16, b16)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, run_ort("MatMul", [a16, b16], {}, 13)[0], rtol=1e-2, atol=1e-2)


def test_fused_activation() -> None:
    a, b, c = _rand(3, 4), _rand(4, 5), _rand(5)
    np.testing.assert_array_equal(gemm_ops.gemm(a, b, c, activation="Relu"),
                                  np.maximum(gemm_ops.gemm(a, b, c), 0))
    got = gemm_ops.matmul(a, b, activation="LeakyRelu", activation_params=(0.1,))
    plain = a @ b
    np.testing.assert_allclose(got, np.where(plain >= 0, plain, plain * 0.1), rtol=1e-6)


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i", [(5,), (5,)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 2)]),
    ("ij, jk, kl -> il", [(2, 3), (3, 4), (4, 2)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_einsum_matches_ort(equation: str, shapes: list[tuple[int, ...]]) -> None:
    inputs = [_rand(*s) for s in shapes]
    check_against(run_ort("Einsum", inputs, {"equation": equation}, 12),
                  gemm_ops.einsum(*inputs, equation=equation))


def test_errors() -> None:
    with pytest.raises(ModelError, match="Gemm: inner sizes differ"):
        gemm_ops.gemm(_rand(2, 3), _rand(4, 5))
    with pytest.raises(ModelError, match=r"Gemm: C of shape \(3,\) does not broadcast"):
        gemm_ops.gemm(_rand(2, 3), _rand(3, 5), _rand(3))
    with pytest.raises(ModelError, match="MatMul: shapes"):
        gemm_ops.matmul(_rand(2, 3), _rand(4, 5))
    with pytest.raises(ModelError, match="Einsum: equation"):
        gemm_ops.einsum(_rand(2, 3), equation="ijk->i")
