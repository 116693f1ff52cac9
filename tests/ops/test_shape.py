"""Shape-only and tensor-creating ops against onnx.reference and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from clmace.core.errors import ModelError, UnsupportedOpError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)



@pytest.mark.parametrize("shape", [[4, 6], [0, -1], [-1], [2, 0, 2, 2], [1, 1, -1], [24]])
def test_reshape(shape) -> None:
    s = np.array(shape, np.int64)
    assert_close(ours("Reshape", 14, X, s), run_ort("Reshape", [X, s], {}, 14)[0])


def test_reshape_allowzero() -> None:
    empty = np.zeros((0, 3), np.float32)
    s = np.array([3, 0], np.int64)
    assert ours("Reshape", 14, empty, s, allowzero=1).shape == (3, 0)
    assert ours("Reshape", 14, X, np.array([0, 12], np.int64)).shape == (2, 12)


def test_reshape_errors() -> None:
    with pytest.raises(ModelError, match="Reshape: cannot reshape"):
        ours("Reshape", 14, X, np.array([5, -1], np.int64))
    with pytest.raises(ModelError, match="more than one -1"):
        ours("Reshape", 14, X, np.array([-1, -1], np.int64))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis) -> None:
    assert_close(ours("Flatten", 13, X, axis=axis), run_ref("Flatten", [X], {"axis": axis}, 13)[0])


def test_squeeze_unsqueeze_attribute_and_input() -> None:
    x = np.ones((1, 3, 1, 2), np.float32)
    assert ours("Squeeze", 11, x, axes=[0, -2]).shape == (3, 2)
    assert ours("Squeeze", 13, x, np.array([2], np.int64)).shape == (1, 3, 2)
    assert ours("Squeeze", 13, x).shape == (3, 2)
    assert ours("Unsqueeze", 11, X, axes=[0, -1]).shape == (1, 2, 3, 4, 1)
    want = run_ref("Unsqueeze", [X, np.array([1, 4], np.int64)], {}, 13)[0]
    assert_close(ours("Unsqueeze", 13, X, np.array([1, 4], np.int64)), want)
    with pytest.raises(ModelError, match="Squeeze: axis 1 has size 3"):
        ours("Squeeze", 13, x, np.array([1], np.int64))


@pytest.mark.parametrize("start, end", [(0, None), (1, None), (-1, None), (0, -1), (-10, 10), (2, 1)])
def test_shape_slicing(start, end) -> None:
    attrs = {"start": start, **({} if end is None else {"end": end})}
    got = ours("Shape", 15, X, **attrs)
    assert got.dtype == np.int64
    assert_close(got, run_ref("Shape", [X], attrs, 15, out_types=[np.int64])[0])


def test_size() -> None:
    got = ours("Size", 13, X)
    assert got.dtype == np.int64 and got.shape == () and got == 24


def test_constant_of_shape() -> None:
    shape = np.array([2, 3], np.int64)
    got = ours("ConstantOfShape", 9, shape)
    assert got.dtype == np.float32 and got.shape == (2, 3) and not got.any()
    got = ours("ConstantOfShape", 9, shape, value=np.array([7], np.int32))
    assert got.dtype == np.int32 and (got == 7).all()
    assert ours("ConstantOfShape", 9, np.zeros(0, np.int64)).shape == ()


@pytest.mark.parametrize("start, limit, delta, dtype", [(0, 10, 3, np.int64), (10, 4, -2, np.int32),
                                                         (1.0, 2.0, 0.3, np.float32), (5, 1, 1, np.int64),
                                                         (-1.5, 1.0, 0.5, np.float64)])
def test_range(start, limit, delta, dtype) -> None:
    args = [np.array(v, dtype) for v in (start, limit, delta)]
    got = ours("Range", 11, *args)
    assert_close(got, run_ort("Range", args, {}, 11)[0])


def test_constant_attributes() -> None:
    tensor = np.array([[1, 2]], np.int8)
    assert_close(ours("Constant", 13, value=tensor), tensor)
    assert_close(ours("Constant", 13, value_float=1.5), np.array(1.5, np.float32))
    assert_close(ours("Constant", 13, value_floats=[1.0, 2.0]), np.array([1, 2], np.float32))
    assert_close(ours("Constant", 13, value_int=3), np.array(3, np.int64))
    assert_close(ours("Constant", 13, value_ints=[3, 4]), np.array([3, 4], np.int64))
    assert ours("Constant", 13, value_strings=["a", "b"]).tolist() == ["a", "b"]
    with pytest.raises(ModelError, match="exactly one"):
        ours("Constant", 13, value_int=1, value_float=2.0)
    with pytest.raises(UnsupportedOpError, match="sparse_value"):
        ours("Constant", 13, sparse_value=object())


def test_identity_copies() -> None:
    got = ours("Identity", 16, X)
    assert_close(got, X)
    assert got is not X


def test_dropout_inference() -> None:
    y, mask = ours("Dropout", 13, X, np.array(0.5, np.float32))
    assert_close(y, X)
    assert mask.dtype == np.bool_ and mask.all()
    y, mask = ours("Dropout", 13, X, np.array(0.0, np.float32), np.array(True))
    assert_close(y, X)
    y, _ = ours("Dropout", 10, X, ratio=0.3)
    assert_close(y, X)
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        ours("Dropout", 13, X, np.array(0.5, np.float32), np.array(True))


@pytest.mark.parametrize("shape", [[2, 3, 4], [3, 1], [1, 1, 1, 1], [2, 1, 3, 4], [4]])
def test_expand_bidirectional(shape) -> None:
    x = np.arange(3, dtype=np.float32).reshape(3, 1)
    s = np.array(shape, np.int64)
    assert_close(ours("Expand", 13, x, s), run_ort("Expand", [x, s], {}, 13)[0])


def test_expand_incompatible() -> None:
    with pytest.raises(ModelError, match="Expand"):
        ours("Expand", 13, np.ones((3,), np.float32), np.array([2], np.int64))


def test_tile() -> None:
    reps = np.array([2, 1, 3], np.int64)
    assert_close(ours("Tile", 13, X, reps), run_ort("Tile", [X, reps], {}, 13)[0])
    with pytest.raises(ModelError, match="Tile: repeats has 2"):
        ours("Tile", 13, X, np.array([1, 1], np.int64))


@pytest.mark.parametrize("k", [0, 1, -2, 5])
@pytest.mark.parametrize("dtype", [None, TensorProto.INT32, TensorProto.DOUBLE])
def test_eye_like(k, dtype) -> None:
    x = np.zeros((3, 4), np.float32)
    attrs = {"k": k, **({} if dtype is None else {"dtype": dtype})}
    out_type = {None: np.float32, TensorProto.INT32: np.int32, TensorProto.DOUBLE: np.float64}[dtype]
    want = run_ort("EyeLike", [x], attrs, 9, out_types=[out_type])[0]
    assert_close(ours("EyeLike", 9, x, **attrs), want)
