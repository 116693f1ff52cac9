"""Eight processes start together on the same missing compiled-program file: build, run, save, all at once."""

from __future__ import annotations

import multiprocessing
import os

from conftest import ENGINE, SOURCES, build_and_check

from clmace.store import ProgramStore
from clmace.store.format import loads

PROCESSES = 8


def _worker(path: str, barrier, results) -> None:
    """One app start: open the device, wait for the others, build every program, check its numbers, save."""
    try:
        import pyopencl as cl

        from tests.opencl_probe import require_device

        device = require_device("pocl")
        ctx = cl.Context([device])
        store = ProgramStore(path=path, engine_version_=ENGINE, manage_pocl_cache=False)
        barrier.wait(timeout=120)  # everyone has a device: now all hit the missing file together
        build_and_check(store, ctx, device)
        results.put((os.getpid(), store.hits, store.misses, store.save(), None))
    except BaseException as e:  # reported to the parent, which fails the test with it
        results.put((os.getpid(), 0, 0, False, f"{type(e).__name__}: {e}"))


def test_eight_processes_build_run_and_save_the_same_programs(tmp_path, ctx, device) -> None:
    path = str(tmp_path / "p.clmace")
    mp = multiprocessing.get_context("spawn")
    barrier, results = mp.Barrier(PROCESSES), mp.Queue()
    procs = [mp.Process(target=_worker, args=(path, barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        rows = [results.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [row[4] for row in rows if row[4]]
    assert not errors, errors
    assert all(saved for _, _, _, saved, _ in rows)  # every save succeeded: merged under the lock, none lost
    assert sum(hits + misses for _, hits, misses, _, _ in rows) == PROCESSES * len(SOURCES)
    with open(path, "rb") as f:
        pf = loads(f.read())  # one complete, valid file
    (section,) = pf.sections.values()
    assert sorted(e.name for e in section.entries.values()) == sorted(SOURCES)
    assert all(e.binary for e in section.entries.values())
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []
    again = ProgramStore(path=path, engine_version_=ENGINE, manage_pocl_cache=False)
    build_and_check(again, ctx, device)
    assert (again.hits, again.misses) == (len(SOURCES), 0)
