"""Tuning a model into a compiled-program file, tuned records as JSON (export/import), and record summaries."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from clmace.backends.opencl.tuning.search import Progress, Timer, Tuner, TuneReport
from clmace.core.errors import ClmaceError

EXPORT_FORMAT = "clmace-tuning"
MAX_RESTARTS = 3  # fresh device contexts after faulting candidates, per tuning run
EXPORT_VERSION = 1


@dataclass
class TuneOutcome:
    """A tuning run's report, plus the check that a session using the records computes the same outputs."""

    report: TuneReport
    device: str
    records_used: int
    max_abs_diff: float
    seconds: float
    untuned_device_s: float = 0.0  # the whole model's device time per run (median per launch, summed)
    tuned_device_s: float = 0.0


def tune_model(model: Any, output: str, device: str = "opencl", *, budget: float | None = None, seed: int = 0,
               precision: str = "fp32", input_shapes: Mapping[str, Sequence[int]] | None = None,
               progress: Progress | None = None, retune: bool = False, timer: Timer | None = None,
               **session_options: Any) -> TuneOutcome:
    """Tune every launch of `model` on `device` not yet recorded in `output`, save the records there, then
    plan again with them and compare its outputs with the untuned plan's."""
    from clmace.session import InferenceSession

    start = time.perf_counter()
    path = os.path.abspath(output)
    common = dict(device=device, precision=precision, input_shapes=input_shapes, compiled_program=path,
                  **session_options)
    # The tuning session plans with device defaults: every candidate is checked against the default's output.
    lost: list[str] = []
    report: TuneReport | None = None
    for _ in range(1 + MAX_RESTARTS):
        untuned = InferenceSession(model, tuned=False, **common)
        if untuned.runtime is None:
            raise ClmaceError("the model has dynamic input shapes: pass input shapes for each")
        untuned.wait_saved()  # PoCL compiles while the store reads binaries: never inside a timed candidate
        left = None if budget is None else max(0.0, budget - (time.perf_counter() - start))
        tuner = Tuner(untuned.runtime, untuned.program_store.save, budget=left, seed=seed, progress=progress,
                      retune=retune and not lost, timer=timer)
        part = tuner.run()
        report = part if report is None else _merge(report, part)
        if not part.context_lost or part.interrupted:
            break
        # A candidate faulted and took the device context with it (NVIDIA's errors are sticky); its launch
        # key is recorded with the default, so a new session on a fresh context resumes past it.
        lost.append(part.context_lost)
    assert report is not None
    report.context_lost = "; ".join(lost)
    if report.interrupted:  # Ctrl-C: the records are saved; checking them is for the next run
        return TuneOutcome(report, untuned.runtime.device_info.name, 0, float("nan"), time.perf_counter() - start)
    if part.context_lost:  # restarts exhausted: compare on a fresh context
        untuned = InferenceSession(model, tuned=False, **common)
    tuned = InferenceSession(model, **common)  # reads the records just saved; its warm-up saves the programs
    tuned.wait_saved()
    feeds = tuner.feeds()
    model_s = (0.0, 0.0)
    if report.results:
        model_s = validate_in_model(untuned.runtime, tuned.runtime, feeds, report)
        if report.reverted:
            tuned.program_store.save()
            tuned = InferenceSession(model, **common)
    diff = 0.0
    for a, b in zip(untuned.run(None, feeds), tuned.run(None, feeds)):
        if a.dtype.kind == "f":
            diff = max(diff, float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)))
        elif not np.array_equal(a, b):
            diff = float("inf")
    return TuneOutcome(report, untuned.runtime.device_info.name, tuned.runtime.plan.records_used, diff,
                       time.perf_counter() - start, *model_s)


def validate_in_model(untuned: Any, tuned: Any, feeds: Mapping[str, np.ndarray], report: TuneReport,
                      runs: int = 21) -> tuple[float, float]:
    """Time both plans inside whole-model runs (interleaved, median per launch): a key whose tuned choice is
    not faster there than the default goes back to the default (isolated timings can mislead: caches, clocks).
    Returns the model's device time per run, untuned and tuned."""
    from clmace.backends.opencl.tuning.search import MARGIN

    u_steps, t_steps = untuned.plan.steps, tuned.plan.steps
    if len(u_steps) != len(t_steps):
        return 0.0, 0.0
    times: dict[str, list[list[float]]] = {"u": [[] for _ in u_steps], "t": [[] for _ in t_steps]}
    untuned.profiling = tuned.profiling = True  # their launches' times are compared
    for _ in range(runs):
        for name, rt in (("u", untuned), ("t", tuned)):
            rt.run(feeds)
            for i, row in enumerate(rt.node_times()):
                times[name][i].append(row[3])
    med = {name: [float(np.median(t)) for t in rows] for name, rows in times.items()}
    per_key: dict[str, list[float]] = {}
    for i, (u, t) in enumerate(zip(u_steps, t_steps)):
        spec = getattr(t, "spec", None)
        if spec is not None and getattr(t, "tuned", False) and (t.variant, t.lws) != (u.variant, u.lws):
            pair = per_key.setdefault(spec.key, [0.0, 0.0, i])
            pair[0] += med["u"][i]
            pair[1] += med["t"][i]
    results = {r.key: r for r in report.results}
    tuned_total = sum(med["t"])
    for key, (u_s, t_s, i) in per_key.items():
        if t_s <= u_s * (1 - MARGIN):
            continue
        tuned_total -= t_s - u_s
        u = u_steps[int(i)]
        lws = None if u.lws is None else list(u.lws)
        tuned.plan.builder.put_tuned(key, {
            "family": u.spec.family, "variant": u.variant, "kernel": u.kernel.function_name, "lws": lws,
            "us": round(u_s * 1e6, 3), "default_us": round(u_s * 1e6, 3), "node": u.node, "shape": u.spec.shape,
            "reverted": f"in the model {t_s * 1e6:.1f} us for the tuned choice, {u_s * 1e6:.1f} us for the default"})
        report.reverted.append(key)
        if key in results:
            r = results[key]
            r.variant, r.lws, r.best_s = u.variant, u.lws, r.default_s
    return sum(med["u"]), tuned_total


def _merge(first: TuneReport, then: TuneReport) -> TuneReport:
    """One report for a run that restarted on a fresh device context."""
    then.results = first.results + then.results
    then.failures = first.failures + then.failures
    then.resumed, then.seconds = first.resumed, first.seconds + then.seconds
    return then


def export_tuning(program_file: str, json_path: str) -> int:
    """Write every tuned record of a compiled-program file (all devices) as JSON; returns the record count."""
    from clmace.store import read_file

    pf = read_file(program_file)
    sections = [{"key": key, "device": sec.fingerprint.describe(), "fingerprint": vars(sec.fingerprint).copy(),
                 "records": dict(sorted(sec.tuned.items()))} for key, sec in sorted(pf.sections.items()) if sec.tuned]
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "engine_version": pf.engine_version,
           "sections": sections}
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    return sum(len(s["records"]) for s in sections)


def import_tuning(json_path: str, program_file: str) -> int:
    """Merge the records of an exported JSON file into a compiled-program file (each under its own device
    section); returns the record count. Records of other devices stay inert until that device plans."""
    from clmace.store import DeviceFingerprint, ProgramFile, Section, write_file
    from clmace.store.store import engine_version

    try:
        with open(json_path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ClmaceError(f"{json_path}: cannot read tuned records ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT or doc.get("version") != EXPORT_VERSION:
        raise ClmaceError(f"{json_path}: not a {EXPORT_FORMAT} version {EXPORT_VERSION} file")
    update = ProgramFile(engine_version(), time.time())
    names = {f.name for f in fields(DeviceFingerprint)}
    count = 0
    for sec in doc.get("sections", []):
        fp_fields = sec.get("fingerprint") if isinstance(sec, dict) else None
        records = sec.get("records") if isinstance(sec, dict) else None
        if not isinstance(fp_fields, dict) or set(fp_fields) != names or not isinstance(records, dict):
            raise ClmaceError(f"{json_path}: a section lacks its device fingerprint or records")
        if not all(isinstance(k, str) and isinstance(v, dict) for k, v in records.items()):
            raise ClmaceError(f"{json_path}: records must map keys to JSON objects")
        fp = DeviceFingerprint(**fp_fields)
        update.sections.setdefault(fp.key(), Section(fp)).tuned.update(records)
        count += len(records)
    if not write_file(os.path.abspath(program_file), update):
        raise ClmaceError(f"could not write {program_file} (see the warning above)")
    return count


def summarize(records: Mapping[str, dict]) -> list[dict]:
    """One row per kernel: the variants and local sizes chosen, how many records, the summed gain."""
    rows: dict[str, dict] = {}
    for rec in records.values():
        family = str(rec.get("family", "?"))
        row = rows.setdefault(family, {"family": family, "records": 0, "choices": {}, "us": 0.0, "default_us": 0.0})
        row["records"] += 1
        lws = rec.get("lws")
        kernel = rec.get("kernel") or family
        variant = str(rec.get("variant", "?")) + ("" if kernel == family else f" [{kernel}]")
        choice = f"{variant} lws={'NULL' if lws is None else 'x'.join(map(str, lws))}"
        row["choices"][choice] = row["choices"].get(choice, 0) + 1
        row["us"] += float(rec.get("us", 0.0))
        row["default_us"] += float(rec.get("default_us", 0.0))
    return sorted(rows.values(), key=lambda r: -r["default_us"])


def render_summary(records: Mapping[str, dict], indent: str = "  ") -> list[str]:
    """Text lines for `clmace inspect -e` and `clmace tune`: per kernel, the choices and the gain."""
    lines = []
    for row in summarize(records):
        gain = row["default_us"] / row["us"] if row["us"] > 0 else 1.0
        choices = ", ".join(f"{c} x{n}" for c, n in sorted(row["choices"].items(), key=lambda kv: -kv[1]))
        lines.append(f"{indent}{row['family']:<22} {row['records']:>3} record(s), {row['default_us']:9.1f} -> "
                     f"{row['us']:9.1f} us ({gain:.2f}x): {choices}")
    return lines
