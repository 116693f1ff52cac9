"""Data-movement ops (Concat, Split, Slice, Transpose, Pad, ...) against onnxruntime and onnx.reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from clmace.core.errors import ModelError
from tests.ops.helpers import assert_close, ours, run_ort, run_ref

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)



@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis) -> None:
    parts = [X, X * 2, np.take(X, [], axis=axis)]  # an empty input is legal
    assert_close(ours("Concat", 13, *parts, axis=axis), run_ort("Concat", parts, {"axis": axis}, 13)[0])


@pytest.mark.parametrize("opset, attrs, split, n", [
    (11, {"axis": 2, "split": [1, 3]}, None, 2),
    (13, {"axis": 1}, [2, 1], 2),
    (18, {"axis": 2, "num_outputs": 3}, None, 3),  # 4 -> 2, 2, 0 as onnx.reference (onnxruntime refuses)
    (18, {"axis": 1, "num_outputs": 2}, None, 2),  # uneven: 3 -> 2, 1
    (13, {"axis": -1, "num_outputs": 2}, None, 2),  # the runtime supplies the output count
])
def test_split(opset, attrs, split, n) -> None:
    inputs = [X] if split is None else [X, np.array(split, np.int64)]
    got = ours("Split", opset, *inputs, **attrs)
    ref_attrs = attrs if opset >= 18 else {k: v for k, v in attrs.items() if k != "num_outputs"}
    want = run_ref("Split", inputs, ref_attrs, opset, n_outputs=n)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w)


def test_split_errors() -> None:
    with pytest.raises(ModelError, match="sum to dim 3"):
        ours("Split", 13, X, np.array([1, 1], np.int64), axis=1)
    with pytest.raises(ModelError, match="num_outputs"):
        ours("Split", 13, X)


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=5), data=st.data())
def test_slice_matches_onnxruntime(shape, data) -> None:
    rank = len(shape)
    n = data.draw(st.integers(1, rank))
    axes = data.draw(st.permutations(range(rank)))[:n]
    bound = st.one_of(st.integers(-7, 7), st.sampled_from([2**62, -(2**62)]))  # INT_MAX-style clamps
    starts = data.draw(st.lists(bound, min_size=n, max_size=n))
    ends = data.draw(st.lists(bound, min_size=n, max_size=n))
    steps = data.draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=n, max_size=n))
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    args = [x] + [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    assert_close(ours("Slice", 13, *args), run_ort("Slice", args, {}, 13)[0])


def test_slice_omitted_axes_and_steps_and_opset1() -> None:
    starts, ends = np.array([0, 1], np.int64), np.array([1, 100], np.int64)
    assert_close(ours("Slice", 13, X, starts, ends), X[0:1, 1:])
    assert_close(ours("Slice", 1, X, starts=[1], ends=[3], axes=[2]), X[:, :, 1:3])


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=5, max_side=3), data=st.data())
def test_transpose(shape, data) -> None:
    perm = data.draw(st.permutations(range(len(shape))))
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    assert_close(ours("Transpose", 13, x, perm=perm), run_ort("Transpose", [x], {"perm": perm}, 13)[0])
    assert_close(ours("Transpose", 13, x), x.T)


def test_transpose_bad_perm() -> None:
    with pytest.raises(ModelError, match="Transpose: perm"):
        ours("Transpose", 13, X, perm=[0, 0, 1])


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4), data=st.data(),
       mode=st.sampled_from(["constant", "reflect", "edge", "wrap"]))
def test_pad(shape, data, mode) -> None:
    # reflect needs pads < dim; wrap needs pads <= dim; crops (negative pads) keep at least 1 element
    lo = -1 if mode == "constant" else 0
    before = [data.draw(st.integers(lo, d - 1)) for d in shape]
    after = [data.draw(st.integers(lo, d - 1)) for d in shape]
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    pads = np.array(before + after, np.int64)
    args = [x, pads] + ([np.array(2.5, np.float32)] if mode == "constant" else [])
    want = run_ort("Pad", args, {"mode": mode}, 19)[0]  # onnx.reference cannot crop
    assert_close(ours("Pad", 19, *args, mode=mode), want)


def test_pad_axes_input_and_opset2_attributes() -> None:
    pads, axes = np.array([1, 2], np.int64), np.array([-1], np.int64)
    args = [X, pads, np.array(0, np.float32), axes]
    assert_close(ours("Pad", 18, *args), run_ref("Pad", args, {}, 18)[0])
    got = ours("Pad", 2, X, pads=[0, 0, 1, 0, 0, 1], value=-1.0)
    assert_close(got, np.pad(X, [(0, 0), (0, 0), (1, 1)], constant_values=-1))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space_round_trip(mode) -> None:
    x = np.arange(2 * 8 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 3)
    attrs = {"blocksize": 2, "mode": mode}
    d2s = ours("DepthToSpace", 13, x, **attrs)
    assert_close(d2s, run_ort("DepthToSpace", [x], attrs, 13)[0])
    assert_close(ours("SpaceToDepth", 28, d2s, **attrs), x)  # opset 28 added mode to SpaceToDepth
    if mode == "DCR":
        assert_close(ours("SpaceToDepth", 13, d2s, blocksize=2), x)


def test_space_to_depth_matches_onnxruntime() -> None:
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    assert_close(ours("SpaceToDepth", 13, x, blocksize=2), run_ort("SpaceToDepth", [x], {"blocksize": 2}, 13)[0])


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -1, 0, 2, 9])
def test_trilu(upper, k) -> None:
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    args = [x] if k is None else [x, np.array(k, np.int64)]
    assert_close(ours("Trilu", 14, *args, upper=upper), run_ort("Trilu", args, {"upper": upper}, 14)[0])


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis) -> None:
    cond = np.array([True, False, True][: 2 if axis == 0 else 3])  # may be shorter than the axis
    attrs = {} if axis is None else {"axis": axis}
    assert_close(ours("Compress", 11, X, cond, **attrs), run_ort("Compress", [X, cond], attrs, 11)[0])


def test_reverse_sequence() -> None:
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    lens = np.array([4, 3, 2, 1], np.int64)
    for b, t in ((1, 0), (0, 1)):
        attrs = {"batch_axis": b, "time_axis": t}
        want = run_ort("ReverseSequence", [x, lens], attrs, 10)[0]
        assert_close(ours("ReverseSequence", 10, x, lens, **attrs), want)


def test_non_zero() -> None:
    x = np.array([[1, 0, 3], [0, 0, 2]], np.float32)
    got = ours("NonZero", 13, x)
    assert got.dtype == np.int64
    assert_close(got, run_ort("NonZero", [x], {}, 13, out_types=[np.int64])[0])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis) -> None:
    idx = np.array([[0, 2], [-1, 7]], np.int64)  # -1 counts from depth; 7 is out of range: all off
    depth, values = np.array(4, np.int64), np.array([0.5, 3.0], np.float32)
    want = run_ort("OneHot", [idx, depth, values], {"axis": axis}, 11, out_types=[np.float32])[0]
    assert_close(ours("OneHot", 11, idx, depth, values, axis=axis), want)


@pytest.mark.parametrize("sorted_, axis", [(1, None), (0, None), (1, 0), (0, 1)])
def test_unique(sorted_, axis) -> None:
    x = np.array([[2, 1, 1], [3, 4, 3], [2, 1, 1]], np.float32)
    attrs = {"sorted": sorted_, **({} if axis is None else {"axis": axis})}
    want = run_ort("Unique", [x], attrs, 11, n_outputs=4, out_types=[np.float32] + [np.int64] * 3)
    got = ours("Unique", 11, x, **attrs)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w)
