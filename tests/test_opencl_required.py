"""Without an OpenCL device: the tests fail under CLMACE_REQUIRE_OPENCL=1 and skip (saying why) without it;
sessions raise a clear DeviceError, or run on the CPU runtime when the user allows the fallback."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_DEVICE = {"POCL_DEVICES": "nonexistent"}  # PoCL loads, but lists no device


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLMACE_REQUIRE_OPENCL"}
    env.update(NO_DEVICE, PYTHONPATH=os.pathsep.join([REPO, *sys.path]), **extra)
    return env


def _pytest(env: dict[str, str]) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/opencl/test_eltwise.py",
            "tests/tuner/test_space.py", "-k", "not slow"]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_required_opencl_fails_when_there_is_no_device() -> None:
    proc = _pytest(_env(CLMACE_REQUIRE_OPENCL="1"))
    assert proc.returncode == 1, proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert ("error" in last or "failed" in last) and "passed" not in last and "skipped" not in last, last
    assert "CLMACE_REQUIRE_OPENCL=1 and no usable OpenCL device" in proc.stdout, proc.stdout[-2000:]
    assert "POCL_DEVICES" in proc.stdout  # the reason names what to check


def test_without_the_requirement_the_skips_say_why() -> None:
    proc = _pytest(_env())
    assert proc.returncode == 0, proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert "skipped" in last and "failed" not in last, last
    assert "no usable OpenCL device: DeviceError: no OpenCL device" in proc.stdout, proc.stdout[-2000:]


_SESSION = """
import sys, warnings
import numpy as np
from onnx import helper
import clmace
from clmace.core.errors import DeviceError
from tests.onnx_build import make_model
model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", [2, 3])])
x = np.array([[-1, 0, 1], [2, -3, 4]], np.float32)
try:
    clmace.InferenceSession(model, device="opencl")
    print("no error")
except DeviceError as exc:
    print("DeviceError:", exc)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = clmace.InferenceSession(model, device="opencl", allow_cpu_fallback=True).run(None, {"x": x})[0]
print("fallback", np.array_equal(y, np.maximum(x, 0)), [str(w.message) for w in caught])
"""


def test_no_device_is_a_clear_error_and_fallback_is_opt_in() -> None:
    proc = subprocess.run([sys.executable, "-c", _SESSION], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "DeviceError: no OpenCL device" in out and "POCL_DEVICES" in out, out
    assert "fallback True" in out and "running it on the CPU runtime instead" in out, out
