"""Deploy config parsing/verification and the CLI commands convert, info, run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from clmace.cli.main import main
from clmace.core.errors import ConfigError
from clmace.workflow.config import load_config, sha256_file
from tests.onnx_build import make_model

rng = np.random.default_rng(2)


@pytest.fixture()
def conv_model(tmp_path):
    """A Conv+BN+Relu model saved as ONNX (dynamic batch)."""
    c = 4
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["y"])]
    inits = [("w", rng.standard_normal((c, 3, 3, 3)).astype(np.float32)),
             ("s", np.ones(c, np.float32)), ("b", np.zeros(c, np.float32)),
             ("m", np.zeros(c, np.float32)), ("v", np.ones(c, np.float32))]
    path = tmp_path / "conv.onnx"
    onnx.save(make_model(nodes, [("x", ["n", 3, 8, 8])], [("y", ["n", c, 8, 8])], inits), path)
    return path


def _write_config(tmp_path, model_path, checksum: str) -> str:
    cfg = tmp_path / "deploy.yml"
    cfg.write_text(f"""
models:
  tiny:
    platform: onnx
    model_file_path: {model_path.name}
    model_sha256_checksum: "{checksum}"
    subgraphs:
      - input_tensors: [x]
        input_shapes: ["1,3,8,8"]
        input_ranges: ["-1,1"]
        output_tensors: [y]
        validation_threshold: {{cpu: 0.9999}}
    runtime: gpu
    data_type: fp16_fp32
""")
    return str(cfg)


def test_config_parsed_and_converted(tmp_path, conv_model, capsys):
    """A MACE-style YAML is parsed, its checksum verified, and its model converted."""
    cfg_path = _write_config(tmp_path, conv_model, sha256_file(str(conv_model)))
    (cfg,) = load_config(cfg_path)
    assert cfg.input_shapes() == {"x": (1, 3, 8, 8)}
    assert (cfg.runtime, cfg.data_type, cfg.device()) == ("gpu", "fp16", "opencl")
    assert cfg.validation_threshold == {"cpu": 0.9999, "gpu": 0.995}
    assert main(["convert", "--config", cfg_path, "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tiny.clmace").exists()
    assert "3 nodes -> 1 after passes" in capsys.readouterr().out


def test_config_checksum_mismatch(tmp_path, conv_model, capsys):
    """A wrong checksum is a clear error naming both digests, exit code 2."""
    cfg_path = _write_config(tmp_path, conv_model, "0" * 64)
    assert main(["convert", "--config", cfg_path, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has sha256" in err and "0" * 64 in err


def test_config_errors(tmp_path):
    """Malformed configs name the model and the key."""
    bad = tmp_path / "bad.yml"
    bad.write_text("models:\n  m:\n    runtime: gpu\n")
    with pytest.raises(ConfigError, match="model 'm': missing key model_file_path"):
        load_config(str(bad))
    bad.write_text("models:\n  m:\n    model_file_path: x.onnx\n    runtime: tpu\n")
    with pytest.raises(ConfigError, match="runtime 'tpu'"):
        load_config(str(bad))
    bad.write_text("models:\n  m:\n    model_file_path: x.onnx\n    model_sha256_checksum: 1234\n")
    with pytest.raises(ConfigError, match="64 hex digits"):
        load_config(str(bad))


def test_cli_info_and_run(tmp_path, conv_model, capsys):
    """info shows the fused graph; run prints outputs and writes .npy files."""
    out = tmp_path / "conv.clmace"
    assert main(["convert", str(conv_model), "-o", str(out), "--input-shape", "x=2,3,8,8"]) == 0
    assert main(["info", str(conv_model), "--input-shape", "x=1,3,8,8"]) == 0
    text = capsys.readouterr().out
    assert "nodes: 3 before passes -> 1 after" in text and "Conv+Relu" in text and "FLOPs:" in text
    assert main(["run", str(out), "--input", "x=random", "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "y: shape [2, 4, 8, 8] float32" in text
    y = np.load(tmp_path / "o" / "y.npy")
    assert y.shape == (2, 4, 8, 8) and (y >= 0).all()


def test_python_dash_m_entry_point(conv_model):
    """`python -m clmace info` works in a fresh process and exit codes are meaningful."""
    ok = subprocess.run([sys.executable, "-m", "clmace", "info", str(conv_model), "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert '"nodes_after": 1' in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "clmace", "info", "/nonexistent.onnx"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr
