"""`clmace tune` and `clmace compile --tune`: parsing and printing only (the tuner: backends/opencl/tuning)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clmace.cli.args import shape_arg
from clmace.core.errors import ClmaceError

EXAMPLE = ("clmace tune model.onnx --device gpu -o model.bin --budget 300\n"
           "  clmace tune model.onnx -o model.bin --export-tuning tuned.json\n"
           "  clmace tune --import-tuning tuned.json -o model.bin")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr (ETA, best-so-far gain) and the callback that drives it."""
    if not enabled:
        yield None
        return
    from rich import progress as rp
    from rich.console import Console

    columns = (rp.TextColumn("{task.description:<44}"), rp.BarColumn(), rp.MofNCompleteColumn(),
               rp.TextColumn("gain {task.fields[gain]}"), rp.TimeElapsedColumn(), rp.TextColumn("ETA"),
               rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("measuring the plan", total=None, gain="-")

        def update(done: int, total: int, label: str, gain: float) -> None:
            bar.update(task, completed=done, total=total, description=label, gain=f"{gain:.3f}x")

        yield update


def add_tune_arguments(p: argparse.ArgumentParser, standalone: bool) -> None:
    """--budget and --seed (both commands); the rest only on `clmace tune`."""
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="stop tuning after about this long; a later run resumes (default: no limit)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs candidates are checked on")
    if not standalone:
        return
    p.add_argument("--retune", action="store_true", help="tune launches already recorded for this device again")
    p.add_argument("--export-tuning", metavar="FILE.json", help="write the file's tuned records (all devices) as JSON")
    p.add_argument("--import-tuning", metavar="FILE.json", help="merge tuned records from JSON into the file first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_tuning(args: argparse.Namespace, model: str, output: str) -> int:
    """Tune `model` into `output` and print what was found; 130 when interrupted."""
    from clmace.workflow.tune import render_summary, tune_model

    show = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    with progress_bar(show) as progress:
        try:
            outcome = tune_model(model, output, args.device, budget=args.budget, seed=args.seed,
                                 precision=args.precision, input_shapes=shape_arg(args.input_shape) or None,
                                 progress=progress, retune=getattr(args, "retune", False),
                                 **({"sign_key": args.sign_key} if getattr(args, "sign_key", None) else {}))
        except KeyboardInterrupt:
            print(f"{output}: interrupted; the records measured so far are saved", file=sys.stderr)
            return 130
    r = outcome.report
    state = "interrupted" if r.interrupted else "budget spent" if r.out_of_budget else "done"
    if r.context_lost:
        state = f"stopped: the device context was lost after {r.context_lost}; run again to resume"
    print(f"{output}: tuned {len(r.results)} launch key(s) on {outcome.device!r} in {r.seconds:.1f} s ({state}); "
          f"{r.resumed} already recorded, {r.total - r.resumed - len(r.results)} left; "
          f"device-time gain of the tuned launches {r.gain():.3f}x")
    if not r.interrupted:
        print(f"a session planned with the records uses {outcome.records_used}; its outputs differ from the "
              f"untuned plan's by at most {outcome.max_abs_diff:.2e}")
    if outcome.untuned_device_s:
        print(f"inside the model: device time per run {outcome.untuned_device_s * 1e3:.3f} ms untuned, "
              f"{outcome.tuned_device_s * 1e3:.3f} ms tuned; {len(r.reverted)} choice(s) that lost to the default "
              f"there were set back to it")
    records = {res.key: {"family": res.family, "variant": res.variant,
                         "lws": None if res.lws is None else list(res.lws), "us": res.best_s * 1e6,
                         "default_us": res.default_s * 1e6} for res in r.results}
    for line in render_summary(records):
        print(line)
    skipped = len(r.failures)
    if skipped:
        print(f"{skipped} candidate(s) skipped (failed or wrong output); run with -v to see them")
    return 130 if r.interrupted else 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune work-group sizes and kernel variants of a model on a device; records go into the program file."""
    from clmace.workflow.tune import export_tuning, import_tuning

    if not (args.model or args.export_tuning or args.import_tuning):
        raise ClmaceError("tune needs a MODEL, --export-tuning FILE or --import-tuning FILE")
    status = 0
    if args.import_tuning:
        count = import_tuning(args.import_tuning, args.output)
        print(f"{args.output}: merged {count} tuned record(s) from {args.import_tuning}")
    if args.model:
        status = run_tuning(args, args.model, args.output)
    if args.export_tuning:
        if not os.path.exists(args.output):
            raise ClmaceError(f"{args.output} does not exist: nothing to export")
        count = export_tuning(args.output, args.export_tuning)
        print(f"{args.export_tuning}: {count} tuned record(s) exported from {args.output}")
    return status
