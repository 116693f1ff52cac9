"""Pooling edge cases generated against onnxruntime on both runtimes: ceil_mode, kernels longer than the
padded input, count_include_pad, dilations, auto_pad. A case onnxruntime refuses must be refused too."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper

import clmace
from clmace.core.errors import ModelError
from tests.onnx_build import assert_close, make_model, ort_run

rng = np.random.default_rng(7)


def _cases() -> list[tuple[str, dict, tuple[int, ...]]]:
    cases = []
    geometries = itertools.product((2, 3, 5, 9), (1, 2, 3), (0, 1, 2), (0, 1), (1, 2))
    for k, s, pad, ceil, dil in geometries:
        if pad >= k:  # onnxruntime's own rule (the ONNX spec has none): such pads are not compared
            continue
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad, pad, pad, pad], "ceil_mode": ceil}
        if dil > 1:
            attrs["dilations"] = [dil, dil]
        cases.append(("AveragePool", {**attrs, "count_include_pad": pad % 2}, (1, 2, 7, 6)))
        cases.append(("MaxPool", attrs, (1, 2, 7, 6)))
    for auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        for op in ("AveragePool", "MaxPool"):
            cases.append((op, {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": auto}, (1, 3, 8, 7)))
    cases.append(("AveragePool", {"kernel_shape": [1, 10], "strides": [1, 3], "pads": [0, 1, 0, 1],
                                  "ceil_mode": 1}, (1, 2, 3, 7)))  # the kernel is longer than the padded row
    # transformers' EfficientNet pooler: AvgPool2d(hidden_dim, ceil_mode=True), a 2560 kernel over 7x7 (the
    # windows must cost their overlap with the input: 62 GiB of padding and 6.5M taps per output otherwise)
    for op in ("AveragePool", "LpPool"):
        extra = {"p": 2} if op == "LpPool" else {}
        cases.append((op, {"kernel_shape": [2560, 2560], "strides": [2560, 2560], "ceil_mode": 1, **extra},
                      (1, 16, 7, 7)))
    return cases


CASES = _cases()


def _model(op: str, attrs: dict, shape: tuple[int, ...]) -> onnx.ModelProto:
    return make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", list(shape))],
                      [("y", [None] * len(shape))], opset=19)


@pytest.mark.parametrize("device", ["cpu", "opencl"])
def test_pooling_matches_onnxruntime(device: str) -> None:
    """Every generated case: the same outputs as onnxruntime, or refused where onnxruntime refuses."""
    if device == "opencl":
        from tests.opencl_probe import require_device

        require_device("opencl")
    checked = refused = 0
    for op, attrs, shape in CASES:
        model = _model(op, attrs, shape)
        x = rng.standard_normal(shape).astype(np.float32)
        try:
            want = ort_run(model, {"x": x})[0]
        except Exception:  # noqa: BLE001 - onnxruntime refuses the geometry: so must we
            with pytest.raises((ModelError, ValueError, Exception)):
                clmace.InferenceSession(model, device=device).run(None, {"x": x})
            refused += 1
            continue
        (got,) = clmace.InferenceSession(model, device=device).run(None, {"x": x})
        assert got.shape == want.shape, (op, attrs)
        assert_close(got, want)
        checked += 1
    assert checked > 100 and refused > 0
