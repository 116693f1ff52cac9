"""The onnxruntime-shaped API: inputs/outputs, metadata, feed checks, sources, converted files, dynamic shapes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import clmace
from clmace.core.errors import ModelError, UnsupportedOpError
from tests.onnx_build import assert_close, make_model, ort_run

rng = np.random.default_rng(1)


@pytest.fixture()
def mlp() -> onnx.ModelProto:
    """A Gemm+Relu+Softmax model with a dynamic batch dimension."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    inits = [("w", rng.standard_normal((5, 4)).astype(np.float32)), ("b", rng.standard_normal(5).astype(np.float32))]
    model = make_model(nodes, [("x", ["batch", 4])], [("y", ["batch", 5])], inits)
    model.producer_name = "unit-test"
    model.metadata_props.add(key="author", value="clmace")
    return model


def test_inputs_outputs_and_meta(mlp):
    """get_inputs/get_outputs/get_modelmeta look like onnxruntime's."""
    sess = clmace.InferenceSession(mlp)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("x", ["batch", 4], "tensor(float)")
    assert (out.name, out.type) == ("y", "tensor(float)")
    meta = sess.get_modelmeta()
    assert meta.producer_name == "unit-test" and meta.custom_metadata_map == {"author": "clmace"}
    assert sess.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("source", ["proto", "bytes", "path"])
def test_sources_and_dynamic_batch(mlp, source, tmp_path):
    """Path, bytes and ModelProto load alike; a new batch size just runs."""
    path = tmp_path / "m.onnx"
    onnx.save(mlp, path)
    model = {"proto": mlp, "bytes": mlp.SerializeToString(), "path": str(path)}[source]
    sess = clmace.InferenceSession(model, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        (got,) = sess.run(None, {"x": x})
        assert_close(got, ort_run(mlp, {"x": x})[0])


def test_external_data(tmp_path):
    """Weights stored as ONNX external data are found beside the model."""
    w = rng.standard_normal((64, 64)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [2, 64])], [("y", [2, 64])],
                       [("w", w)])
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    assert (tmp_path / "ext.bin").exists()
    x = rng.standard_normal((2, 64)).astype(np.float32)
    (got,) = clmace.InferenceSession(str(tmp_path / "ext.onnx")).run(None, {"x": x})
    assert_close(got, x @ w)


def test_converted_file_roundtrip(mlp, tmp_path):
    """clmace.convert writes a file that loads into a session with identical outputs."""
    out = tmp_path / "m.clmace"
    report = clmace.convert(mlp, out)
    assert report["nodes_after"] <= report["nodes_before"]
    x = rng.standard_normal((2, 4)).astype(np.float32)
    want = clmace.InferenceSession(mlp).run(None, {"x": x})
    for model in (str(out), out.read_bytes()):
        got = clmace.InferenceSession(model).run(["y"], {"x": x})
        np.testing.assert_array_equal(got[0], want[0])


def test_corrupt_converted_file(mlp, tmp_path):
    """A flipped weight byte is caught by the SHA-256 and named."""
    out = tmp_path / "m.clmace"
    clmace.convert(mlp, out)
    data = bytearray(out.read_bytes())
    data[-3] ^= 0xFF
    out.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        clmace.InferenceSession(str(out))


@pytest.mark.parametrize("feeds,match", [
    ({}, "missing input 'x'"),
    ({"x": np.zeros((1, 4), np.float32), "z": np.zeros(1)}, "unknown input name"),
    ({"x": np.zeros((1, 4), np.float64)}, "input 'x': expected dtype tensor\\(float\\), got tensor\\(double\\)"),
    ({"x": np.zeros((4,), np.float32)}, "input 'x': expected rank 2"),
    ({"x": np.zeros((1, 5), np.float32)}, "input 'x': expected shape"),
])
def test_bad_feeds_are_value_errors(mlp, feeds, match):
    """Feeds are checked and the error names the input, expected and got."""
    with pytest.raises(ValueError, match=match):
        clmace.InferenceSession(mlp).run(None, feeds)


def test_unknown_output_name(mlp):
    """Asking for an output that does not exist names it."""
    with pytest.raises(ValueError, match="unknown output 'nope'"):
        clmace.InferenceSession(mlp).run(["nope"], {"x": np.zeros((1, 4), np.float32)})


def test_unsupported_op_named_at_creation():
    """An op without an implementation fails at session creation with node, op, opset and the list."""
    node = helper.make_node("DFT", ["x"], ["y"], name="my_dft")
    model = make_model([node], [("x", [1, 8, 1])], [("y", [1, 8, 2])])
    with pytest.raises(UnsupportedOpError, match=r"node 'my_dft': op DFT \(opset 17\) is not supported; "
                                                 r"supported ops: .*Conv"):
        clmace.InferenceSession(model)


def test_custom_domain_rejected():
    """Ops outside the default domain are refused by name."""
    node = helper.make_node("FusedGemm", ["x"], ["y"], domain="com.microsoft", name="fg")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)], ir_version=8)
    with pytest.raises(UnsupportedOpError, match="com.microsoft.FusedGemm"):
        clmace.InferenceSession(model)


def test_missing_file_and_bad_bytes(tmp_path):
    """Bad model sources are ModelErrors that say what was wrong."""
    with pytest.raises(ModelError, match="not found"):
        clmace.InferenceSession(str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        clmace.InferenceSession(b"\x08garbage")


def test_noncontiguous_readonly_and_nonfinite_feeds(mlp):
    """Non-contiguous and read-only arrays work; NaN/Inf pass through as in onnxruntime."""
    base = rng.standard_normal((4, 8)).astype(np.float32)
    strided = base[:, ::2]
    assert not strided.flags.c_contiguous
    frozen = np.array(strided)
    frozen.setflags(write=False)
    weird = np.array([[np.nan, 1, 2, 3], [np.inf, -np.inf, 0, 1]], np.float32)
    sess = clmace.InferenceSession(mlp)
    for x in (strided, frozen, weird):
        (got,) = sess.run(None, {"x": x})
        (want,) = ort_run(mlp, {"x": np.ascontiguousarray(x)})
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(sess.run(None, {"x": weird})[0][0]).all()


@pytest.mark.parametrize("device", ["cpu", "opencl"])
@pytest.mark.parametrize("declared", [-1, 0])
def test_minus_one_and_zero_dims_are_dynamic(device, declared):
    """Inputs declared with dim_value -1 or 0 (exporters' "dynamic") take any size, each new shape is
    planned and cached (bounded, least recently used dropped), and the outputs match onnxruntime."""
    if device == "opencl":
        from tests.opencl_probe import require_device

        require_device("opencl")
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    def model(dim: int) -> onnx.ModelProto:
        return make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["c"], ["y"])],
                          [("x", [dim, 3, dim, dim])], [("y", [None, 4, None, None])], [("w", w)])

    sess = clmace.InferenceSession(model(declared), device=device)
    oracle = model(-1)  # onnxruntime reads -1 as dynamic but 0 as a fixed size 0
    assert sess.get_inputs()[0].shape == [None, 3, None, None]
    shapes = [(1, 3, 8, 8), (2, 3, 5, 7)] + [(1, 3, 4, 4 + i) for i in range(clmace.session.MAX_PLANS)]
    for shape in shapes + shapes[:1]:
        x = rng.standard_normal(shape).astype(np.float32)
        (got,) = sess.run(None, {"x": x})
        assert_close(got, ort_run(oracle, {"x": x})[0])
    assert len(sess._runtimes) <= clmace.session.MAX_PLANS


def test_session_options_object(mlp):
    """A clmace.SessionOptions works as sess_options; keyword options given beside it win."""
    opts = clmace.SessionOptions(input_shapes={"x": [2, 4]}, compiled_program=False)
    sess = clmace.InferenceSession(mlp, sess_options=opts)
    assert sess.options.input_shapes == {"x": [2, 4]} and sess.device == "cpu"
    x = rng.standard_normal((2, 4)).astype(np.float32)
    assert_close(sess.run(None, {"x": x})[0], ort_run(mlp, {"x": x})[0])
    with pytest.raises(clmace.core.errors.ConfigError, match="did you mean 'precision'"):
        clmace.SessionOptions.from_kwargs(precison="fp16")
