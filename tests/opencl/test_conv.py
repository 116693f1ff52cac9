"""Conv / ConvTranspose kernels against the NumPy runtime: pointwise, depthwise, grouped, general."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from clmace import InferenceSession
from tests.opencl.conftest import compare, make_model, runtime_of

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


def conv_model(n, c, h, w, cout, k, stride=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0), group=1, bias=True,
               act=None, seed=0):
    """x -> Conv (-> activation node) -> y, weights random."""
    rng = np.random.default_rng(seed)
    kh, kw = k
    inits = [("w", rng.standard_normal((cout, c // group, kh, kw)).astype(np.float32) * 0.3)]
    inputs = ["x", "w"]
    if bias:
        inits.append(("b", rng.standard_normal(cout).astype(np.float32)))
        inputs.append("b")
    nodes = [helper.make_node("Conv", inputs, ["c" if act else "y"], strides=list(stride), dilations=list(dil),
                              pads=list(pads), group=group, kernel_shape=[kh, kw])]
    if act == "Clip":
        inits += [("lo", np.array(0.0, np.float32)), ("hi", np.array(6.0, np.float32))]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    return make_model(nodes, [("x", [n, c, h, w])], [("y", None)], inits)


ACTS = st.sampled_from([None, "Relu", "Clip", "Sigmoid", "HardSwish", "Tanh", "LeakyRelu"])


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 20), cout=st.integers(1, 40), h=st.integers(1, 19),
       w=st.integers(1, 37), act=ACTS, bias=st.booleans())
def test_pointwise(n, c, cout, h, w, act, bias) -> None:
    """1x1 stride-1 convolutions: odd channel counts, pixel tails, batch > 1, fused activations."""
    compare(conv_model(n, c, h, w, cout, (1, 1), bias=bias, act=act))


@SETTINGS
@given(c=st.integers(1, 24), mult=st.integers(1, 2), h=st.integers(1, 30), w=st.integers(1, 40),
       k=st.sampled_from([1, 3, 5]), s=st.integers(1, 3), d=st.integers(1, 2),
       pads=st.tuples(*[st.integers(0, 2)] * 4), act=ACTS)
def test_depthwise(c, mult, h, w, k, s, d, pads, act) -> None:
    """Depthwise convolutions with every stride, dilation and (asymmetric) padding."""
    if (h + pads[0] + pads[2] - (k - 1) * d - 1) < 0 or (w + pads[1] + pads[3] - (k - 1) * d - 1) < 0:
        return
    compare(conv_model(2, c, h, w, c * mult, (k, k), (s, s), (d, d), pads, group=c, act=act))


@SETTINGS
@given(c=st.integers(1, 3), g=st.integers(1, 3), cout=st.integers(1, 3), h=st.integers(1, 20),
       w=st.integers(1, 40), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 3)] * 4),
       variant=st.sampled_from(["direct_8x8", "direct_16x8", "fixed_8x8", "fixed_16x4", "fixed_16x6", "fixed_16x8"]))
def test_general(c, g, cout, h, w, kh, kw, sh, sw, dh, dw, pads, variant) -> None:
    """Grouped, strided, dilated, asymmetrically padded convolutions: the run-time-window kernel (8 and 16
    pixels) and the compiled-window one (every block shape; interior and border work-items)."""
    if (h + pads[0] + pads[2] - (kh - 1) * dh - 1) < 0 or (w + pads[1] + pads[3] - (kw - 1) * dw - 1) < 0:
        return
    compare(conv_model(1, c * g, h, w, cout * g, (kh, kw), (sh, sw), (dh, dw), pads, group=g),
            variants={"conv_general": variant})


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 5, 1, 1), (1, 1, 7, 1), (1, 2, 1, 9)])
def test_tiny_images(shape) -> None:
    """1x1 images and single rows/columns through each conv kernel."""
    n, c, h, w = shape
    compare(conv_model(n, c, h, w, 4, (1, 1)))
    compare(conv_model(n, c, h, w, c, (3, 3), pads=(1, 1, 1, 1), group=c))
    compare(conv_model(n, c, h, w, 3, (3, 3), pads=(1, 1, 1, 1)))


def test_stem_and_dilated() -> None:
    """A 3x3 stride-2 stem on an image and a dilated 3x3 conv."""
    compare(conv_model(1, 3, 32, 32, 16, (3, 3), (2, 2), pads=(1, 1, 1, 1), act="Clip"))
    compare(conv_model(1, 8, 17, 23, 8, (3, 3), dil=(2, 3), pads=(2, 3, 2, 3)))


def residual_model(post_act: str | None, kind: str) -> object:
    """x -> conv -> Add(x) [-> act]: the plan fuses the Add (and act) into the conv."""
    rng = np.random.default_rng(1)
    c = 12
    k = 1 if kind == "pointwise" else 3
    group = c if kind == "depthwise" else 1
    w = rng.standard_normal((c, c // group, k, k)).astype(np.float32) * 0.2
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[k // 2] * 4, group=group),
             helper.make_node("Add", ["c", "x"], ["a" if post_act else "y"])]
    if post_act:
        nodes.append(helper.make_node(post_act, ["a"], ["y"]))
    return make_model(nodes, [("x", [1, c, 9, 11])], [("y", None)], [("w", w)])


@pytest.mark.parametrize("kind", ["pointwise", "depthwise", "general"])
@pytest.mark.parametrize("post_act", [None, "Relu"])
def test_fused_residual(kind, post_act) -> None:
    """Add (and a following activation) fused into the conv: one launch, same result."""
    sess = compare(residual_model(post_act, kind))
    rt = runtime_of(sess)
    assert len(rt.plan.steps) == 1
    assert set(rt.node_devices().values()) == {"opencl"}


@pytest.mark.parametrize("kind", ["pointwise", "depthwise", "general"])
@pytest.mark.parametrize(("first", "second", "c"), [("LeakyRelu", "Max", -0.4), (None, "Min", 0.3),
                                                    ("Relu", "Min", 0.5)])
def test_a_max_or_min_with_a_constant_applies_in_the_conv(kind, first, second, c) -> None:
    """Conv [-> activation] -> Max/Min(x, constant) (TF's floor after a leaky ReLU): the constant bound is the
    conv's activation (its second one, after a first), one launch, the values of onnxruntime."""
    import onnxruntime as ort

    rng = np.random.default_rng(2)
    ch, k = 8, 1 if kind == "pointwise" else 3
    group = ch if kind == "depthwise" else 1
    w = rng.standard_normal((ch, ch // group, k, k)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[k // 2] * 4, group=group)]
    if first:
        nodes.append(helper.make_node(first, ["a"], ["b"], **({"alpha": 0.2} if first == "LeakyRelu" else {})))
    nodes.append(helper.make_node(second, ["b" if first else "a", "c"], ["y"]))
    model = make_model(nodes, [("x", [1, ch, 7, 9])], [("y", None)], [("w", w), ("c", np.array(c, np.float32))])
    sess = compare(model)
    assert len(runtime_of(sess).plan.steps) == 1
    x = rng.standard_normal((1, ch, 7, 9)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert ((want == np.float32(c)).mean() > 0.05) and ((want != np.float32(c)).mean() > 0.05)  # both sides
    for device in ("cpu", "opencl"):
        got = InferenceSession(model, device=device).run(None, {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=device)


def test_pad_fused_into_conv() -> None:
    """A zero Pad on H/W before a conv becomes the conv's (asymmetric) padding."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]),
             helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2], group=6)]
    pads = np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64)
    sess = compare(make_model(nodes, [("x", [1, 6, 14, 15])], [("y", None)], [("w", w), ("pads", pads)]))
    assert len(runtime_of(sess).plan.steps) == 1


@pytest.mark.parametrize("stride,pads,out_pad,group", [(1, 0, 0, 1), (2, 1, 1, 1), (2, 0, 0, 2), (3, 2, 0, 1)])
def test_conv_transpose(stride, pads, out_pad, group) -> None:
    """ConvTranspose with strides, pads, output_padding and groups."""
    rng = np.random.default_rng(3)
    c, cout = 4, 3
    w = rng.standard_normal((c, cout, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout * group).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[stride, stride], pads=[pads] * 4,
                            output_padding=[out_pad, out_pad], group=group)
    compare(make_model([node], [("x", [2, c, 5, 6])], [("y", None)], [("w", w), ("b", b)]))


@SETTINGS
@given(c=st.integers(2, 3), g=st.integers(1, 2), cout=st.integers(1, 9), w=st.integers(1, 90), kw=st.integers(2, 40),
       sw=st.integers(1, 40), pads=st.tuples(st.integers(0, 20), st.integers(0, 20)),
       variant=st.sampled_from(["taps_4x2", "taps_4x3", "taps_8x1"]), act=st.sampled_from([None, "Relu"]))
def test_conv_along_taps(c, g, cout, w, kw, sw, pads, variant, act) -> None:
    """1-D convs with long rows of taps and large strides (STFT front ends), vectors along the taps: ragged tap
    counts, channel and pixel blocks, windows leaving the row at either end."""
    if w + pads[0] + pads[1] < kw:
        return
    rng = np.random.default_rng(kw * 100 + sw)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], strides=[sw], pads=list(pads), group=g)]
    if act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    inits = [("w", rng.standard_normal((cout * g, c, kw)).astype(np.float32)),
             ("b", rng.standard_normal(cout * g).astype(np.float32))]
    sess = compare(make_model(nodes, [("x", [2, c * g, w])], [("y", None)], inits), variants={"conv_general": variant})
    assert [s.variant for s in runtime_of(sess).plan.steps] == [variant]


@SETTINGS
@given(c=st.integers(1, 10), g=st.integers(1, 2), cout=st.integers(1, 11), h=st.integers(1, 9),
       w=st.integers(1, 21), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 2), dw=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4),
       out_pad=st.integers(0, 2), act=st.sampled_from([None, "Relu", "Sigmoid"]),
       variant=st.sampled_from(["block8", "gather"]))
def test_conv_transpose_variants(c, g, cout, h, w, kh, kw, sh, sw, dh, dw, pads, out_pad, act, variant) -> None:
    """ConvTranspose, both kernels: the CPU block (8 channels x 8 same-phase pixels, ragged rows and channel
    blocks) and the GPU gather, over strides, dilations, asymmetric pads, output_padding, groups and an
    activation fused into it."""
    oph, opw = min(out_pad, max(sh, dh) - 1), min(out_pad, max(sw, dw) - 1)  # ONNX: output_padding < stride or dilation
    oh = (h - 1) * sh + (kh - 1) * dh + 1 + oph - pads[0] - pads[2]
    ow = (w - 1) * sw + (kw - 1) * dw + 1 + opw - pads[1] - pads[3]
    if oh < 1 or ow < 1:
        return
    rng = np.random.default_rng(c * 100 + cout)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["c" if act else "y"], strides=[sh, sw],
                              dilations=[dh, dw], pads=list(pads), output_padding=[oph, opw], group=g)]
    if act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    inits = [("w", rng.standard_normal((c * g, cout, kh, kw)).astype(np.float32)),
             ("b", rng.standard_normal(cout * g).astype(np.float32))]
    sess = compare(make_model(nodes, [("x", [2, c * g, h, w])], [("y", None)], inits),
                   variants={"conv_transpose": variant})
    assert [s.variant for s in runtime_of(sess).plan.steps] == [variant]


def test_conv_transpose_absorbs_bias_and_batchnorm() -> None:
    """ConvTranspose -> Add(per-channel bias) -> BatchNormalization -> Relu (Paddle's DB head) becomes one
    launch: the bias and the BN fold into the weights, the Relu into the kernel."""
    rng = np.random.default_rng(7)
    c, cout, g = 4, 6, 2
    inits = [("w", rng.standard_normal((c, cout // g, 2, 2)).astype(np.float32)),
             ("bias", rng.standard_normal((1, cout, 1, 1)).astype(np.float32)),
             ("gamma", rng.random(cout).astype(np.float32) + 0.5),
             ("beta", rng.standard_normal(cout).astype(np.float32)),
             ("mean", rng.standard_normal(cout).astype(np.float32)),
             ("var", rng.random(cout).astype(np.float32) + 0.1)]
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2], group=g),
             helper.make_node("Add", ["t", "bias"], ["u"]),
             helper.make_node("BatchNormalization", ["u", "gamma", "beta", "mean", "var"], ["v"]),
             helper.make_node("Relu", ["v"], ["y"])]
    sess = compare(make_model(nodes, [("x", [1, c, 5, 7])], [("y", None)], inits))
    assert len(runtime_of(sess).plan.steps) == 1


@pytest.mark.parametrize(("c", "cout", "k", "stride", "dil", "pads", "group"), [
    (4, 8, 3, 1, 1, (1, 1), 1), (6, 6, 5, 2, 1, (2, 2), 6), (8, 4, 1, 1, 1, (0, 0), 1),
    (4, 8, 3, 2, 2, (2, 1), 2), (3, 5, 10, 5, 1, (0, 0), 1)])
def test_conv1d_on_the_device(c, cout, k, stride, dil, pads, group) -> None:
    """1-D Conv (speech front ends) runs as a height-1 2-D conv: every node on the device."""
    w = np.random.default_rng(3).standard_normal((cout, c // group, k)).astype(np.float32)
    b = np.random.default_rng(4).standard_normal(cout).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride], dilations=[dil], pads=list(pads),
                            group=group)
    compare(make_model([node, helper.make_node("Relu", ["y"], ["z"])], [("x", [2, c, 37])], [("z", None)],
                       [("w", w), ("b", b)]))


@pytest.mark.parametrize(("stride", "pads", "out_pad"), [(1, (0, 0), 0), (2, (1, 1), 1), (3, (0, 2), 0)])
def test_conv_transpose1d_on_the_device(stride, pads, out_pad) -> None:
    w = np.random.default_rng(5).standard_normal((4, 3, 4)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[stride], pads=list(pads),
                            output_padding=[out_pad])
    compare(make_model([node], [("x", [1, 4, 11])], [("y", None)], [("w", w)]))


@SETTINGS
@given(c=st.sampled_from([1, 64, 100, 130]), cout=st.sampled_from([32, 45, 64]), w=st.integers(8, 300),
       kw=st.sampled_from([2, 3, 5, 260]), sw=st.integers(1, 3), act=ACTS, bias=st.booleans(), pads=st.booleans())
def test_row_convs_with_many_channels_as_one_gemm(c, cout, w, kw, sw, act, bias, pads) -> None:
    """Convs over one row with cin * kw >= 256 (a speech encoder's feature extractor): on CPUs the input is
    transposed, one packed GEMM with the fused bias and activation runs on it, the result is transposed
    back; with padding (or on GPUs) the conv kernels run instead. Both match the NumPy runtime."""
    kw = min(kw, w)
    model = conv_model(1, c, 1, w, cout, (1, kw), stride=(1, sw), pads=(0, 1, 0, 1) if pads else (0, 0, 0, 0),
                       bias=bias, act=act)
    plan = runtime_of(compare(model, rtol=1e-4, atol=1e-4)).plan
    kernels = [s.kernel.function_name for s in plan.steps]
    if c * kw >= 256 and not pads and not plan.is_gpu:
        assert any(k.startswith("gemm") for k in kernels) and len(kernels) == (2 if c == 1 else 3), kernels
    else:
        assert len(kernels) == 1, kernels
