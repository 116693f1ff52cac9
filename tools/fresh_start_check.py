"""Fresh-process runs of a small CNN and an attention block on device='opencl', as a new user would make them.

Each round empties every cache (clmace's default cache dir, PoCL's caches, pyopencl's), then runs each model in
fp32 and fp16 in a new process with no POCL_* or CLMACE_* variable set, and compares with onnxruntime; then it
runs the demo. A crash shows as a non-zero exit with its signal. Usage:

    python tools/fresh_start_check.py --rounds 5 [--no-demo]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_EXPORT = """
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class CNN(nn.Module):
    def __init__(s):
        super().__init__()
        s.c1 = nn.Conv2d(3, 16, 3, padding=1); s.bn = nn.BatchNorm2d(16)
        s.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16); s.pw = nn.Conv2d(16, 32, 1); s.fc = nn.Linear(32, 10)
    def forward(s, x):
        x = torch.relu(s.bn(s.c1(x))); x = nn.functional.relu6(s.pw(s.dw(x)))
        return torch.softmax(s.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)), -1)
class Attn(nn.Module):
    def __init__(s):
        super().__init__(); s.ln = nn.LayerNorm(32); s.att = nn.MultiheadAttention(32, 4, batch_first=True)
        s.ff = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
    def forward(s, x):
        h = s.ln(x); a, _ = s.att(h, h, h, need_weights=False); x = x + a
        return x + s.ff(s.ln(x))
for m, x, name in ((CNN(), torch.randn(1, 3, 32, 32), "cnn"), (Attn(), torch.randn(1, 8, 32), "attention")):
    torch.onnx.export(m.eval(), x, f"{sys.argv[1]}/{name}.onnx", opset_version=17, dynamo=False)
"""

_RUN = """
import sys, numpy as np, onnxruntime as ort, clmace
from clmace.core.errors import DeviceError
path, precision = sys.argv[1], sys.argv[2]
ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32) for i in ref.get_inputs()}
try:
    sess = clmace.InferenceSession(path, device="opencl", precision=precision)
except DeviceError as exc:
    print(f"refused: {exc}")
    sys.exit(0)
got, want = sess.run(None, feeds)[0], ref.run(None, feeds)[0]
cos = float(got.ravel() @ want.ravel() / np.linalg.norm(got) / np.linalg.norm(want))
print(f"max abs err {float(np.abs(got - want).max()):.2e}, cosine {cos:.6f}")
sys.exit(0 if cos > 0.9999 else 1)
"""


def clean_env() -> dict[str, str]:
    """The environment without any POCL_* or CLMACE_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("POCL_", "CLMACE_"))}


def empty_caches() -> None:
    """Remove clmace's default cache dir and PoCL's and pyopencl's caches."""
    import platformdirs

    home = Path.home()
    paths = [platformdirs.user_cache_dir("clmace"), str(home / ".cache" / "pocl"), str(home / ".cache" / "pyopencl"),
             *glob.glob(f"/dev/shm/clmace-pocl-{os.getuid()}-*")]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths += glob.glob(os.path.join(runtime, f"clmace-pocl-{os.getuid()}-*"))
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def run(cmd: list[str], timeout: float = 1800) -> tuple[int, str, float]:
    """Exit status, last output line and seconds of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    tail = next((line for line in reversed(proc.stdout.strip().splitlines()) if line), lines[-1] if lines else "")
    if proc.returncode != 0:  # show why: the end of what the process printed
        tail += "\n    " + "\n    ".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return proc.returncode, tail, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="clmace-fresh-")
    subprocess.run([sys.executable, "-c", _EXPORT, folder], check=True, capture_output=True)
    failures = 0
    for r in range(1, args.rounds + 1):
        for model in ("cnn", "attention"):
            for precision in ("fp32", "fp16"):
                empty_caches()
                rc, tail, secs = run([sys.executable, "-c", _RUN, f"{folder}/{model}.onnx", precision])
                failures += rc != 0
                print(f"round {r} {model:9s} {precision}: exit {rc} in {secs:5.1f} s: {tail}", flush=True)
        if not args.no_demo:
            empty_caches()
            rc, tail, secs = run([sys.executable, "examples/demo.py"])
            failures += rc != 0
            print(f"round {r} demo          : exit {rc} in {secs:5.1f} s: {tail}", flush=True)
    print(f"{failures} failed runs")
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
