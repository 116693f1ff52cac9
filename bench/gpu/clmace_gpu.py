"""On the NVIDIA machine: clmace on NVIDIA OpenCL vs onnxruntime (accuracy) for exported ONNX models.

Latency is end-to-end `run()` (copy in, enqueue, copy out), median and p90 of N runs after warm-up.

    python bench/gpu/clmace_gpu.py --models DIR/mobilenet_v2.onnx ... --runs 200 --out result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import clmace


def measure(path: str, runs: int, precision: str) -> dict:
    """Accuracy vs onnxruntime (CPU) and latency of one model on the default OpenCL GPU."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    t0 = time.perf_counter()
    sess = clmace.InferenceSession(path, device="gpu", precision=precision)
    created = time.perf_counter() - t0
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: x})[0].astype(np.float64).ravel()
    sess.wait_saved()  # the compiled-program file is written on a thread: not inside the timed runs
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {name: x})[0].astype(np.float64)
    want = want.ravel()
    for _ in range(20):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    runtime = sess.runtime
    return {
        "device": runtime.device_info.name, "precision": precision, "session_s": created,
        "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
        "cosine": float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want))),
        "max_abs_err": float(np.abs(got - want).max()), "top1_match": bool(got.argmax() == want.argmax()),
        "launches": len(runtime.node_devices()), "programs": runtime.program_count(),
        "fallback_nodes": [n for n, d in runtime.node_devices().items() if d == "cpu"],
        "profile": runtime.profile_run({name: x}),
    }


def main() -> None:
    """Measure each model, print a line per model, write the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = {}
    for path in args.models:
        try:
            r = measure(path, args.runs, args.precision)
        except Exception as exc:  # one model's failure must not hide the others' numbers
            print(Path(path).stem, "FAILED:", type(exc).__name__, exc, flush=True)
            results[Path(path).stem] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[Path(path).stem] = r
        print(Path(path).stem, {k: v for k, v in r.items() if k != "profile"}, flush=True)
        print(r["profile"], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
