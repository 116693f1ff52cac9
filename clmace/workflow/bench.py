"""Benchmarks: cold/warm start in fresh processes, steady-state latency vs onnxruntime, memory, per-op profile."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from clmace.core.errors import ClmaceError
from clmace.workflow.validate import is_converted, make_inputs

# Progress callback: (finished steps, total steps, label).
Progress = Callable[[int, int, str], None]

# Runs in a fresh interpreter; the clock starts before `import clmace`, so import cost is measured too.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
args = json.loads(sys.argv[1])
import numpy as np
if args["engine"] == "onnxruntime":
    import onnxruntime as ort
    t1 = time.perf_counter()
    sess = ort.InferenceSession(args["model"], providers=["CPUExecutionProvider"])
    inputs = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape], i.type) for i in sess.get_inputs()]
else:
    import clmace
    t1 = time.perf_counter()
    sess = clmace.InferenceSession(args["model"], device=args["device"], precision=args["precision"],
                                   input_shapes=args["shapes"] or None)
    inputs = [(v.name, list(v.shape), str(v.dtype)) for v in sess.graph.inputs]
t2 = time.perf_counter()
rng = np.random.default_rng(0)
feeds = {}
for name, shape, dtype in inputs:
    shape = args["shapes"].get(name, shape)
    float_input = "float" in dtype or dtype.startswith("tensor(float")
    feeds[name] = rng.uniform(-1, 1, shape).astype(np.float32) if float_input else np.zeros(shape, np.int64)
sess.run(None, feeds)
t3 = time.perf_counter()
sess.run(None, feeds)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "session_s": t2 - t1, "first_run_s": t3 - t2, "second_run_s": t4 - t3,
                  "to_first_result_s": t3 - t0}))
"""


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def fresh_process(model_path: str, device: str, env_dirs: Mapping[str, str | None], engine: str = "clmace",
                  precision: str = "fp32", input_shapes: Mapping[str, Sequence[int]] | None = None,
                  timeout: float = 900.0) -> dict:
    """Start-up figures (import, session, first run) of one new interpreter, plus its whole wall time.

    env_dirs: variables to set in the child; a None value removes the variable.
    """
    env = {k: v for k, v in dict(os.environ, **env_dirs).items() if v is not None}
    # The child must import this very clmace, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    args = {"engine": engine, "model": os.path.abspath(model_path), "device": device, "precision": precision,
            "shapes": {k: list(v) for k, v in (input_shapes or {}).items()}}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise ClmaceError(f"fresh {engine} process on {device} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    result["stderr"] = proc.stderr.strip()[-2000:]
    return result


def startup(model_path: str, device: str, compare_onnxruntime: bool = True, precision: str = "fp32",
            input_shapes: Mapping[str, Sequence[int]] | None = None, progress: Progress | None = None,
            keep_cache: str | None = None) -> dict:
    """Cold start (a fresh CLMACE_CACHE_DIR, so a fresh PoCL cache too) then warm start (the same dir again).

    keep_cache: copy the CLMACE_CACHE_DIR the processes used (the compiled-program file) there.
    """
    from clmace.store.capture import pocl

    out: dict[str, Any] = {}
    root = tempfile.mkdtemp(prefix="clmace-bench-")
    # POCL_CACHE_DIR is removed so that clmace manages PoCL's cache for the fresh CLMACE_CACHE_DIR, as it does
    # for users who did not set it (a parent that ran clmace would otherwise pass on the one it manages).
    dirs: dict[str, str | None] = {"CLMACE_CACHE_DIR": os.path.join(root, "clmace"), "POCL_CACHE_DIR": None}
    pocl_dir = pocl.managed_dir(dirs["CLMACE_CACHE_DIR"])
    baseline = compare_onnxruntime and not is_converted(model_path) and importlib.util.find_spec("onnxruntime")
    steps = ["cold", "warm"] + (["onnxruntime"] if baseline else [])
    try:
        for i, step in enumerate(steps):
            if progress:
                progress(i, len(steps), f"fresh process: {step}")
            os.makedirs(dirs["CLMACE_CACHE_DIR"], exist_ok=True)
            engine = "onnxruntime" if step == "onnxruntime" else "clmace"
            out[step] = fresh_process(model_path, device, dirs, engine, precision, input_shapes)
            if step == "cold":  # what the cold run left behind is what the warm run can reuse
                caches = {"CLMACE_CACHE_DIR": dirs["CLMACE_CACHE_DIR"], "POCL_CACHE_DIR": pocl_dir}
                out["cache_files"] = {name: sorted(os.listdir(d)) if os.path.isdir(d) else []
                                      for name, d in caches.items()}
                out["cache_bytes"] = {name: _dir_bytes(d) for name, d in caches.items()}
        if keep_cache:
            shutil.copytree(dirs["CLMACE_CACHE_DIR"], keep_cache, dirs_exist_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pocl_dir, ignore_errors=True)
    if progress:
        progress(len(steps), len(steps), "fresh processes done")
    return out


def stats(samples_s: Sequence[float], batch: int = 1) -> dict:
    """Median, p90, p99, mean, min, max (ms) and throughput (inferences/s) of latency samples (s)."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "throughput_per_s": float(batch * len(ms) / (ms.sum() / 1e3)),
            "samples_ms": [round(float(x), 4) for x in ms]}


def session_runtime(sess) -> Any:
    """The runtime object behind an InferenceSession (None before its first plan)."""
    runtime = getattr(sess, "runtime", None)
    if runtime is None:
        runtime = next(iter(getattr(sess, "_runtimes", {}).values()), None)
    return runtime


def cpu_node_profile(sess, feeds: Mapping[str, np.ndarray], repeats: int = 3) -> list[dict]:
    """Per-node wall time on the NumPy runtime, from its per-node hook (mean over repeats)."""
    runtime = session_runtime(sess)
    ops = {n.name: n.op_type + (f"+{n.attrs['activation']}" if n.attrs.get("activation") else "")
           for n in sess.graph.nodes}
    totals: dict[str, float] = {}
    last = [0.0]  # when the previous node finished: a node's time is the gap between two hook calls

    def hook(name: str, outputs: list[str], arrays: list[np.ndarray]) -> None:
        now = time.perf_counter()
        totals[name] = totals.get(name, 0.0) + now - last[0]
        last[0] = now

    for _ in range(repeats):
        last[0] = time.perf_counter()
        runtime.run(feeds, hook=hook)
    return [{"node": k, "op": ops.get(k, "?"), "ms": v * 1e3 / repeats} for k, v in totals.items()]


def opencl_profile(sess, feeds: Mapping[str, np.ndarray], repeats: int = 3) -> tuple[list[dict] | None, str | None]:
    """Per-node device time from the OpenCL runtime's profiling events (mean over repeats), and its table."""
    runtime = session_runtime(sess)
    if not hasattr(runtime, "node_times"):
        return None, runtime.profile_table() if hasattr(runtime, "profile_table") else None
    totals: dict[str, dict] = {}
    profiling, runtime.profiling = runtime.profiling, True  # these runs keep their events
    try:
        for _ in range(repeats):
            sess.run(None, feeds)
            for node, op, where, seconds in runtime.node_times():  # one row per launch: a node may have several
                rec = totals.setdefault(node, {"node": node, "op": op, "where": where, "ms": 0.0})
                rec["ms"] += seconds * 1e3 / repeats
        return list(totals.values()), runtime.profile_table()
    finally:
        runtime.profiling = profiling


def profile_summary(records: Sequence[dict], top: int = 15) -> dict:
    """Top nodes by time and share of time per op type."""
    total = sum(r["ms"] for r in records) or 1.0
    nodes = sorted(records, key=lambda r: -r["ms"])
    by_op: dict[str, float] = {}
    for r in records:
        by_op[r["op"]] = by_op.get(r["op"], 0.0) + r["ms"]
    return {"total_ms": total, "top_nodes": [{**r, "share": r["ms"] / total} for r in nodes[:top]],
            "by_op": [{"op": k, "ms": v, "share": v / total} for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])]}


def _ort_session(model_path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])


def steady_state(model_path: str, device: str, runs: int = 50, warmup: int = 5, compare_onnxruntime: bool = True,
                 precision: str = "fp32", input_shapes: Mapping[str, Sequence[int]] | None = None,
                 progress: Progress | None = None) -> dict:
    """Latency after warm-up; clmace and onnxruntime runs alternate so background noise hits both alike."""
    from clmace.session import InferenceSession

    sess = InferenceSession(model_path, device=device, precision=precision, input_shapes=input_shapes)
    feeds = make_inputs(sess.graph.inputs, seed=0)
    out: dict[str, Any] = {"notes": []}
    ort = None
    if compare_onnxruntime and is_converted(model_path):
        out["notes"].append("a converted-model file has no onnxruntime baseline: benchmark the .onnx for one")
    elif compare_onnxruntime:
        ort = _ort_session(model_path)
        if ort is None:
            out["notes"].append("onnxruntime is not installed: no baseline (pip install onnxruntime)")
    sess.run(None, feeds)  # plans dynamic shapes; the store then reads binaries (PoCL compiles) on a thread
    sess.wait_saved()
    engines: list[tuple[str, Callable[[], Any]]] = [("clmace", lambda: sess.run(None, feeds))]
    if ort is not None:
        engines.append(("onnxruntime", lambda: ort.run(None, feeds)))
    times: dict[str, list[float]] = {name: [] for name, _ in engines}
    total = warmup + runs
    for i in range(total):
        if progress:
            progress(i, total, "warm-up" if i < warmup else "timed runs")
        order = engines if i % 2 == 0 else engines[::-1]
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    if progress:
        progress(total, total, "timed runs done")
    batch = int(next(iter(feeds.values())).shape[0]) if feeds and next(iter(feeds.values())).ndim else 1
    out.update({name: stats(t, batch) for name, t in times.items()})
    runtime = session_runtime(sess)
    out["device_name"] = getattr(runtime, "device_name", device) if runtime is not None else device
    peak = runtime.peak_memory_bytes() if hasattr(runtime, "peak_memory_bytes") else None
    out["peak_device_memory_bytes"] = peak
    # ru_maxrss is KiB on Linux: the whole process, onnxruntime included; a host-side upper bound.
    out["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device == "cpu":
        records, table = cpu_node_profile(sess, feeds), None
        out["profile_source"] = "NumPy runtime per-node wall time"
    else:
        records, table = opencl_profile(sess, feeds)
        out["profile_source"] = "OpenCL profiling events (host-fallback nodes: wall time)"
    out["profile"] = profile_summary(records) if records else None
    out["profile_table"] = table
    if hasattr(runtime, "node_devices"):
        out["fallback_nodes"] = [name for name, where in runtime.node_devices().items() if where == "cpu"]
    for attr, key in (("memory_report", "memory"), ("program_count", "programs")):
        if hasattr(runtime, attr):
            out[key] = getattr(runtime, attr)()
    if hasattr(runtime, "setup_seconds"):
        out["setup_seconds"] = runtime.setup_seconds
    store = getattr(getattr(runtime, "builder", None), "store", None)
    if getattr(store, "rejections", None):
        out["store_rejections"] = [str(r) for r in store.rejections]
    return out


def bench(model_path: str, device: str = "cpu", runs: int = 50, warmup: int = 5, compare_onnxruntime: bool = True,
          fresh_process: bool = True, precision: str = "fp32",
          input_shapes: Mapping[str, Sequence[int]] | None = None, progress: Progress | None = None,
          keep_cache: str | None = None) -> dict:
    """Start-up (cold/warm, fresh processes), steady-state latency, throughput, memory and per-op profile."""
    if runs < 1:
        raise ClmaceError(f"--runs must be at least 1, got {runs}")
    result: dict[str, Any] = {"model": model_path, "device": device, "precision": precision, "runs": runs,
                              "warmup": warmup}
    t0 = time.perf_counter()
    if fresh_process:
        result["startup"] = startup(model_path, device, compare_onnxruntime, precision, input_shapes, progress,
                                    keep_cache)
    result["steady"] = steady_state(model_path, device, runs, warmup, compare_onnxruntime, precision,
                                    input_shapes, progress)
    result["seconds"] = time.perf_counter() - t0
    return result


def render(result: dict) -> str:
    """Human-readable summary of bench()'s result."""
    lines = [f"bench {result['model']} on {result['device']} ({result['runs']} runs after {result['warmup']} "
             "warm-ups)"]
    for step, r in (result.get("startup") or {}).items():
        if isinstance(r, dict) and "process_s" in r:
            lines.append(f"  start-up {step:<12} import {r['import_s'] * 1e3:7.0f} ms  session "
                         f"{r['session_s'] * 1e3:7.0f} ms  first run {r['first_run_s'] * 1e3:7.0f} ms  "
                         f"process {r['process_s']:.2f} s")
    steady = result["steady"]
    for engine in ("clmace", "onnxruntime"):
        s = steady.get(engine)
        if s:
            lines.append(f"  {engine:<12} median {s['median_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f}  p99 "
                         f"{s['p99_ms']:8.2f}  {s['throughput_per_s']:8.1f} inf/s")
    if steady.get("peak_device_memory_bytes"):
        lines.append(f"  peak device memory {steady['peak_device_memory_bytes'] / 2**20:.1f} MiB")
    prof = steady.get("profile")
    if prof:
        lines.append(f"  top nodes ({steady['profile_source']}):")
        top = prof["top_nodes"][:8]
        node_w = max([len(r["node"]) for r in top] + [4])  # columns as wide as the longest name, never cut
        op_w = max([len(r["op"]) for r in top] + [2])
        lines += [f"    {r['node']:<{node_w}} {r['op']:<{op_w}} {r['ms']:8.3f} ms {r['share']:6.1%}" for r in top]
    lines += [f"  note: {n}" for n in steady.get("notes", [])]
    return "\n".join(lines)
