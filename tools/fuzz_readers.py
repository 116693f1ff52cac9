#!/usr/bin/env python3
"""Fuzz clmace's file readers: only documented errors may escape, no input may hang or allocate unboundedly.

    python tools/fuzz_readers.py --count 100000 --seed 1 [--jobs 2] [--timeout 2] [--out DIR]

Targets: the compiled-program reader (`format.loads`), `clmace inspect` on bytes (non-strict parse, signature
status, MACE describe), the MACE-file reader (`mace.loads_mace` + `describe`) and the converted-model reader
(`modelfile.loads`). Inputs are seeded per index (so `--seed S` reproduces a run): mutations of valid files
(bit flips, byte insert/delete, truncation, length-field corruption, splices of two files), structured random
files with correct lengths and checksums (to reach the deep checks), and random bytes. Each input runs under
a SIGALRM timeout and tracemalloc; a watchdog kills a worker stuck outside Python code. Failing inputs are
written to --out for `--replay FILE --target NAME`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # fuzz_inputs beside this file; clmace from the checkout

import fuzz_inputs as inputs  # noqa: E402

from clmace.core.errors import ModelError, ProgramFileError  # noqa: E402

TARGETS = ("program", "inspect", "mace", "model")
MIB = 1 << 20


def memory_limit(size: int) -> int:
    """Most bytes one input may make a reader allocate: 4x its size plus 1 MiB."""
    return 4 * size + MIB


# ---------------------------------------------------------------- the readers under test


def run_target(target: str, data: bytes) -> None:
    """Feed `data` to one reader; its documented error (ProgramFileError / ModelError) is expected."""
    if target == "program":
        from clmace.store.format import loads

        loads(data)
    elif target == "inspect":
        from clmace.workflow.inspect import inspect_bytes

        json.dumps(inspect_bytes(data, [inputs.public_key_path()]))  # --json output must serialize too
    elif target == "mace":
        from clmace.store.mace import describe, loads_mace

        json.dumps(describe(loads_mace(data)))
    elif target == "model":
        from clmace.frontend.modelfile import loads as load_model

        load_model(data, "<fuzz>")
    else:
        raise ValueError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")


ALLOWED = {"program": ProgramFileError, "inspect": ProgramFileError, "mace": ProgramFileError, "model": ModelError}


# ---------------------------------------------------------------- checking


class Hang(BaseException):
    """Raised by SIGALRM inside a reader that ran past the per-input timeout (BaseException: never caught)."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def check(target: str, data: bytes, timeout: float = 2.0) -> str | None:
    """Run one input; None if the reader behaved, else what went wrong. Needs tracemalloc started."""
    signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    problem = None
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        run_target(target, data)
    except ALLOWED[target]:
        pass
    except Hang:
        problem = f"hang: no answer within {timeout} s"
    except BaseException as e:  # anything else escaping is the bug this tool looks for
        problem = f"escaped {type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    peak = tracemalloc.get_traced_memory()[1] - base
    if problem is None and peak > memory_limit(len(data)):
        problem = f"allocated {peak} bytes for a {len(data)}-byte input (limit {memory_limit(len(data))})"
    elapsed = time.perf_counter() - start
    return problem if problem is None or elapsed < 60 else f"{problem} ({elapsed:.1f} s)"


def _worker(wid: int, jobs: int, args: argparse.Namespace, start: int, progress, results) -> None:
    """Process inputs start, start+jobs, ... for every target; report failures and progress."""
    seeds = inputs.all_seeds()
    tracemalloc.start()
    for index in range(start, args.count_per_target, jobs):
        for t, target in enumerate(args.targets):
            data = inputs.make_input(target, index, args.seed, seeds)
            progress[wid * 2] = index * len(args.targets) + t
            progress[wid * 2 + 1] = time.monotonic()
            problem = check(target, data, args.timeout)
            if problem:
                results.put((target, index, problem, data))
    progress[wid * 2 + 1] = -1.0
    results.put(("done", wid))


def fuzz(args: argparse.Namespace) -> tuple[list[tuple[str, int, str, bytes]], int, float]:
    """Run the whole campaign over `args.jobs` processes; returns (failures, inputs run, seconds)."""
    mp = multiprocessing.get_context("fork")
    progress = mp.Array("d", 2 * args.jobs, lock=False)
    results = mp.Queue()
    procs = {w: mp.Process(target=_worker, args=(w, args.jobs, args, w, progress, results)) for w in range(args.jobs)}
    failures: list[tuple[str, int, str, bytes]] = []
    seeds = inputs.all_seeds()  # to save the input of a killed worker
    inputs.public_key_path()  # made here, before the fork: workers exit without running atexit handlers
    start, done = time.monotonic(), set()
    for p in procs.values():
        p.start()
    while len(done) < len(procs):
        while True:
            try:
                item = results.get(timeout=0.05)
            except queue.Empty:
                break
            if item[0] == "done":
                done.add(item[1])
            else:
                failures.append(item)
        for w, p in list(procs.items()):
            began = progress[w * 2 + 1]
            stuck = p.is_alive() and began > 0 and time.monotonic() - began > 10 * args.timeout
            if w in done or not (stuck or p.exitcode not in (None, 0)):
                continue  # exit code 0: its "done" is still in the queue
            # Stuck where SIGALRM cannot interrupt (inside C code), or crashed: record it, skip it, go on.
            p.kill()
            p.join()
            index = int(progress[w * 2]) // len(args.targets)
            target = args.targets[int(progress[w * 2]) % len(args.targets)]
            why = "hang: killed by the watchdog" if stuck else f"worker died (exit code {p.exitcode})"
            failures.append((target, index, why, inputs.make_input(target, index, args.seed, seeds)))
            procs[w] = mp.Process(target=_worker, args=(w, args.jobs, args, index + args.jobs, progress, results))
            procs[w].start()
    for p in procs.values():
        p.join()
    return failures, args.count_per_target * len(args.targets), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    """Command line: run a campaign and print a summary; exit status 1 if any input failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=10_000, help="inputs in total, spread over the targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds one input may take")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "clmace-fuzz-failures"),
                    help="directory for failing inputs")
    ap.add_argument("--replay", help="run one saved input (with --targets NAME) and print the outcome")
    args = ap.parse_args(argv)
    args.targets = args.targets.split(",")
    if args.replay:
        tracemalloc.start()
        with open(args.replay, "rb") as f:
            print(check(args.targets[0], f.read(), args.timeout) or "ok")
        return 0
    args.count_per_target = max(1, args.count // len(args.targets))
    failures, total, seconds = fuzz(args)
    for target, index, problem, data in failures:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"{target}-{args.seed}-{index}.bin")
        with open(path, "wb") as f:
            f.write(data)
        print(f"FAIL {target} #{index}: {problem} ({path})")
    print(f"{total} inputs ({args.count_per_target} per target: {', '.join(args.targets)}), seed {args.seed}, "
          f"{args.jobs} jobs, {seconds:.1f} s: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
