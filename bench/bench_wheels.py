"""Real models from PyPI wheels (bench/wheels.py) on the CPU: clmace on OpenCL (PoCL) vs onnxruntime, in one
process, runs alternating between the engines; medians, p90, the ratio per model and its geometric mean; the
launches and host nodes of each plan; the largest output difference.

    python -m bench.bench_wheels [--models ppocr_cls ...] [--runs 40] [--write]

onnxruntime: CPUExecutionProvider with its worker threads not spinning (they would take both cores from the
clmace run that follows). Inputs: random, seed 0, dynamic dimensions as in tests/models/test_wheel_models.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import numpy as np

SHAPES = {"ppocr_det": [1, 3, 320, 320], "ppocr_rec": [1, 3, 48, 320], "ppocr_cls": [1, 3, 48, 192],
          "captcha_ocr": [1, 1, 64, 160], "magika": None, "layout_cdla": None, "doc_orientation": [1, 3, 224, 224],
          "table_slanet": [1, 3, 488, 488], "oww_melspec": [1, 16000], "oww_embedding": [1, 76, 32, 1],
          "oww_mycroft": [1, 16, 96]}
MODELS = tuple(SHAPES)


def _feeds(sess, name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in sess.get_inputs():
        shape = SHAPES.get(name) or [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
        if "float" in arg.type:
            feeds[arg.name] = rng.random(shape).astype(np.float32)
        else:
            dtype = np.int32 if "int32" in arg.type else np.int64
            feeds[arg.name] = rng.integers(0, 256, shape).astype(dtype)
    return feeds


def measure(name: str, runs: int, warmup: int) -> dict:
    import onnxruntime as ort

    import clmace
    from bench.wheels import wheel_model

    path = str(wheel_model(name))
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # shape-merge warnings of exporter output, once per run
    theirs = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = _feeds(theirs, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = clmace.InferenceSession(path, device="opencl")
        got = ours.run(None, feeds)
    ours.wait_saved()  # PoCL compiles while the store reads binaries: not inside the timed runs
    want = theirs.run(None, feeds)
    times: dict[str, list[float]] = {"clmace": [], "onnxruntime": []}
    engines = {"clmace": lambda: ours.run(None, feeds), "onnxruntime": lambda: theirs.run(None, feeds)}
    for _ in range(warmup):
        for fn in engines.values():
            fn()
    for r in range(runs):
        for label in (("clmace", "onnxruntime") if r % 2 == 0 else ("onnxruntime", "clmace")):
            time.sleep(0.005)
            start = time.perf_counter()
            engines[label]()
            times[label].append(time.perf_counter() - start)
    runtime = ours.runtime
    devices = runtime.node_devices()
    out = {k: {"median_ms": float(np.median(v)) * 1e3, "p90_ms": float(np.percentile(v, 90)) * 1e3}
           for k, v in times.items()}
    out.update(ratio=out["clmace"]["median_ms"] / out["onnxruntime"]["median_ms"],
               launches=len(runtime.plan.steps), host_nodes=sum(d == "cpu" for d in devices.values()),
               max_abs_diff=max(float(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)).max())
                                for g, w in zip(got, want)))
    return out


def _cpu_family() -> str:
    """The CPU family /proc/cpuinfo reports (AMD 25: Zen 3/4, 26: Zen 5), '?' when unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("cpu family")), "?")
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="rewrite the real-model section of bench/RESULTS.md")
    args = parser.parse_args()
    rows = ["| model | clmace median / p90 | onnxruntime median / p90 | ratio (median) | launches | host nodes | "
            "max abs diff |", "|---|---|---|---|---|---|---|"]
    ratios = []
    for name in args.models:
        r = measure(name, args.runs, args.warmup)
        ratios.append(r["ratio"])
        rows.append(f"| {name} | {r['clmace']['median_ms']:.2f} / {r['clmace']['p90_ms']:.2f} ms | "
                    f"{r['onnxruntime']['median_ms']:.2f} / {r['onnxruntime']['p90_ms']:.2f} ms | "
                    f"{r['ratio']:.2f}x | {r['launches']} | {r['host_nodes']} | {r['max_abs_diff']:.1e} |")
        print(rows[-1], flush=True)
    geomean = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
    text = "\n".join(rows) + f"\n\nGeometric mean of the ratios: {geomean:.2f}x (worst {max(ratios):.2f}x)."
    print(text)
    if args.write:
        import os

        from bench.bench_latency import cpu_name
        from bench.results_md import write_section
        from clmace.backends.opencl.runtime import device_info

        info = device_info("opencl")
        host = (f"{len(os.sched_getaffinity(0))}-core {cpu_name()} (family {_cpu_family()}), {info.platform} "
                f"{info.driver_version}, compiling for {info.compile_target or 'its default target'}")

        command = "python -m bench.bench_wheels " + " ".join(sys.argv[1:])
        write_section("<!-- wheels:start -->", "<!-- wheels:end -->",
                      "<!-- wheels:start -->\n## CPU latency on real models from PyPI wheels: clmace (PoCL) vs "
                      f"onnxruntime\n\n{time.strftime('%Y-%m-%d')}; {host}. Command: "
                      f"`{command}`. Same process, alternating runs, 5 ms apart; onnxruntime without spinning "
                      "threads.\n\n" + text + "\n<!-- wheels:end -->")


if __name__ == "__main__":
    main()
