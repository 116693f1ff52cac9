"""Conv and ConvTranspose against onnxruntime: random geometry, groups, depthwise, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clmace.core.errors import ModelError
from clmace.ops import conv
from clmace.ops.activation import relu
from tests.ops.helpers import SchemaBound, check_against, run_ort, run_ref

rng = np.random.default_rng(0)


conv_ops = SchemaBound(conv)

def _rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def conv_cases(draw: st.DrawFn, rank: int = 2) -> tuple[list, dict]:
    """Random Conv inputs and attributes that give a non-empty output."""
    group = draw(st.sampled_from([1, 2, "depthwise"]))
    cg = 1 if group == "depthwise" else draw(st.integers(1, 3))
    groups = draw(st.integers(2, 4)) if group == "depthwise" else group
    mg = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 8)) for _ in range(rank)]
    attrs = {
        "group": groups,
        "strides": [draw(st.integers(1, 3)) for _ in range(rank)],
        "dilations": [draw(st.integers(1, 2)) for _ in range(rank)],
    }
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    else:
        attrs["auto_pad"] = auto_pad
    pads = attrs.get("pads", [0] * 2 * rank)
    for i in range(rank):
        extent = (kernel[i] - 1) * attrs["dilations"][i] + 1
        room = spatial[i] if auto_pad.startswith("SAME") else spatial[i] + pads[i] + pads[rank + i]
        assume(room >= extent)
    x = _rand(draw(st.integers(1, 2)), cg * groups, *spatial)
    w = _rand(mg * groups, cg, *kernel)
    b = _rand(mg * groups) if draw(st.booleans()) else None
    return [x, w, b], attrs


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv2d_matches_oracle(case: tuple[list, dict]) -> None:
    inputs, attrs = case
    check_against(_oracle(inputs, attrs), conv_ops.conv(*inputs, **attrs))


def _oracle(inputs: list, attrs: dict) -> list[np.ndarray]:
    # onnxruntime refuses SAME_* padding with dilation; the ONNX reference follows the spec there.
    if attrs.get("auto_pad", "").startswith("SAME") and max(attrs["dilations"]) > 1:
        return run_ref("Conv", inputs, attrs, 17)
    return run_ort("Conv", inputs, attrs, 17)


@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_conv_1d_3d_match_oracle(rank: int, data: st.DataObject) -> None:
    inputs, attrs = data.draw(conv_cases(rank))
    check_against(_oracle(inputs, attrs), conv_ops.conv(*inputs, **attrs))


def test_depthwise_multiplier_and_fp16() -> None:
    x, w = _rand(1, 4, 9, 9), _rand(8, 1, 3, 3)
    attrs = {"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}
    check_against(run_ort("Conv", [x, w], attrs, 17), conv_ops.conv(x, w, **attrs))
    x16, w16 = x.astype(np.float16), w.astype(np.float16)
    got = conv_ops.conv(x16, w16, **attrs)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, conv_ops.conv(x, w, **attrs), rtol=1e-2, atol=1e-2)


def test_fused_activation() -> None:
    x, w, b = _rand(1, 3, 6, 6), _rand(4, 3, 3, 3), _rand(4)
    plain = conv_ops.conv(x, w, b)
    np.testing.assert_array_equal(conv_ops.conv(x, w, b, activation="Relu"), relu(plain))
    clipped = conv_ops.conv(x, w, b, activation="Clip", activation_params=(0.0, 6.0))
    np.testing.assert_allclose(clipped, np.clip(plain, 0, 6))
    y = conv_ops.conv_transpose(x, _rand(3, 2, 2, 2), activation="Relu")
    assert y.min() >= 0


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> tuple[list, dict]:
    """Random ConvTranspose inputs and attributes (pads, output_padding, output_shape, auto_pad)."""
    rank = 2
    group = draw(st.integers(1, 2))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 5)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    attrs: dict = {"group": group, "strides": strides, "dilations": dilations}
    how = draw(st.sampled_from(["pads", "output_shape", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    full = [s * (i - 1) + (k - 1) * d + 1 for i, s, k, d in zip(spatial, strides, kernel, dilations, strict=True)]
    if how == "pads":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
        # ONNX allows output_padding below stride or dilation; onnxruntime only below stride.
        attrs["output_padding"] = [draw(st.integers(0, s - 1)) for s in strides]
        for i in range(rank):
            assume(full[i] + attrs["output_padding"][i] - attrs["pads"][i] - attrs["pads"][rank + i] > 0)
    elif how == "output_shape":
        attrs["output_shape"] = [f - draw(st.integers(0, 2)) for f in full]
        assume(min(attrs["output_shape"]) > 0)
    else:
        attrs["auto_pad"] = how
    x = _rand(draw(st.integers(1, 2)), cg * group, *spatial)
    w = _rand(cg * group, mg, *kernel)
    b = _rand(mg * group) if draw(st.booleans()) else None
    return [x, w, b], attrs


def _ct_oracle(inputs: list, attrs: dict) -> list[np.ndarray]:
    # Where the padding the spec asks for is negative (SAME with a kernel narrower than the stride, or an
    # output_shape past the full result), onnxruntime clamps or refuses; the ONNX reference follows the spec.
    x, w = inputs[0], inputs[1]
    full = [s * (i - 1) + (k - 1) * d + 1 for i, s, k, d in
            zip(x.shape[2:], attrs["strides"], w.shape[2:], attrs["dilations"], strict=True)]
    wanted = attrs.get("output_shape")
    if attrs.get("auto_pad", "").startswith("SAME"):
        wanted = [i * s for i, s in zip(x.shape[2:], attrs["strides"], strict=True)]
    if wanted is None or all(o <= f for o, f in zip(wanted, full, strict=True)):
        return run_ort("ConvTranspose", inputs, attrs, 17)
    # The reference mishandles group > 1 there, so run it one group at a time.
    group, b = attrs["group"], inputs[2]
    cg, mg = x.shape[1] // group, w.shape[1]
    parts = []
    for g in range(group):
        part = [x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg], None if b is None else b[g * mg:(g + 1) * mg]]
        parts.append(run_ref("ConvTranspose", part, {**attrs, "group": 1}, 17)[0])
    return [np.concatenate(parts, axis=1)]


@settings(max_examples=40, deadline=None)
@given(conv_transpose_cases())
def test_conv_transpose_matches_oracle(case: tuple[list, dict]) -> None:
    inputs, attrs = case
    check_against(_ct_oracle(inputs, attrs), conv_ops.conv_transpose(*inputs, **attrs))


def test_conv_transpose_1d_3d() -> None:
    x, w = _rand(1, 2, 4), _rand(2, 3, 3)
    check_against(run_ort("ConvTranspose", [x, w], {"strides": [2]}, 17),
                  conv_ops.conv_transpose(x, w, strides=[2]))
    x, w = _rand(1, 2, 3, 3, 3), _rand(2, 2, 2, 2, 2)
    attrs = {"strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 0]}
    check_against(run_ort("ConvTranspose", [x, w], attrs, 17), conv_ops.conv_transpose(x, w, **attrs))


@pytest.mark.parametrize(("args", "attrs", "message"), [
    ((_rand(1, 3, 5, 5), _rand(4, 1, 3, 3)), {"group": 2}, "input channels 3 / group 2"),
    ((_rand(1, 4, 5, 5), _rand(4, 3, 3, 3)), {}, "weight shape"),
    ((_rand(1, 3, 2, 2), _rand(4, 3, 3, 3)), {}, "larger than padded input"),
    ((_rand(1, 3, 5, 5), _rand(4, 3, 3, 3)), {"strides": [1]}, "strides has 1 values, expected 2"),
    ((_rand(1, 3, 5, 5), _rand(4, 3, 3, 3)), {"auto_pad": "SAME"}, "auto_pad 'SAME'"),
])
def test_conv_errors(args: tuple, attrs: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        conv_ops.conv(*args, **attrs)


def test_conv_transpose_errors() -> None:
    with pytest.raises(ModelError, match="ConvTranspose: weight shape"):
        conv_ops.conv_transpose(_rand(1, 3, 4, 4), _rand(2, 2, 3, 3))


def test_table() -> None:
    assert conv.OPS == {"Conv": conv.conv, "ConvTranspose": conv.conv_transpose}
