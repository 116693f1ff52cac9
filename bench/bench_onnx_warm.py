"""Cold vs warm start of a model given as an `.onnx` path, each in a fresh process with a fresh PoCL cache:
session + first run. Warm reads the compiled-program file and the cached converted model (no `onnx` import);
"warm, no model cache" sets CLMACE_MODEL_CACHE=0. Rounds alternate the three; medians and extremes.

    python -m bench.bench_onnx_warm MODEL.onnx [--device opencl] [--rounds 3]

The cold start includes clmace's one-time driver check: each round starts from an empty CLMACE_CACHE_DIR.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np, clmace
s = clmace.InferenceSession(sys.argv[1], device=sys.argv[2])
feeds = {}
for arg in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in arg.shape]
    feeds[arg.name] = np.zeros(shape, np.float32 if "float" in arg.type else np.int64)
s.run(None, feeds)
print(f"{time.perf_counter() - t0:.4f} {'onnx' in sys.modules}")
"""


def _start(model: str, device: str, cache: str, **env: str) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory(prefix="pocl-") as pocl:
        out = subprocess.run([sys.executable, "-c", CHILD, model, device], capture_output=True, text=True,
                             check=True, env={**os.environ, "CLMACE_CACHE_DIR": cache, "POCL_CACHE_DIR": pocl,
                                              **env})
    seconds, onnx = out.stdout.split()[-2:]
    return float(seconds), onnx == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--device", default="opencl")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"cold": [], "warm": [], "warm, no model cache": []}
    imports: dict[str, set[bool]] = {k: set() for k in rows}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="clmace-cache-") as cache:
            for name, env in (("cold", {}), ("warm", {}), ("warm, no model cache", {"CLMACE_MODEL_CACHE": "0"})):
                seconds, onnx = _start(args.model, args.device, cache, **env)
                rows[name].append(seconds)
                imports[name].add(onnx)
    cold = statistics.median(rows["cold"])
    print(f"{os.path.basename(args.model)} on {args.device}, {args.rounds} rounds (median, min-max):")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med:8.3f} s  ({min(values):.3f}-{max(values):.3f})  {100 * med / cold:5.1f}% of cold"
              f"  onnx imported: {'/'.join(sorted(map(str, imports[name])))}")


if __name__ == "__main__":
    main()
