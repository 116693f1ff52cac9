"""validate(): metrics, thresholds, inputs, wrong-model detection and per-layer comparison."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from clmace.session import InferenceSession
from clmace.workflow.validate import LAYER_COLUMNS, compare, default_threshold, validate
from tests.workflow.conftest import LAYER_OUTPUTS, run_cli


def test_passes_on_small_conv_model(models, device) -> None:
    result = validate(str(models["good"]), device)
    assert result.passed, result.render()
    (m,) = result.outputs
    assert m.name == "logits" and m.shape == [1, 10] and m.dtype == "float32"
    assert m.cosine > 0.9999 and m.sqnr_db > 60 and m.top1 == 1.0
    assert m.max_abs < 1e-3
    assert result.threshold == (0.999 if device == "cpu" else 0.995)


def test_detects_wrong_weights(models, tmp_path) -> None:
    result = validate(str(models["bad"]), "cpu", reference=str(models["good"]), layers=True,
                      csv_path=str(tmp_path / "l.csv"))
    assert not result.passed
    assert result.outputs[0].cosine < 0.999
    assert "FAIL" in result.render()


def test_cli_exit_codes(models, tmp_path) -> None:
    code, out, _ = run_cli(["validate", str(models["good"])])
    assert code == 0 and "PASS" in out
    code, out, _ = run_cli(["validate", str(models["bad"]), "--reference", str(models["good"])])
    assert code == 1 and "FAIL" in out
    code, out, _ = run_cli(["validate", str(models["good"]), "--json"])
    data = json.loads(out)  # strict JSON: infinite SQNR must not leak out as Infinity
    assert code == 0 and data["passed"] and "Infinity" not in out


def test_layers_csv_and_first_divergent_layer(models, tmp_path) -> None:
    path = tmp_path / "layers.csv"
    result = validate(str(models["bad"]), "cpu", reference=str(models["good"]), layers=True, csv_path=str(path))
    sess = InferenceSession(str(models["bad"]))
    kept = [name for name in LAYER_OUTPUTS if name in sess.graph.producers()]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == LAYER_COLUMNS
    assert [r["layer"] for r in rows] == kept  # ONNX topological order; fused Conv outputs are gone
    assert "c1" not in kept and "r1" in kept
    by_name = {r["layer"]: r for r in rows}
    assert by_name["r1"]["pass"] == "1" and by_name["r1"]["op"].startswith("Conv")
    assert by_name["r2"]["pass"] == "0"
    assert result.first_divergent == "r2"  # conv2 (fused with its Relu into r2) is the perturbed layer


def test_layers_all_pass_on_good_model(models, tmp_path) -> None:
    result = validate(str(models["good"]), "cpu", layers=True, csv_path=str(tmp_path / "l.csv"))
    assert result.passed and result.first_divergent is None
    assert result.layers and all(m.passed for m in result.layers)


def test_input_dir_and_given_inputs(models, tmp_path) -> None:
    x = np.random.default_rng(3).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    from_dir = validate(str(models["good"]), "cpu", input_dir=str(tmp_path))
    given = validate(str(models["good"]), "cpu", inputs={"x": x})
    assert from_dir.outputs[0].max_abs == given.outputs[0].max_abs
    with pytest.raises(Exception, match="no x.npy"):
        validate(str(models["good"]), "cpu", input_dir=str(tmp_path / "missing"))


def test_ranges_are_used(models) -> None:
    result = validate(str(models["good"]), "cpu", ranges={"x": (5.0, 6.0)})
    assert result.passed and result.inputs["x"]["shape"] == [1, 3, 16, 16]


def test_compare_metrics() -> None:
    a = np.array([[1.0, 2.0, 3.0]], np.float32)
    same = compare("y", a, a, 0.999)
    assert same.cosine == pytest.approx(1.0) and same.sqnr_db == float("inf") and same.max_abs == 0 and same.passed
    neg = compare("y", -a, a, 0.999)
    assert neg.cosine == pytest.approx(-1.0) and not neg.passed and neg.top1 == 0.0
    noisy = compare("y", a + np.float32(0.01), a, 0.999)
    assert 30 < noisy.sqnr_db < 60 and noisy.max_abs == pytest.approx(0.01, rel=1e-3)
    wrong_shape = compare("y", a.reshape(3, 1), a, 0.999)
    assert not wrong_shape.passed and "shape" in wrong_shape.note
    wrong_dtype = compare("y", a.astype(np.float64), a, 0.999)
    assert not wrong_dtype.passed and "dtype" in wrong_dtype.note


def test_default_thresholds() -> None:
    assert default_threshold("cpu") == 0.999
    assert default_threshold("opencl") == 0.995 and default_threshold("gpu") == 0.995
    assert default_threshold("opencl", "fp16") == 0.99
    assert default_threshold("cpu", thresholds=0.9) == 0.9
    assert default_threshold("opencl:0", thresholds={"gpu": 0.98}) == 0.98
