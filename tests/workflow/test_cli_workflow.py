"""The validate / bench / report subcommands: help with examples, errors as exit code 2."""

from __future__ import annotations

import pytest

from tests.workflow.conftest import run_cli


@pytest.mark.parametrize("command", ["validate", "bench", "report"])
def test_help_has_example(command) -> None:
    code, out, _ = run_cli([command, "--help"])
    assert code == 0 and "example:" in out and f"clmace {command}" in out


def test_missing_model_is_an_error(tmp_path) -> None:
    code, _, err = run_cli(["validate", str(tmp_path / "nope.onnx")])
    assert code == 2 and "nope.onnx" in err


def test_validate_needs_model_or_config() -> None:
    code, _, err = run_cli(["validate"])
    assert code == 2 and "--config" in err


def test_validate_with_deploy_config(models, tmp_path) -> None:
    cfg = tmp_path / "deploy.yml"
    cfg.write_text(f"""models:
  tiny:
    model_file_path: {models['good']}
    subgraphs:
      - input_tensors: x
        input_shapes: 1,3,16,16
        input_ranges: 0,2
        output_tensors: logits
    runtime: cpu
    validation_threshold:
      cpu: 0.9999
""")
    code, out, _ = run_cli(["validate", "--config", str(cfg)])
    assert code == 0 and "threshold 0.9999" in out
