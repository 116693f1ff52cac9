"""Process start to first result, cold (nothing cached) vs warm (only the compiled-program file), fresh processes.

Cold: a fresh CLMACE_CACHE_DIR (so the PoCL kernel cache clmace manages for it is fresh too), no file, and
CUDA_CACHE_DISABLE=1: nothing is cached anywhere. The file is baked by one more process (not timed), as a
deployment bakes it once with `clmace compile`. Warm: another fresh CLMACE_CACHE_DIR holding nothing but that
file, so the figure measures our file alone, not PoCL's or the CUDA driver's own caches.

Python's bytecode is compiled once, up front, as `pip install` does (the children use a PYTHONPYCACHEPREFIX in
the work directory): a source checkout with PYTHONDONTWRITEBYTECODE=1 would otherwise compile clmace's modules
again in every process and measure that instead.

    python -m bench.bench_startup --models efficientnet_lite0 mobilenet_v2 --repeat 5 --device opencl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from clmace.store.capture import pocl
from clmace.store.store import PROGRAM_FILE_NAME
from clmace.workflow.bench import fresh_process

PHASES = ("import_s", "session_s", "first_run_s", "to_first_result_s", "process_s")


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in PHASES}


def _spread(runs: list[dict]) -> dict:
    """Min and max of the whole start-up, to show the noise around the median."""
    total = [r["to_first_result_s"] for r in runs]
    return {"min_s": min(total), "max_s": max(total), "runs_s": total}


def measure(model: str, device: str, repeat: int, workdir: Path, driver_cache: str = "clmace") -> dict:
    """Median phases of `repeat` cold and `repeat` warm fresh processes, and the warm/cold ratio.

    driver_cache (NVIDIA's JIT cache; irrelevant on other drivers): "clmace" bakes the file with the JIT cache
    kept in the clmace cache dir and carried in the file (a fresh machine that got only the file);
    "disabled" keeps CUDA_CACHE_DISABLE=1 in the warm runs too (our program binaries, PTX, alone);
    "shared" lets warm run i reuse the JIT cache cold run i filled (a second start on the same machine).
    Cold runs always start with nothing cached, except in "shared", where they fill a fresh JIT cache.
    """
    cold, warm, baked = [], [], workdir / "baked.clmace"
    pyc = {"PYTHONPYCACHEPREFIX": str(workdir / "pycache"), "PYTHONDONTWRITEBYTECODE": None}

    def child(cache: Path, extra: dict) -> dict:
        scratch = pocl.managed_dir(str(cache))
        if os.path.exists(scratch):
            raise RuntimeError(f"PoCL scratch cache {scratch} exists before a fresh run")
        try:
            # POCL_CACHE_DIR is removed: clmace then manages a fresh one for this fresh CLMACE_CACHE_DIR (a
            # parent that ran clmace would otherwise pass on the one it manages).
            return fresh_process(model, device, {"CLMACE_CACHE_DIR": str(cache), "POCL_CACHE_DIR": None,
                                                 **pyc, **extra})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def jit(i: int | str, warm_run: bool) -> dict:
        if driver_cache == "shared":
            return {"CUDA_CACHE_PATH": str(workdir / f"cuda{i}"), "CUDA_CACHE_DISABLE": None}
        if warm_run and driver_cache == "clmace":
            return {"CUDA_CACHE_DISABLE": None, "CUDA_CACHE_PATH": None}
        return {"CUDA_CACHE_DISABLE": "1", "CUDA_CACHE_PATH": None}

    bake = workdir / "bake"
    child(bake, jit("-bake", warm_run=driver_cache == "clmace"))  # also compiles the bytecode for every later run
    shutil.copy(bake / PROGRAM_FILE_NAME, baked)
    for i in range(repeat):
        cold.append(child(workdir / f"cold{i}", jit(i, warm_run=False)))
        if driver_cache != "clmace":  # the other settings compare with the file their own cold run wrote
            shutil.copy(workdir / f"cold{i}" / PROGRAM_FILE_NAME, baked)
    for i in range(repeat):
        cache = workdir / f"warm{i}"
        cache.mkdir()
        shutil.copy(baked, cache / PROGRAM_FILE_NAME)
        warm.append(child(cache, jit(i, warm_run=True)))
    c, w = _median(cold), _median(warm)
    return {"cold": c, "warm": w, "cold_spread": _spread(cold), "warm_spread": _spread(warm),
            "ratio": w["to_first_result_s"] / c["to_first_result_s"], "file_bytes": baked.stat().st_size,
            "repeat": repeat, "driver_cache": driver_cache}


def main() -> None:
    """Measure every requested model and print one JSON document (and a table)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    parser.add_argument("--model-dir", default=os.environ.get("CLMACE_MODEL_DIR", "/tmp/clmace-models"))
    parser.add_argument("--device", default="opencl")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--driver-cache", choices=["clmace", "disabled", "shared"], default="clmace",
                        help="NVIDIA's JIT cache in the warm runs: carried in the compiled-program file (clmace), "
                             "disabled, or the one the cold run filled on this machine (shared)")
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
              f"whole processes {r['cold']['process_s']:.3f} / {r['warm']['process_s']:.3f} s; "
              f"file {r['file_bytes']:,} bytes", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
