"""The floor under any Python OpenCL start on this machine: what a warm clmace start cannot go below.

A fresh process imports numpy and pyopencl, lists the platforms, creates a context and queue, builds one tiny
program from the binary an earlier process saved, runs it once and reads the result back. No model, no
clmace. With the driver's own caches warm (NVIDIA: a CUDA JIT cache the first process filled), this is the
least any engine driven from Python pays before its first result, so it bounds how small warm / cold can get.

    python -m bench.startup_floor --device gpu --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import pyopencl as cl
t2 = time.perf_counter()
want_gpu = sys.argv[2] == "gpu"
devices = [d for p in cl.get_platforms() for d in p.get_devices()]
gpus = [d for d in devices if d.type & cl.device_type.GPU]
dev = (gpus or devices)[0] if want_gpu else devices[0]
t3 = time.perf_counter()
if dev.platform.name == "Portable Computing Language":  # PoCL 3.0 needs clmace's CPU-name fix on new CPUs;
    from clmace.backends.opencl.discovery import apply_target  # not part of the floor: its time is taken out
    apply_target(dev)
patch = time.perf_counter() - t3
t3 += patch
ctx = cl.Context([dev])
queue = cl.CommandQueue(ctx)
t4 = time.perf_counter()
src = "__kernel void k(__global float *a) { int g = get_global_id(0); a[g] = a[g] * 2.0f + 1.0f; }"
path = sys.argv[1]
if os.path.exists(path):
    prg = cl.Program(ctx, [dev], [open(path, "rb").read()]).build()
else:
    prg = cl.Program(ctx, src).build()
t5 = time.perf_counter()
a = np.ones(256, np.float32)
buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
cl.Kernel(prg, "k")(queue, (256,), None, buf)
cl.enqueue_copy(queue, a, buf)
t6 = time.perf_counter()
assert float(a[0]) == 3.0
if not os.path.exists(path):
    open(path, "wb").write(prg.get_info(cl.program_info.BINARIES)[0])
print(json.dumps({"numpy_s": t1 - t0, "pyopencl_s": t2 - t1, "platforms_s": t3 - t2, "context_s": t4 - t3,
                  "program_s": t5 - t4, "first_run_s": t6 - t5, "to_first_result_s": t6 - t0 - patch,
                  "device": dev.name.strip()}))
"""

PHASES = ("numpy_s", "pyopencl_s", "platforms_s", "context_s", "program_s", "first_run_s", "to_first_result_s")


def floor(device: str, repeat: int, workdir: Path) -> dict:
    """Median phases of `repeat` fresh processes after one that saved the binary and filled the driver caches."""
    binary = workdir / "k.bin"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_CACHE_DISABLE", "POCL_CACHE_DIR")}
    env.update(CUDA_CACHE_PATH=str(workdir / "cuda"), POCL_CACHE_DIR=str(workdir / "pocl"),
               PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                    env.get("PYTHONPATH", "")) if p)
    runs = []
    for i in range(repeat + 1):  # the first one compiles from source and fills the caches
        out = subprocess.run([sys.executable, "-c", _CHILD, str(binary), device], env=env, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"floor process failed:\n{out.stderr[-2000:]}")
        if i:
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {k: statistics.median(r[k] for r in runs) for k in PHASES}
    result["device"] = runs[0]["device"]
    result["repeat"] = repeat
    return result


def main() -> None:
    """Print the floor's phases (medians) and optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["opencl", "gpu"], default="opencl")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clmace-floor-") as tmp:
        r = floor(args.device, args.repeat, Path(tmp))
    print(f"{r['device']}: floor {r['to_first_result_s']:.3f} s = " +
          " + ".join(f"{k[:-2]} {r[k]:.3f}" for k in PHASES[:-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
