"""Pools against onnxruntime: Max (with Indices), Average, Lp and the Global forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clmace.core.errors import ModelError
from clmace.ops import pool as pool_module
from tests.ops.helpers import SchemaBound, check_against, run_ort

rng = np.random.default_rng(0)


pool = SchemaBound(pool_module)

@st.composite
def pool_cases(draw: st.DrawFn, rank: int = 2, dilate: bool = True) -> tuple[np.ndarray, dict]:
    """Random input and window attributes for a pool with a non-empty output."""
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 8)) for _ in range(rank)]
    attrs: dict = {"kernel_shape": kernel, "strides": [draw(st.integers(1, 3)) for _ in range(rank)]}
    attrs["dilations"] = [draw(st.integers(1, 2)) if dilate else 1 for _ in range(rank)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        # onnxruntime wants each pad smaller than the kernel.
        attrs["pads"] = [draw(st.integers(0, kernel[i % rank] - 1)) for i in range(2 * rank)]
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    else:
        attrs["auto_pad"] = auto_pad
        # onnxruntime's SAME padding ignores dilation (the spec counts it), so keep them apart.
        attrs["dilations"] = [1] * rank
    pads = attrs.get("pads", [0] * 2 * rank)
    for i in range(rank):
        extent = (kernel[i] - 1) * attrs["dilations"][i] + 1
        if auto_pad.startswith("SAME"):
            # A SAME pad that would be negative (stride beyond the kernel) is undefined: onnxruntime's
            # MaxPool and the ONNX reference refuse it, its AveragePool shifts windows; we clamp it at 0.
            stride = attrs["strides"][i]
            assume((-(-spatial[i] // stride) - 1) * stride + extent >= spatial[i])
        else:
            assume(spatial[i] + pads[i] + pads[rank + i] >= extent)
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)).astype(np.float32)
    return x, attrs


def _skip_all_padding_windows(y: np.ndarray) -> None:
    # A window lying wholly in padding (dilation past the pads) gets the lowest float, as in onnxruntime,
    # but its Indices there are onnxruntime's sentinel arithmetic (-1 per axis summed); not worth copying.
    assume(bool(np.all(y > np.finfo(y.dtype).min)))


@settings(max_examples=40, deadline=None)
@given(pool_cases())
def test_max_pool_matches_ort(case: tuple[np.ndarray, dict]) -> None:
    x, attrs = case
    want = run_ort("MaxPool", [x], attrs, 12, n_outputs=2, out_types=[np.float32, np.int64])
    _skip_all_padding_windows(want[0])
    check_against(want, pool.max_pool(x, **attrs))


@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_max_pool_1d_3d(rank: int, data: st.DataObject) -> None:
    x, attrs = data.draw(pool_cases(rank))
    want = run_ort("MaxPool", [x], attrs, 12, n_outputs=2, out_types=[np.float32, np.int64])
    _skip_all_padding_windows(want[0])
    check_against(want, pool.max_pool(x, **attrs))


def test_max_pool_storage_order_and_int8() -> None:
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    attrs = {"kernel_shape": [2, 3], "strides": [2, 1], "storage_order": 1, "pads": [1, 0, 0, 1]}
    want = run_ort("MaxPool", [x], attrs, 12, n_outputs=2, out_types=[np.float32, np.int64])
    check_against(want, pool.max_pool(x, **attrs))
    xi = rng.integers(-128, 127, (1, 2, 5, 5)).astype(np.int8)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    check_against(run_ort("MaxPool", [xi], attrs, 12), pool.max_pool(xi, **attrs)[0])


@settings(max_examples=40, deadline=None)
@given(pool_cases(), st.integers(0, 1))
def test_average_pool_matches_ort(case: tuple[np.ndarray, dict], count_include_pad: int) -> None:
    x, attrs = case
    attrs = {**attrs, "count_include_pad": count_include_pad}
    check_against(run_ort("AveragePool", [x], attrs, 19), pool.average_pool(x, **attrs))


@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_average_pool_1d_3d(rank: int, data: st.DataObject) -> None:
    x, attrs = data.draw(pool_cases(rank))
    attrs["count_include_pad"] = data.draw(st.integers(0, 1))
    check_against(run_ort("AveragePool", [x], attrs, 19), pool.average_pool(x, **attrs))


@settings(max_examples=25, deadline=None)
@given(pool_cases(), st.sampled_from([1, 2, 3]))
def test_lp_pool_matches_ort(case: tuple[np.ndarray, dict], p: int) -> None:
    x, attrs = case
    attrs = {**attrs, "p": p}
    check_against(run_ort("LpPool", [x], attrs, 18), pool.lp_pool(x, **attrs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 7), (1, 2, 3, 4, 2)])
def test_global_pools_match_ort(shape: tuple[int, ...]) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    check_against(run_ort("GlobalAveragePool", [x], {}, 17), pool.global_average_pool(x))
    check_against(run_ort("GlobalMaxPool", [x], {}, 17), pool.global_max_pool(x))
    for p in (1, 2, 3):
        check_against(run_ort("GlobalLpPool", [x], {"p": p}, 17), pool.global_lp_pool(x, p=p))


def test_float16_keeps_dtype() -> None:
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float16)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    assert pool.max_pool(x, **attrs)[0].dtype == np.float16
    got = pool.average_pool(x, **attrs)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, run_ort("AveragePool", [x], attrs, 19)[0], rtol=1e-2, atol=1e-3)
    assert pool.global_average_pool(x).dtype == np.float16


@pytest.mark.parametrize(("attrs", "message"), [
    ({}, "kernel_shape is required"),
    ({"kernel_shape": [9, 9]}, "larger than padded input"),
    ({"kernel_shape": [2, 2], "pads": [1, 1]}, "pads has 2 values, expected 4"),
    ({"kernel_shape": [2, 2], "auto_pad": "bogus"}, "auto_pad 'bogus'"),
])
def test_pool_errors(attrs: dict, message: str) -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ModelError, match=message):
        pool.max_pool(x, **attrs)
    with pytest.raises(ModelError, match="GlobalAveragePool: input rank 2"):
        pool.global_average_pool(np.zeros((2, 2), np.float32))
