"""The driver check: the canary in a child process, a bad PoCL target contained and replaced, verdicts cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from clmace.backends.opencl.discovery import select_device
from clmace.backends.opencl.quirks import health, pocl_target
from tests.opencl_probe import REQUIRE_ENV

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _device():
    return select_device("opencl")


def test_the_canary_passes_on_the_default_device() -> None:
    device = _device()
    st = pocl_target.state(device)
    verdict = health.run_child(device, st.target if st else "")
    assert verdict.ok, verdict.reason


def test_an_unknown_target_fails_in_the_child_and_the_parent_lives() -> None:
    device = _device()
    if not pocl_target.is_pocl(device):
        pytest.skip("targets are a PoCL matter; the default device is not PoCL")
    verdict = health.run_child(device, "no-such-cpu")
    assert not verdict.ok
    assert "no-such-cpu" in verdict.reason or "compiles for" in verdict.reason, verdict.reason


def _bad_target() -> str | None:
    """A target that cannot work on this host: znver3 on AVX-512 hosts (the crash in the field)."""
    features = pocl_target.host_features()
    if features and pocl_target.static_problem("znver3", features):
        return "znver3"
    return None


@pytest.mark.slow
def test_a_crashing_target_kills_only_the_child() -> None:
    """PoCL 3.0 compiling AVX-512 builtins for znver3 segfaults or aborts: the child dies, we get a verdict."""
    device = _device()
    st = pocl_target.state(device)
    if _bad_target() is None or st is None or not st.switchable:
        pytest.skip("needs an AVX-512 host and the PoCL 3.0 build whose target clmace can set (the field crash)")
    verdict = health.run_child(device, "znver3")
    assert not verdict.ok
    assert "the driver" in verdict.reason or "wrong results" in verdict.reason, verdict.reason


_CHILD = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import onnxruntime as ort
    import clmace
    from clmace.backends.opencl.quirks import pocl_target
    from tests.opencl.conftest import make_model
    from onnx import helper
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Conv", ["r", "w1"], ["p"]),
             helper.make_node("GlobalAveragePool", ["p"], ["y"])]
    model = make_model(nodes, [("x", [1, 8, 32, 16])], ["y"],
                       [("w", rng.standard_normal((8, 1, 3, 3)).astype(np.float32)),
                        ("b", rng.standard_normal(8).astype(np.float32)),
                        ("w1", rng.standard_normal((16, 8, 1, 1)).astype(np.float32))])
    x = rng.standard_normal((1, 8, 32, 16)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = clmace.InferenceSession(model, device="opencl")
        got = sess.run(None, {"x": x})[0]
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    st = pocl_target.state(sess.runtime.plan.device)
    print(json.dumps({"err": float(np.abs(got - want).max()), "target": st.target if st else "",
                      "host": [str(w.message) for w in caught if "run on the host" in str(w.message)]}))
""")


@pytest.mark.slow
def test_a_bad_override_is_reported_and_replaced(tmp_path) -> None:
    """CLMACE_POCL_CPU=znver3 on this host: a warning names it, another target runs, the output is right."""
    bad = _bad_target()
    if not pocl_target.is_pocl(_device()):
        pytest.skip("CPU targets are a PoCL matter; the default device is not PoCL")
    if bad is None:
        pytest.skip("znver3 is a valid target on this host (no AVX-512): nothing to replace")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POCL_", "CLMACE_"))}
    env.update(CLMACE_POCL_CPU=bad, CLMACE_CACHE_DIR=str(tmp_path / "cache"), POCL_CACHE_DIR=str(tmp_path / "pocl"),
               PYTHONPATH=os.pathsep.join([REPO, *sys.path]))
    for attempt in ("first", "second"):  # the second start remembers the verdict and warns without a check
        proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["err"] < 1e-4 and not result["host"], result
        assert result["target"] and result["target"] != bad, result
        assert f"{bad}" in proc.stderr and ("does not work on this host" in proc.stderr
                                            or "failed clmace's driver check" in proc.stderr), (attempt, proc.stderr)


def test_the_verdict_is_kept_in_the_cache_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CLMACE_CACHE_DIR", str(tmp_path))
    device = _device()
    st = pocl_target.state(device)
    target = st.target if st else ""
    first = health.check(device, target)
    assert first.ok and not first.cached
    again = health.check(device, target)
    assert again.ok and again.cached
    data = json.loads((tmp_path / health.CHECK_FILE).read_text())
    assert data["verdicts"][health.verdict_key(device, target)]["ok"] is True


def test_the_requirement_variable_is_what_ci_sets() -> None:
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert f"export {REQUIRE_ENV}=1" in f.read()


_CACHE_CHILD = textwrap.dedent("""
    import os, numpy as np, clmace
    from tests.opencl.conftest import make_model
    from onnx import helper
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n", 4])], ["y"])
    sess = clmace.InferenceSession(model, device="opencl")  # dynamic shape: the device is checked at once
    sess.run(None, {"x": np.ones((2, 4), np.float32)})
    print(os.environ["POCL_CACHE_DIR"])
""")


def test_pocl_uses_the_cache_clmace_chose(tmp_path) -> None:
    """Nothing may start PoCL before the store points its kernel cache at clmace's private directory."""
    if not pocl_target.is_pocl(_device()):
        pytest.skip("the default device is not PoCL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POCL_", "CLMACE_"))}
    env.update(CLMACE_CACHE_DIR=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=os.pathsep.join([REPO, *sys.path]))
    proc = subprocess.run([sys.executable, "-c", _CACHE_CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    chosen = proc.stdout.strip().splitlines()[-1]
    assert os.listdir(chosen), f"PoCL wrote nothing to {chosen}"
    assert not (tmp_path / "xdg" / "pocl").exists(), "PoCL used its default cache: it started before clmace set one"
