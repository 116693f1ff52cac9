"""The `validate`, `bench` and `report` subcommands: parsing and printing only."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from clmace.cli.args import shape_arg
from clmace.core.errors import ClmaceError

EXAMPLES = {
    "validate": "clmace validate model.onnx --device opencl\n"
                "  clmace validate model.clmace --reference model.onnx --layers --csv layers.csv\n"
                "  clmace validate --config deploy.yml --input-dir inputs/",
    "bench": "clmace bench model.onnx --device opencl --runs 50\n  clmace bench model.onnx --runs 5 --json",
    "report": "python -m clmace report model.onnx --device opencl -o report.html\n"
              "  python -m clmace report model.onnx --device cpu --format md -o report.md",
}
DEVICE_HELP = "cpu, opencl, gpu or opencl:N (default: cpu)"


def _shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    return shape_arg(items)


def _ranges(items: list[str] | None) -> dict[str, tuple[float, float]]:
    ranges = {}
    for item in items or []:
        name, _, bounds = item.rpartition("=")
        try:
            lo, hi = (float(x) for x in bounds.split(","))
        except ValueError as exc:
            raise ClmaceError(f"--range {item!r}: expected NAME=LOW,HIGH") from exc
        ranges[name] = (lo, hi)
    return ranges


@contextmanager
def _progress(enabled: bool):
    """A rich progress bar on stderr, and the (done, total, label) callback that drives it."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=1)
        yield lambda done, total, label: bar.update(task, completed=done, total=total, description=label)


def cmd_validate(args: argparse.Namespace) -> int:
    """Compare clmace with onnxruntime; exit 0 when every output passes, 1 otherwise."""
    from clmace.workflow.validate import validate

    jobs: list[dict[str, Any]] = []
    if args.config:
        from clmace.workflow.config import load_config

        for cfg in load_config(args.config):
            cfg.verify_checksum()
            jobs.append({"model_path": cfg.model_file_path, "device": args.device or cfg.device(),
                         "precision": args.precision or cfg.data_type,
                         "thresholds": args.threshold if args.threshold is not None else cfg.validation_threshold,
                         "ranges": {**{t.name: t.value_range for t in cfg.inputs}, **_ranges(args.range)},
                         "input_shapes": cfg.input_shapes() or None})
    elif args.model:
        jobs.append({"model_path": args.model, "device": args.device or "cpu", "precision": args.precision or "fp32",
                     "thresholds": args.threshold, "ranges": _ranges(args.range),
                     "input_shapes": _shapes(args.input_shape) or None, "reference": args.reference})
    else:
        raise ClmaceError("validate needs a MODEL or --config FILE")
    results = [validate(**job, input_dir=args.input_dir, layers=args.layers or bool(args.csv), seed=args.seed,
                        csv_path=args.csv) for job in jobs]
    if args.json:
        out = [r.to_dict() for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
    else:
        print("\n\n".join(r.render() for r in results))
    return 0 if all(r.passed for r in results) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure start-up, latency, throughput, memory and the per-op profile."""
    from clmace.workflow.bench import bench, render

    with _progress(not args.json and sys.stderr.isatty()) as progress:
        result = bench(args.model, args.device, args.runs, args.warmup, not args.no_onnxruntime,
                       not args.no_fresh_process, args.precision, _shapes(args.input_shape) or None, progress)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Run the workflow on a model and write one self-contained report page."""
    from clmace.workflow.report import make_report

    output = args.output or ("report.md" if args.format == "md" else "report.html")
    command = shlex.join(["python", "-m", "clmace", *sys.argv[1:]]) if sys.argv[1:2] == ["report"] else None
    data = make_report(args.model, args.device, output, args.format, runs=args.runs, warmup=args.warmup,
                       precision=args.precision, layers=not args.no_layers, fresh_process=not args.no_fresh_process,
                       compare_onnxruntime=not args.no_onnxruntime, input_shapes=_shapes(args.input_shape) or None,
                       command=command, show_progress=not args.quiet)
    failed = [s["name"] for s in data["steps"] if s["status"] != "ok"]
    v = data.get("validation")
    print(f"report written to {output}" + (f"; failed steps: {', '.join(failed)}" if failed else "")
          + ("" if v is None else f"; validation {'PASS' if v['passed'] else 'FAIL'}"))
    return 0


def _parser(sub: Any, name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text, epilog="example:\n  " + EXAMPLES[name],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=fn)
    return p


def _common(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    p.add_argument("model", nargs=None if model_required else "?", help=".onnx (or converted-model) file")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix a dynamic input's shape")


def register(sub: Any, add: Callable | None = None) -> None:
    """Add validate, bench and report to the `clmace` subparsers (add is cli.py's helper, unused: own examples)."""
    p = _parser(sub, "validate", cmd_validate, "Compare clmace's outputs (and layers) with onnxruntime's.")
    _common(p, model_required=False)
    p.add_argument("--reference", help="ONNX model onnxruntime runs (default: MODEL; needed for converted files)")
    p.add_argument("--config", help="MACE-style deploy YAML: models, ranges, thresholds, runtime")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--precision", default=None, choices=["fp32", "fp16"], help="OpenCL storage precision")
    p.add_argument("--input-dir", help="directory of <input name>.npy files (default: random inputs)")
    p.add_argument("--range", action="append", metavar="NAME=LOW,HIGH", help="random input range (default -1,1)")
    p.add_argument("--threshold", type=float, help="cosine threshold (default 0.999 cpu, 0.995 opencl, 0.99 fp16)")
    p.add_argument("--layers", action="store_true", help="also compare every intermediate tensor clmace keeps")
    p.add_argument("--csv", help="per-layer CSV path (implies --layers; default <model>_layers.csv)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _parser(sub, "bench", cmd_bench, "Benchmark start-up (fresh processes), latency and per-op time.")
    _common(p)
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="OpenCL storage precision")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    p.add_argument("--no-onnxruntime", action="store_true", help="skip the onnxruntime baseline")
    p.add_argument("--no-fresh-process", action="store_true", help="skip the cold/warm start-up processes")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")

    p = _parser(sub, "report", cmd_report, "Run convert, validate and bench; write a self-contained report.")
    _common(p)
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("-o", "--output", help="output file (default report.html, or report.md with --format md)")
    p.add_argument("--format", default="html", choices=["html", "md"], help="page format")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="OpenCL storage precision")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer comparison")
    p.add_argument("--no-fresh-process", action="store_true", help="skip the cold/warm start-up processes")
    p.add_argument("--no-onnxruntime", action="store_true", help="skip the onnxruntime baseline")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
