"""Measure PoCL start-up: build + first launch of a 9-kernel program, each run in a fresh process.

Usage: python -m clmace.store.bench_pocl [--runs N]. Every mode but `pocl-warm` starts with an empty
POCL_CACHE_DIR. `cold`: no file. `file-64`: our file, launched with the local size it was saved with
(the program binary carries that code). Then one process launches with local size 32 and saves, so the
32 code lands in driver blobs. `binary-32`: that file with its driver blobs removed, local size 32.
`file-32`: the file as saved, local size 32. `pocl-warm`: PoCL's own cache directory of the cold run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

KERNELS = ("add", "mul", "relu", "scale", "axpy", "dot16", "madd", "clampk", "sum4")
_BODY = {
    "add": "c[i] = a[i] + b[i];", "mul": "c[i] = a[i] * b[i];", "relu": "c[i] = fmax(a[i], 0.0f) + b[i];",
    "scale": "c[i] = ALPHA * a[i] + b[i];", "axpy": "c[i] = mad(ALPHA, a[i], b[i]);",
    "dot16": "float s = 0; for (int k = 0; k < 16; ++k) s += a[(i + k) % N] * b[i]; c[i] = s;",
    "madd": "c[i] = a[i] * b[i] + c[i];", "clampk": "c[i] = clamp(a[i], -b[i], b[i]);",
    "sum4": "float4 v = vload4(i / 4, a); c[i] = v.x + v.y + v.z + v.w + b[i];",
}
SOURCE = "".join(
    f"__kernel void {k}(__global const float *a, __global const float *b, __global float *c)"
    f" {{ int i = get_global_id(0); {_BODY[k]} }}\n" for k in KERNELS)


def _child(path: str, lws: int) -> None:
    """One start: store, context, build, first launch of every kernel; prints timings as JSON."""
    import time

    t0 = time.perf_counter()
    import numpy as np
    import pyopencl as cl

    from clmace.store import ProgramStore, pocl

    store = ProgramStore(path=path)
    device = pocl.usable_device()
    if device is None:
        raise SystemExit("no PoCL device here can compile OpenCL C")
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx)
    t1 = time.perf_counter()
    prg = store.build(ctx, device, "bench9", SOURCE, ["-DALPHA=2.0f", "-DN=4096"])
    t2 = time.perf_counter()
    a = np.arange(4096, dtype=np.float32)
    buf_a = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
    buf_c = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, a.nbytes)
    for k in KERNELS:
        getattr(prg, k)(queue, (4096,), (lws,), buf_a, buf_a, buf_c)
    queue.finish()
    t3 = time.perf_counter()
    store.save()
    st = store.status()
    print(json.dumps({"setup_s": t1 - t0, "build_s": t2 - t1, "first_launch_s": t3 - t2,
                      "build_and_launch_s": t3 - t1, "hits": st["hits"], "misses": st["misses"],
                      "device": device.name, "platform": device.platform.version}))


def _run(path: str, cache: str, pocl_dir: str, lws: int = 64) -> dict:
    env = dict(os.environ, CLMACE_CACHE_DIR=cache, POCL_CACHE_DIR=pocl_dir)
    cmd = [sys.executable, "-m", "clmace.store.bench_pocl", "--child", path, "--lws", str(lws)]
    out = subprocess.run(cmd, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every mode --runs times in fresh processes and print medians."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child")
    ap.add_argument("--lws", type=int, default=64)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.lws)
        return
    from clmace.store.format import dumps
    from clmace.store.io import read_file

    modes = ("cold", "file-64", "binary-32", "file-32", "pocl-warm")
    results: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            d = os.path.join(tmp, str(i))
            path, stripped = os.path.join(d, "p.clmace"), os.path.join(d, "nob.clmace")
            results["cold"].append(_run(path, d, os.path.join(d, "pocl-cold")))
            results["file-64"].append(_run(path, d, os.path.join(d, "pocl-f64")))
            _run(path, d, os.path.join(d, "pocl-prep32"), lws=32)
            pf = read_file(path)
            for sec in pf.sections.values():
                for e in sec.entries.values():
                    e.driver_blobs = {}
            with open(stripped, "wb") as f:
                f.write(dumps(pf))
            results["binary-32"].append(_run(stripped, d, os.path.join(d, "pocl-b32"), lws=32))
            results["file-32"].append(_run(path, d, os.path.join(d, "pocl-f32"), lws=32))
            results["pocl-warm"].append(_run(path, d, os.path.join(d, "pocl-cold")))
    first = results["cold"][0]
    print(f"device: {first['device']} ({first['platform']}); {args.runs} fresh processes per mode, medians")
    for mode, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) * 1e3
               for k in ("build_s", "first_launch_s", "build_and_launch_s")}
        print(f"{mode:10s} build {med['build_s']:8.1f} ms  first launch {med['first_launch_s']:8.1f} ms  "
              f"total {med['build_and_launch_s']:8.1f} ms  hits {rows[0]['hits']} misses {rows[0]['misses']}")


if __name__ == "__main__":
    main()
