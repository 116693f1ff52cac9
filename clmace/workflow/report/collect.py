"""Runs the workflow steps (analyse, convert, validate, bench, inspect) and gathers what the report shows."""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import clmace
from clmace.core.errors import ModelError
from clmace.workflow.report.sysinfo import device_info
from clmace.workflow.report.troubleshoot import troubleshoot

PROGRAM_FILE_NAME = "compiled_programs.clmace"  # mirrors clmace.store.store.PROGRAM_FILE_NAME


def _program_file(cache_dir: str, device: str, fresh_process: bool, bench_ran: bool) -> dict:
    """The compiled-program file the cold-start process wrote, described by clmace.workflow.inspect."""
    if device == "cpu":
        return {"produced": False, "reason": "the cpu device runs clmace's NumPy runtime, which compiles no "
                "OpenCL programs, so no compiled-program file is produced. Run with --device opencl."}
    if not fresh_process:
        return {"produced": False, "reason": "start-up was not measured in fresh processes (--no-fresh-process), "
                "so no process wrote a compiled-program file into a fresh CLMACE_CACHE_DIR."}
    if not bench_ran:
        return {"produced": False, "reason": "the benchmark step, whose cold-start process writes the file, failed.",
                "consequence": True}
    found = [os.path.join(d, f) for d, _, files in os.walk(cache_dir) for f in files
             if f == PROGRAM_FILE_NAME or f.endswith(".clmace")]
    if not found:
        listing = sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []
        return {"produced": False, "reason": "the cold-start process left no compiled-program file in its "
                f"CLMACE_CACHE_DIR (contents: {listing or 'empty'})."}
    path = found[0]
    out: dict[str, Any] = {"produced": True, "path": os.path.basename(path), "size_bytes": os.path.getsize(path)}
    try:
        from clmace.workflow.inspect import inspect_path
    except ImportError:
        out["inspect_error"] = "clmace.workflow.inspect is not available in this build, so the file's contents " \
                               "are not listed"
        return out
    try:
        out["inspect"] = inspect_path(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is a finding, not a crash
        out["inspect_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _model_info(model: str, shapes: dict) -> dict:
    """clmace.workflow.info's model_info, with FLOPs from a dry run when static shape inference left dims unknown."""
    from clmace.frontend.convert import build_graph
    from clmace.frontend.shapes import dry_run_shapes
    from clmace.workflow.analysis import total_flops
    from clmace.workflow.info import model_info

    info = model_info(model, shapes or None)
    inputs = {t["name"]: t["shape"] for t in info["inputs"]}
    if info["optimized"].get("flops") is None and all(isinstance(d, int) for s in inputs.values() for d in s):
        graph, _ = build_graph(model, shapes or None)
        dry_run_shapes(graph, inputs)  # runs the graph once on zeros: every value gets a concrete shape
        info["optimized"]["flops"] = total_flops(graph)
        info["flops_source"] = "measured shapes (dry run)"
    return info


class _Steps:
    """Times each workflow step, records failures, and drives the progress bars."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.records: list[dict] = []
        self.progress = progress
        self.main = progress.add_task("report", total=total) if progress else None
        self.detail = progress.add_task("", total=1, visible=False) if progress else None

    def sub_progress(self, done: int, total: int, label: str) -> None:
        """Progress callback for long steps (bench runs, fresh processes)."""
        if self.progress is not None:
            self.progress.update(self.detail, completed=done, total=total, description=f"  {label}", visible=True)

    def run(self, name: str, fn: Callable[[], Any], detail: Callable[[Any], str] = lambda r: "") -> Any:
        """Run one step; on failure record the error and return None."""
        if self.progress is not None:
            self.progress.update(self.main, description=name)
        start = time.perf_counter()
        try:
            result = fn()
            record = {"name": name, "status": "ok", "detail": detail(result)}
        except Exception as exc:  # noqa: BLE001 - one failed step must not lose the rest of the report
            result = None
            record = {"name": name, "status": "failed", "detail": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=4)}
        record["seconds"] = time.perf_counter() - start
        self.records.append(record)
        if self.progress is not None:
            self.progress.update(self.detail, visible=False)
            self.progress.advance(self.main)
        return result


def _validate_detail(v: Any) -> str:
    return ("PASS" if v.passed else "FAIL") + f" (cosine >= {v.threshold})" + \
        (f"; {len(v.layers)} layers compared" if v.layers is not None else "")


def collect(model: str, device: str = "cpu", runs: int = 50, warmup: int = 5, precision: str = "fp32",
            layers: bool = True, fresh_process: bool = True, compare_onnxruntime: bool = True,
            input_shapes: Mapping[str, Sequence[int]] | None = None, command: str | None = None,
            show_progress: bool = True) -> dict:
    """Run every step on model/device and return the report data (plain dicts)."""
    if not os.path.isfile(model):
        raise ModelError(f"model file not found: {model}")
    data: dict[str, Any] = {
        "overview": {"project": "clmace", "version": clmace.__version__, "model": os.path.basename(model),
                     "device": device, "precision": precision,
                     "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                     "command": command or shlex.join(["python", "-m", "clmace", *sys.argv[1:]])},
        "device": device_info(device)}
    shapes = dict(input_shapes or {})
    work = tempfile.mkdtemp(prefix="clmace-report-")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), disable=not show_progress)
    try:
        with progress:
            data["steps"] = _run_steps(data, model, device, runs, warmup, precision, layers, fresh_process,
                                       compare_onnxruntime, shapes, work, progress if show_progress else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data["troubleshooting"] = troubleshoot(data)
    return data


def _run_steps(data: dict, model: str, device: str, runs: int, warmup: int, precision: str, layers: bool,
               fresh_process: bool, compare_onnxruntime: bool, shapes: dict, work: str,
               progress: Progress | None) -> list[dict]:
    """Run the five workflow steps, filling data; return the step records."""
    from clmace.frontend.convert import convert
    from clmace.workflow.bench import bench
    from clmace.workflow.validate import validate

    steps = _Steps(progress, 5)
    data["model"] = steps.run("analyse model", lambda: _model_info(model, shapes),
                              lambda i: f"{i['optimized']['nodes']} nodes after passes")
    converted = os.path.join(work, os.path.splitext(os.path.basename(model))[0] + ".clmace")
    conv = steps.run("convert", lambda: convert(model, converted, shapes or None),
                     lambda r: f"{r['nodes_before']} -> {r['nodes_after']} nodes, "
                               f"{os.path.getsize(converted) / 2**20:.1f} MiB converted-model file")
    data["converted_bytes"] = os.path.getsize(converted) if conv is not None else None
    v = steps.run("validate", lambda: validate(model, device, precision=precision, layers=layers,
                                               input_shapes=shapes or None,
                                               csv_path=os.path.join(work, "layers.csv")), _validate_detail)
    data["validation"] = v.to_dict() if v is not None else None
    cache = os.path.join(work, "clmace-cache")
    data["bench"] = steps.run("bench", lambda: bench(model, device, runs, warmup, compare_onnxruntime,
                                                     fresh_process, precision, shapes or None,
                                                     steps.sub_progress, keep_cache=cache),
                              lambda b: f"median {b['steady']['clmace']['median_ms']:.2f} ms over {runs} runs")
    data["program_file"] = steps.run("inspect compiled-program file",
                                     lambda: _program_file(cache, device, fresh_process, data["bench"] is not None),
                                     lambda p: "found" if p["produced"] else "not produced")
    return steps.records
