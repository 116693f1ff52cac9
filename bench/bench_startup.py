"""Process start to first result, cold (nothing cached) vs warm (only the compiled-program file), fresh processes.

Cold: a fresh CLMACE_CACHE_DIR (so PoCL's kernel cache, which clmace keeps inside it, is fresh too).
Warm: another fresh CLMACE_CACHE_DIR holding nothing but the compiled-program file the cold run wrote, so the
figure measures our file alone, not PoCL's or the CUDA driver's own caches (CUDA_CACHE_DISABLE=1 for both).

    python -m bench.bench_startup --models efficientnet_lite0 mobilenet_v2 --repeat 3 --device opencl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from clmace.benchmark import fresh_process
from clmace.store.store import PROGRAM_FILE_NAME

PHASES = ("import_s", "session_s", "first_run_s", "to_first_result_s")


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in PHASES}


def measure(model: str, device: str, repeat: int, workdir: Path, driver_cache: str = "disabled") -> dict:
    """Median phases of `repeat` cold and `repeat` warm fresh processes, and the warm/cold ratio.

    driver_cache: "disabled" sets CUDA_CACHE_DISABLE=1 (our file alone, without NVIDIA's JIT cache);
    "shared" gives cold run i a fresh CUDA_CACHE_PATH and warm run i the one cold run i filled (a second start
    on the same machine); "clmace" sets nothing, so clmace keeps the JIT cache inside the fresh CLMACE_CACHE_DIR
    and carries it in its file (warm = a fresh machine that got only the file).
    """
    cold, warm, baked = [], [], workdir / "baked.clmace"

    def env(i: int) -> dict:
        if driver_cache == "shared":
            return {"CUDA_CACHE_PATH": str(workdir / f"cuda{i}")}
        return {} if driver_cache == "clmace" else {"CUDA_CACHE_DISABLE": "1"}

    def dirs(cache: Path) -> dict:
        # POCL_CACHE_DIR is set explicitly: a parent that ran clmace exports the one it manages, and a child
        # inheriting that warm cache would not start cold.
        return {"CLMACE_CACHE_DIR": str(cache), "POCL_CACHE_DIR": str(cache / "pocl")}

    for i in range(repeat):
        cache = workdir / f"cold{i}"
        cold.append(fresh_process(model, device, dict(env(i), **dirs(cache))))
        shutil.copy(cache / PROGRAM_FILE_NAME, baked)
    for i in range(repeat):
        cache = workdir / f"warm{i}"
        cache.mkdir()
        shutil.copy(baked, cache / PROGRAM_FILE_NAME)
        warm.append(fresh_process(model, device, dict(env(i), **dirs(cache))))
    c, w = _median(cold), _median(warm)
    return {"cold": c, "warm": w, "ratio": w["to_first_result_s"] / c["to_first_result_s"],
            "file_bytes": baked.stat().st_size, "repeat": repeat}


def main() -> None:
    """Measure every requested model and print one JSON document (and a table)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    parser.add_argument("--model-dir", default=os.environ.get("CLMACE_MODEL_DIR", "/tmp/clmace-models"))
    parser.add_argument("--device", default="opencl")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--driver-cache", choices=["disabled", "shared", "clmace"], default="disabled",
                        help="NVIDIA's JIT cache: disabled, shared by a cold run and its warm run, or left to "
                             "clmace (kept in its cache dir and carried in the compiled-program file)")
    args = parser.parse_args()
    from bench import models as zoo  # imports torch: only needed to export missing fixtures

    results = {}
    for name in args.models:
        path = Path(args.model_dir) / f"{name}.clmace"  # a converted model (what a deployment ships) first,
        if not path.exists():
            path = Path(args.model_dir) / f"{name}.onnx"  # then an exported file (torchvision's, on the GPU)
        if not path.exists():
            path = getattr(zoo, name)(args.model_dir)
        with tempfile.TemporaryDirectory(prefix="clmace-startup-") as tmp:
            results[name] = measure(str(path), args.device, args.repeat, Path(tmp), args.driver_cache)
        r = results[name]
        print(f"{name}: cold {r['cold']['to_first_result_s']:.3f} s "
              f"(import {r['cold']['import_s']:.3f} / session {r['cold']['session_s']:.3f} / "
              f"first run {r['cold']['first_run_s']:.3f}); warm {r['warm']['to_first_result_s']:.3f} s "
              f"(import {r['warm']['import_s']:.3f} / session {r['warm']['session_s']:.3f} / "
              f"first run {r['warm']['first_run_s']:.3f}); warm/cold {100 * r['ratio']:.1f}%; "
              f"file {r['file_bytes']:,} bytes", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
