"""Gather / GatherElements / GatherND / ScatterND / ScatterElements against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from clmace.core.errors import ModelError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDUCTIONS = ["none", "add", "mul", "max", "min"]



@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=4),
       idx_shape=array_shapes(min_dims=0, max_dims=2, max_side=3), data=st.data())
def test_gather(shape, idx_shape, data) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    rng = np.random.default_rng(sum(shape) + axis)
    indices = rng.integers(-dim, dim, idx_shape).astype(data.draw(st.sampled_from([np.int32, np.int64])))
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    got = ours("Gather", 13, x, np.asarray(indices), axis=axis)
    assert_close(got, run_ort("Gather", [x, np.asarray(indices)], {"axis": axis}, 13)[0])


def test_gather_out_of_range() -> None:
    with pytest.raises(ModelError, match=r"Gather: indices must be in \[-3, 2\]"):
        ours("Gather", 13, np.ones((3, 2), np.float32), np.array([3]))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    dim = x.shape[axis]
    idx = np.random.default_rng(0).integers(-dim, dim, (2, 4) if axis == 0 else (3, 2))
    assert_close(ours("GatherElements", 13, x, idx, axis=axis),
                 run_ort("GatherElements", [x, idx], {"axis": axis}, 13)[0])


@pytest.mark.parametrize("batch_dims, data_shape, idx", [
    (0, (2, 2), [[0, 0], [1, 1]]),
    (0, (2, 2), [[1], [0]]),
    (0, (2, 2, 2), [[0, 1], [1, 0]]),
    (0, (2, 2, 2), [[[0, 1]], [[1, 0]]]),
    (1, (2, 2, 2), [[1], [0]]),
    (1, (2, 3, 4), [[[1, -1], [0, 2]], [[2, 3], [0, 0]]]),
    (2, (2, 3, 4, 2), [[[1], [0], [3]], [[2], [2], [0]]]),
])
def test_gather_nd(batch_dims, data_shape, idx) -> None:
    x = np.arange(int(np.prod(data_shape)), dtype=np.float32).reshape(data_shape)
    indices = np.array(idx, np.int64)
    want = run_ref("GatherND", [x, indices], {"batch_dims": batch_dims}, 13)[0]
    assert_close(ours("GatherND", 13, x, indices, batch_dims=batch_dims), want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_nd(reduction) -> None:
    x = np.arange(4 * 4 * 2, dtype=np.float32).reshape(4, 4, 2)
    repeat = reduction != "none"  # duplicate indices are only defined with a reduction
    indices = np.array([[0], [2], [0]] if repeat else [[0], [2]], np.int64)
    updates = np.full((len(indices), 4, 2), 3.0, np.float32)
    attrs = {} if reduction == "none" else {"reduction": reduction}
    want = run_ref("ScatterND", [x, indices, updates], attrs, 18)[0]
    assert_close(ours("ScatterND", 18, x, indices, updates, **attrs), want)


def test_scatter_nd_element_indices() -> None:
    x = np.zeros((3, 3), np.int32)
    indices = np.array([[0, 1], [2, -1]], np.int64)
    updates = np.array([5, 6], np.int32)
    assert_close(ours("ScatterND", 13, x, indices, updates), run_ort("ScatterND", [x, indices, updates], {}, 13)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(reduction, axis) -> None:
    x = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    dim = x.shape[axis]
    rng = np.random.default_rng(1)
    shape = (2, 3)
    if reduction == "none":  # without a reduction, indices along the axis must not repeat
        indices = np.stack([rng.permutation(dim)[:shape[axis % 2]] for _ in range(shape[1 - axis % 2])])
        indices = indices if axis % 2 else indices.T
    else:
        indices = rng.integers(-dim, dim, shape)
    updates = rng.uniform(1, 2, indices.shape).astype(np.float32)
    attrs = {"axis": axis, **({} if reduction == "none" else {"reduction": reduction})}
    want = run_ref("ScatterElements", [x, indices, updates], attrs, 18)[0]
    assert_close(ours("ScatterElements", 18, x, indices, updates, **attrs), want)


def test_scatter_deprecated_alias() -> None:
    x = np.zeros((2, 3), np.float32)
    indices = np.array([[1, 0, 2]], np.int64)
    updates = np.array([[4.0, 5.0, 6.0]], np.float32)
    want = ours("ScatterElements", 11, x, indices, updates, axis=1)
    assert_close(ours("Scatter", 9, x, indices, updates, axis=1), want)


def test_scatter_bad_reduction() -> None:
    with pytest.raises(ModelError, match="ScatterND: attribute reduction"):
        ours("ScatterND", 18, np.zeros(3), np.array([[0]]), np.array([1.0]), reduction="avg")
