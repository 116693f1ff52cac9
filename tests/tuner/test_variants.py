"""Every kernel variant of every tunable family computes what the NumPy runtime computes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.opencl.conftest import compare, make_model, runtime_of
from tests.opencl.test_conv import conv_model

POINTWISE = ["px16_cb16", "px16_cb8", "px8_cb16", "px8_cb8", "px4_cb8", "pix_cb4", "pix_cb8", "tiled_64x64",
             "tiled_32x64", "tiled_32x32", "tiled_16x16"]
DEPTHWISE = ["rows_auto", "rows_1", "rows_4", "pix1", "pix2", "pix4"]
GENERAL = ["direct_8x8", "pix_cb4", "pix_cb8", "tiled_64x64", "tiled_32x64", "tiled_32x32", "tiled_16x16"]
GEMM = ["r4", "r1", "col1", "col4", "tiled_64x64", "tiled_32x64", "tiled_32x32", "tiled_16x16", "ksplit8",
        "ksplit16"]
MATMUL = ["4x4", "2x2", "1x4", "1x1"]


def _check(model, family: str, variant: str, **options) -> None:
    sess = compare(model, variants={family: variant}, **options)
    assert {s.variant for s in runtime_of(sess).plan.steps if s.spec and s.spec.family == family} == {variant}


@pytest.mark.parametrize("variant", POINTWISE)
def test_pointwise(variant: str) -> None:
    """Odd channel counts, pixel tails, batch 2 and a 1x1 image."""
    for n, c, h, w, cout in [(1, 5, 7, 9, 20), (2, 16, 8, 8, 40), (1, 3, 1, 1, 4), (1, 70, 3, 5, 3)]:
        _check(conv_model(n, c, h, w, cout, (1, 1), act="Clip"), "conv1x1", variant)


@pytest.mark.parametrize("variant", DEPTHWISE)
def test_depthwise(variant: str) -> None:
    """Strides, dilation, asymmetric pads, channel multipliers, a 1x1 image."""
    for c, mult, h, w, k, s, d, pads in [(3, 1, 9, 13, 3, 1, 1, (1, 1, 1, 1)), (5, 2, 17, 33, 3, 2, 1, (1, 0, 1, 2)),
                                         (4, 1, 7, 7, 5, 1, 2, (2, 2, 2, 2)), (2, 1, 1, 1, 3, 1, 1, (1, 1, 1, 1))]:
        _check(conv_model(2, c, h, w, c * mult, (k, k), (s, s), (d, d), pads, group=c, act="Relu"), "conv_dw", variant)


@pytest.mark.parametrize("variant", GENERAL)
def test_general(variant: str) -> None:
    """A strided stem, a grouped dilated conv, a strided 1x1 conv with many outputs."""
    for args in [dict(n=1, c=3, h=32, w=32, cout=16, k=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), act="Clip"),
                 dict(n=2, c=6, h=11, w=9, cout=9, k=(2, 3), stride=(1, 2), dil=(2, 1), pads=(0, 1, 2, 0), group=3),
                 dict(n=1, c=4, h=5, w=5, cout=70, k=(1, 1), stride=(2, 2))]:
        _check(conv_model(**args), "conv_general", variant)


@pytest.mark.parametrize("family,variant", [("conv1x1", v) for v in ("pix_cb4", "tiled_32x32")]
                         + [("conv_general", v) for v in ("pix_cb8", "tiled_16x16")] + [("conv_dw", "pix2")])
def test_residual_epilogue(family: str, variant: str) -> None:
    """Conv + Relu + residual Add fused into one launch of each GPU-shaped variant."""
    rng = np.random.default_rng(0)
    k, group = (1, 1) if family == "conv1x1" else (3, 8 if family == "conv_dw" else 1)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4, group=group),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
    inits = [("w", rng.standard_normal((8, 8 // group, k, k)).astype(np.float32)),
             ("b", rng.standard_normal(8).astype(np.float32))]
    sess = compare(make_model(nodes, [("x", [1, 8, 10, 12])], ["y"], inits), variants={family: variant})
    assert any(e.residual for e in runtime_of(sess).plan.epilogues.values())


@pytest.mark.parametrize("variant", GEMM)
def test_gemm(variant: str) -> None:
    """Transposes, alpha/beta, bias shapes, a run-time C."""
    rng = np.random.default_rng(0)
    for m, k, n, ta, tb, cshape in [(1, 40, 37, 0, 0, "n"), (9, 17, 70, 1, 1, "mn"), (70, 33, 5, 0, 1, "m1")]:
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c = rng.standard_normal({"n": (n,), "mn": (m, n), "m1": (m, 1)}[cshape]).astype(np.float32)
        node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=ta, transB=tb, alpha=0.5, beta=2.0)
        _check(make_model([node], [("a", [k, m] if ta else [m, k])], ["y"], [("b", b), ("c", c)]), "gemm", variant)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=0.5)
    b = rng.standard_normal((7, 20)).astype(np.float32)
    model = make_model([node], [("a", [5, 7]), ("c", [5, 1])], ["y"], [("b", b)])
    _check(model, "gemm", variant)


@pytest.mark.parametrize("variant", MATMUL)
def test_matmul(variant: str) -> None:
    """Batched and broadcast MatMul with both operands computed at run time."""
    for ashape, bshape in [((2, 3, 5, 7), (2, 3, 7, 9)), ((5, 7), (3, 7, 4)), ((7,), (7, 3))]:
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        _check(make_model([node], [("a", list(ashape)), ("b", list(bshape))], ["y"]), "matmul", variant)


@pytest.mark.parametrize("family,variant", [("conv1x1", "tiled_32x32"), ("conv_dw", "pix4"), ("gemm", "col1"),
                                            ("gemm", "ksplit16")])
def test_half_storage(family: str, variant: str) -> None:
    """fp16 storage (vload_half/vstore_half) through the GPU-shaped variants."""
    models = {"conv1x1": conv_model(1, 16, 9, 9, 20, (1, 1)),
              "conv_dw": conv_model(1, 4, 9, 9, 4, (3, 3), group=4, pads=(1, 1, 1, 1)),
              "gemm": make_model([helper.make_node("Gemm", ["a", "b"], ["y"])], [("a", [5, 37])], ["y"],
                                 [("b", np.random.default_rng(0).standard_normal((37, 20)).astype(np.float32))])}
    _check(models[family], family, variant, precision="fp16", fp16_without_extension=True, rtol=2e-2, atol=3e-2)
