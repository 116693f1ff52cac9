"""CPU latency: clmace on OpenCL (PoCL) vs onnxruntime, same process, runs alternating between engines.

    python -m bench.bench_latency                 # print the table
    python -m bench.bench_latency --write         # also update the CPU table in bench/RESULTS.md
    python -m bench.bench_latency --cold          # also time a fresh process to first result

Both engines get the same warm-up, the same input and the same pause between runs. onnxruntime's worker
threads spin after a run and would take both cores from the clmace run that follows, so spinning is off
unless --ort-spin.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.results_md import RESULTS, write_section

START, END = "<!-- cpu-latency:start -->", "<!-- cpu-latency:end -->"
MODELS = ("efficientnet_lite0", "mobilenet_v2")
SHAPE = (1, 3, 224, 224)


def cpu_name() -> str:
    """The host CPU's model name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def export(name: str, directory: Path) -> Path:
    """The ONNX file of a benchmark model (exported once into directory)."""
    from bench import models

    return getattr(models, name)(directory)


def measure(path: Path, device: str, runs: int, warmup: int, gap: float, ort_spin: bool = False) -> dict:
    """Median and p90 of both engines over `runs` alternating runs."""
    import onnxruntime as ort

    from clmace import InferenceSession

    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    ours = InferenceSession(path, device=device)
    options = ort.SessionOptions()
    if not ort_spin:
        # onnxruntime's idle workers otherwise keep spinning on both cores into the next (clmace) run.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    ref = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed_ours = {ours.get_inputs()[0].name: x}
    ours.run(None, feed_ours)
    ours.wait_saved()  # the store reads binaries on a thread (PoCL compiles): not inside the timed runs
    feed_ref = {ref.get_inputs()[0].name: x}
    for _ in range(warmup):
        ours.run(None, feed_ours)
        ref.run(None, feed_ref)
    times: dict[str, list[float]] = {"clmace": [], "onnxruntime": []}
    for i in range(runs):
        order = (("clmace", ours, feed_ours), ("onnxruntime", ref, feed_ref))
        for name, sess, feed in order if i % 2 == 0 else order[::-1]:
            time.sleep(gap)
            start = time.perf_counter()
            sess.run(None, feed)
            times[name].append(time.perf_counter() - start)
    runtime = next(iter(ours._runtimes.values()))
    err = float(np.abs(ours.run(None, feed_ours)[0] - ref.run(None, feed_ref)[0]).max())
    stats = {name: (float(np.median(t)) * 1e3, float(np.percentile(t, 90)) * 1e3) for name, t in times.items()}
    return {"stats": stats, "device": runtime.device_info.name, "max_abs_err": err,
            "peak_mib": runtime.peak_memory_bytes() / 2**20, "bound_mib": runtime.memory_bound_bytes() / 2**20,
            "programs": runtime.program_count(), "profile": _profile(runtime, feed_ours)}


def _profile(runtime, feed) -> str:
    """The top nodes of one profiled run (timed runs above keep no profiling events)."""
    runtime.profile_run(feed)
    return runtime.profile_table(top=5)


COLD_SCRIPT = """
import sys, time, numpy as np
t0 = time.perf_counter()
from clmace import InferenceSession
s = InferenceSession(sys.argv[1], device=sys.argv[2])
x = np.zeros((1, 3, 224, 224), np.float32)
s.run(None, {s.get_inputs()[0].name: x})
print(time.perf_counter() - t0)
"""


def cold_start(path: Path, device: str, cache: str) -> float:
    """Seconds from a new process's start of work to its first result, with every cache under `cache`."""
    env = {**os.environ, "POCL_CACHE_DIR": os.path.join(cache, "pocl"),
           "CLMACE_CACHE_DIR": os.path.join(cache, "clmace")}
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(path), device], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def table(rows: dict[str, dict], command: str, cold: dict[str, tuple[float, float]], spin: bool,
          load: float) -> str:
    """The markdown section written to RESULTS.md."""
    first = next(iter(rows.values()))
    lines = [START, "## CPU latency: clmace (OpenCL on PoCL) vs onnxruntime", "",
             f"{datetime.date.today().isoformat()}; CPU: {cpu_name()} ({os.cpu_count()} cores); OpenCL device: "
             f"{first['device']} (PoCL); onnxruntime CPUExecutionProvider, default threads"
             f"{'' if spin else ', worker spinning off (session.intra_op.allow_spinning=0)'}.", "",
             f"Command: `{command}`. Load average when it started: {load:.2f} (other processes share the 2 "
             "cores; alternating runs expose both engines to the same load).", "",
             "| model | clmace median | clmace p90 | onnxruntime median | onnxruntime p90 | ratio (median) "
             "| max abs err | peak / bound memory | programs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        (om, op), (rm, rp) = r["stats"]["clmace"], r["stats"]["onnxruntime"]
        lines.append(f"| {name} | {om:.2f} ms | {op:.2f} ms | {rm:.2f} ms | {rp:.2f} ms | {om / rm:.2f}x "
                     f"| {r['max_abs_err']:.1e} | {r['peak_mib']:.1f} / {r['bound_mib']:.1f} MiB "
                     f"({r['peak_mib'] / r['bound_mib']:.3f}x) | {r['programs']} |")
    if cold:
        lines += ["", "Fresh process to first result (session creation + first run), clmace on OpenCL:", "",
                  "| model | empty caches | warm caches (compiled-program file + PoCL cache) |", "|---|---|---|"]
        lines += [f"| {name} | {c:.2f} s | {w:.2f} s |" for name, (c, w) in cold.items()]
    lines += ["", "Top nodes of the last clmace run (OpenCL profiling events):", ""]
    for name, r in rows.items():
        lines += [f"{name}:", "```", r["profile"], "```"]
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per engine (default 50)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap-ms", type=float, default=10.0, help="pause before every timed run (default 10)")
    parser.add_argument("--device", default="opencl")
    parser.add_argument("--ort-spin", action="store_true",
                        help="leave onnxruntime's worker spinning on (it then slows the clmace runs that follow)")
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "clmace-bench-models"))
    parser.add_argument("--cold", action="store_true", help="also time fresh processes (cold and warm cache)")
    parser.add_argument("--write", action="store_true", help=f"update the CPU table in {RESULTS.name}")
    parser.add_argument("--json", action="store_true", help="print raw numbers as JSON")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_latency " + " ".join(argv if argv is not None else sys.argv[1:])
    rows, cold = {}, {}
    load = os.getloadavg()[0]
    for name in args.models:
        path = export(name, Path(args.model_dir))
        rows[name] = measure(path, args.device, args.runs, args.warmup, args.gap_ms / 1e3, args.ort_spin)
        (om, op), (rm, rp) = rows[name]["stats"]["clmace"], rows[name]["stats"]["onnxruntime"]
        print(f"{name}: clmace {om:.2f} ms (p90 {op:.2f}) | onnxruntime {rm:.2f} ms (p90 {rp:.2f}) | "
              f"ratio {om / rm:.2f}x | err {rows[name]['max_abs_err']:.1e}", flush=True)
        if args.cold:
            with tempfile.TemporaryDirectory() as cache:
                cold[name] = (cold_start(path, args.device, cache), cold_start(path, args.device, cache))
            print(f"{name}: fresh process to first result {cold[name][0]:.2f} s (empty caches), "
                  f"{cold[name][1]:.2f} s (warm)", flush=True)
    section = table(rows, command.strip(), cold, args.ort_spin, load)
    if args.json:
        print(json.dumps({"rows": rows, "cold": cold}, indent=2, default=str))
    if args.write:
        write_section(START, END, section)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
