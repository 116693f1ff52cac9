"""Tuned vs untuned: end-to-end latency (median, p90) per model in one process, and the tuning time.

    python -m bench.bench_tuning                               # EfficientNet-Lite0 and MobileNetV2 on PoCL
    python -m bench.bench_tuning --budget 240 --write          # also write the Tuning section of RESULTS.md
    python3 bench/bench_tuning.py --models A.onnx B.onnx --device gpu --json out.json

Each model is tuned into a fresh compiled-program file; then an untuned session (device defaults) and a tuned
one (records applied) share that file, and their runs alternate with the same input and pause between runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's packages

from bench.results_md import RESULTS, write_section  # noqa: E402

START, END = "<!-- tuning:start -->", "<!-- tuning:end -->"
MODELS = ("efficientnet_lite0", "mobilenet_v2")


def model_path(spec: str, directory: Path) -> Path:
    """An ONNX path as given, or a model of bench/models.py exported once into directory."""
    if spec.endswith(".onnx"):
        return Path(spec)
    from bench import models

    return getattr(models, spec)(directory)


def device_records(program_file: str, device: object) -> dict[str, dict]:
    """The tuned records of this device's section of a compiled-program file."""
    from clmace.store import DeviceFingerprint, read_file

    section = read_file(program_file).sections.get(DeviceFingerprint.from_cl_device(device).key())
    return dict(section.tuned) if section else {}


def measure(path: Path, device: str, program_file: str, runs: int, warmup: int, gap: float) -> dict:
    """Alternating runs of an untuned and a tuned session on one compiled-program file."""
    from clmace import InferenceSession

    untuned = InferenceSession(path, device=device, compiled_program=program_file, tuned=False)
    tuned = InferenceSession(path, device=device, compiled_program=program_file)
    shape = tuple(int(d) for d in untuned.get_inputs()[0].shape)
    feed = {untuned.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    sessions = {"untuned": untuned, "tuned": tuned}
    for _ in range(warmup):
        for sess in sessions.values():
            sess.run(None, feed)
    for sess in sessions.values():
        sess.wait_saved()
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for i in range(runs):
        order = list(sessions.items()) if i % 2 == 0 else list(sessions.items())[::-1]
        for name, sess in order:
            time.sleep(gap)
            start = time.perf_counter()
            sess.run(None, feed)
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, sess in sessions.items():
        rt = sess.runtime
        rt.profiling = True
        rt.run(feed)
        device_ms = sum(row[3] for row in rt.node_times()) * 1e3
        out[name] = {"median_ms": float(np.median(times[name])) * 1e3,
                     "p90_ms": float(np.percentile(times[name], 90)) * 1e3, "device_ms": device_ms,
                     "profile": rt.profile_table(top=5)}
    out["max_abs_diff"] = float(np.abs(untuned.run(None, feed)[0] - tuned.run(None, feed)[0]).max())
    out["records_used"] = tuned.runtime.plan.records_used
    out["device"] = tuned.runtime.device_info.name
    out["records"] = device_records(program_file, tuned.runtime.plan.device)
    return out


def bench_model(spec: str, args: argparse.Namespace, directory: Path) -> dict:
    """Tune one model into a fresh file, then measure untuned vs tuned."""
    from clmace.workflow.tune import tune_model

    path = model_path(spec, directory)
    program_file = str(directory / f"{path.stem}.{args.device.replace(':', '_')}.clmace")
    if os.path.exists(program_file) and not args.keep:
        os.remove(program_file)
    outcome = tune_model(str(path), program_file, args.device, budget=args.budget, seed=args.seed)
    r = outcome.report
    row = measure(path, args.device, program_file, args.runs, args.warmup, args.gap_ms / 1e3)
    row.update(model=path.stem, tuning_s=r.seconds, tuning_total_s=outcome.seconds, keys=r.total,
               tuned_keys=len(r.results), resumed=r.resumed, budget_spent=r.out_of_budget,
               device_gain=r.gain(), failures=len(r.failures), failure_examples=r.failures[:8],
               context_lost=r.context_lost, reverted=len(r.reverted),
               in_model_device_ms=(outcome.untuned_device_s * 1e3, outcome.tuned_device_s * 1e3))
    return row


def section(rows: list[dict], command: str) -> str:
    """The markdown Tuning section of RESULTS.md."""
    from clmace.workflow.tune import render_summary

    lines = [START, "## Tuning: tuned vs untuned end-to-end latency", "",
             f"{datetime.date.today().isoformat()}; device: {rows[0]['device']}. Command: `{command}`.", "",
             "Untuned = device defaults (CPU: the PoCL-shaped kernels, one work-item per group); tuned = records "
             "of `clmace tune` applied at plan time. Both sessions share one compiled-program file and alternate "
             "runs in one process. Device time: OpenCL profiling events of one run, summed over launches. "
             "'Set back': choices that won in isolation but not inside the model, returned to the default by the "
             "in-model check.", "",
             "| model | untuned median | untuned p90 | tuned median | tuned p90 | speed-up (median) | device time "
             "untuned / tuned | tuning time | keys tuned | max abs diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        u, t = r["untuned"], r["tuned"]
        lines.append(f"| {r['model']} | {u['median_ms']:.2f} ms | {u['p90_ms']:.2f} ms | {t['median_ms']:.2f} ms | "
                     f"{t['p90_ms']:.2f} ms | {u['median_ms'] / t['median_ms']:.2f}x | {u['device_ms']:.2f} / "
                     f"{t['device_ms']:.2f} ms | {r['tuning_s']:.0f} s{' (budget spent)' if r['budget_spent'] else ''}"
                     f" | {r['tuned_keys']} of {r['keys']} ({r['reverted']} set back) | {r['max_abs_diff']:.1e} |")
    lines += ["", "What won (per kernel family: records, summed default -> tuned device time of the tuned launch "
              "keys, chosen variant and local size x count):", ""]
    for r in rows:
        lines += [f"{r['model']}:", "```", *render_summary(r["records"], indent=""), "```"]
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Tune and measure each model; print, and optionally write JSON and the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="bench/models.py names or .onnx paths")
    parser.add_argument("--device", default="opencl", help="opencl, gpu or opencl:N")
    parser.add_argument("--budget", type=float, default=None, help="tuning budget per model in seconds (default none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per session (default 40)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="pause before every timed run (default 5)")
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "clmace-bench-models"))
    parser.add_argument("--keep", action="store_true", help="resume from an existing file in --model-dir")
    parser.add_argument("--json", help="write every number (and the records) to this file")
    parser.add_argument("--write", action="store_true", help=f"update the Tuning section of {RESULTS.name}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped candidate")
    args = parser.parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = "python -m bench.bench_tuning " + " ".join(argv if argv is not None else sys.argv[1:])
    directory = Path(args.model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.models:
        r = bench_model(spec, args, directory)
        rows.append(r)
        u, t = r["untuned"], r["tuned"]
        print(f"{r['model']} on {r['device']}: untuned {u['median_ms']:.2f} ms (p90 {u['p90_ms']:.2f}) | tuned "
              f"{t['median_ms']:.2f} ms (p90 {t['p90_ms']:.2f}) | {u['median_ms'] / t['median_ms']:.2f}x | device "
              f"{u['device_ms']:.2f} -> {t['device_ms']:.2f} ms | tuning {r['tuning_s']:.1f} s, {r['tuned_keys']} of "
              f"{r['keys']} keys | diff {r['max_abs_diff']:.1e}", flush=True)
        if r["context_lost"]:
            print(f"  device context lost (resumed on a fresh one) after: {r['context_lost']}", flush=True)
        for text in r["failure_examples"]:
            print(f"  skipped: {text}", flush=True)
        for name in ("untuned", "tuned"):
            print(f"{name}:\n{r[name]['profile']}", flush=True)
    text = section(rows, command.strip())
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    if args.write:
        write_section(START, END, text)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
