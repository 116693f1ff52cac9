"""What a new user meets first: errors at construction, warnings instead of silent choices, a CLI that behaves."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import clmace
from clmace.core.errors import ConfigError, DeviceError
from clmace.store.format import ProgramFile, Section, dumps
from tests.store.test_store_io import FP

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dynamic_relu() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_cuda_is_refused_at_construction_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="unknown device 'cuda'.*device='gpu'"):
        clmace.InferenceSession(dynamic_relu(), device="cuda")


def test_a_missing_device_is_refused_at_construction_even_with_dynamic_shapes() -> None:
    from tests.opencl_probe import require_device

    require_device()
    with pytest.raises(DeviceError, match="'opencl:99' does not exist"):
        clmace.InferenceSession(dynamic_relu(), device="opencl:99")


def test_fp16_without_the_extension_is_refused_at_construction() -> None:
    from tests.opencl_probe import require_device

    device = require_device()
    if "cl_khr_fp16" in device.extensions.split():
        pytest.skip(f"{device.name.strip()} has cl_khr_fp16: nothing to refuse")
    with pytest.raises(DeviceError, match="cl_khr_fp16"):
        clmace.InferenceSession(dynamic_relu(), device="opencl", precision="fp16")


def test_an_unavailable_provider_is_named_in_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = clmace.InferenceSession(dynamic_relu(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert any("no CUDAExecutionProvider" in str(w.message) for w in caught), [str(w.message) for w in caught]
    x = np.array([[-1, 0, 2]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(x, 0))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, *sys.path]))
    return subprocess.run([sys.executable, "-m", "clmace", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def test_version() -> None:
    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"clmace {clmace.__version__}"


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(dumps(ProgramFile("x", 0.0, {FP.key(): Section(FP)})))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, *sys.path]))
    proc = subprocess.run(f"{sys.executable} -m clmace inspect --json {path} | head -c 1", shell=True, env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.stdout == "{" and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_run_input_errors_show_the_syntax(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(dynamic_relu(), model)
    proc = _cli("run", str(model), "--input", str(tmp_path / "x.npy"))
    assert proc.returncode == 2 and "NAME=file.npy or NAME=random" in proc.stderr, proc.stderr
    proc = _cli("run", str(model), "--input", f"x={tmp_path / 'missing.npy'}")
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "numpy.save" in proc.stderr, proc.stderr
