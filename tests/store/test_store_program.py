"""ProgramStore on a real OpenCL device: hits after a save, and every reason a stored program is refused."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import pyopencl as cl
import pytest

from clmace.backends.opencl.device import build_program, fingerprint
from clmace.store import ProgramStore
from clmace.store.format import ProgramEntry, ProgramFile, Section, entry_key, source_hash
from clmace.store.io import read_file, write_file
from tests.opencl_probe import require_device

SOURCES = {
    f"scale{k}": f"__kernel void scale{k}(__global float *a) {{ int i = get_global_id(0); a[i] = a[i] * {k}.0f; }}"
    for k in (2, 3, 5)
}
OPTIONS = ["-DUNUSED=1"]
ENGINE = "test-1"


@pytest.fixture(scope="module")
def device():
    """The first PoCL device, or the first of $CLMACE_TEST_PLATFORM's, that passes clmace's driver check."""
    from clmace.backends.opencl.discovery import list_devices

    wanted = os.environ.get("CLMACE_TEST_PLATFORM")
    index = next((d.index for d in list_devices() if wanted and wanted in d.platform), None)
    return require_device("pocl" if index is None else f"opencl:{index}")


@pytest.fixture()
def ctx(device):
    return cl.Context([device])


def new_store(path, **kw) -> ProgramStore:
    return ProgramStore(path=str(path), engine_version_=ENGINE, manage_pocl_cache=False, **kw)


def run_scale(ctx, program, name: str) -> np.ndarray:
    queue = cl.CommandQueue(ctx)
    a = np.arange(16, dtype=np.float32)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
    getattr(program, name)(queue, a.shape, None, buf)
    cl.enqueue_copy(queue, a, buf)
    queue.finish()
    return a


def build_all(store: ProgramStore, ctx, device, sources=SOURCES) -> dict:
    return {name: build_program(ctx, device, name, src, OPTIONS, store) for name, src in sources.items()}


def test_build_save_reload_hits(tmp_path, ctx, device, caplog) -> None:
    path = tmp_path / "p.clmace"
    store = new_store(path)
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        build_all(store, ctx, device)
    assert f"no compiled-program file found (searched: {path})" in caplog.text
    assert (store.hits, store.misses) == (0, len(SOURCES))
    assert store.save()
    assert store.save()  # nothing changed: nothing to do, still success

    again = new_store(path)
    programs = build_all(again, ctx, device)
    assert (again.hits, again.misses, again.rejected) == (len(SOURCES), 0, 0)
    np.testing.assert_array_equal(run_scale(ctx, programs["scale3"], "scale3"), np.arange(16) * 3.0)
    assert again.load() == {str(path): "ok: 1 section(s)"}
    status = again.status()
    assert status["files"] == {str(path): "ok: 1 section(s)"} and status["hits"] == len(SOURCES)


def test_search_paths_are_read_only_sources(tmp_path, ctx, device, monkeypatch) -> None:
    shipped = tmp_path / "shipped.clmace"
    first = new_store(shipped)
    build_all(first, ctx, device)
    assert first.save()
    monkeypatch.setenv("CLMACE_PROGRAM_PATH", str(shipped))
    store = new_store(tmp_path / "cache" / "p.clmace")
    build_all(store, ctx, device)
    assert store.hits == len(SOURCES)
    assert store.save() and not (tmp_path / "cache" / "p.clmace").exists()


def test_section_for_other_driver_is_skipped_with_reason(tmp_path, ctx, device) -> None:
    path = tmp_path / "p.clmace"
    fp = fingerprint(device)
    old_driver = dataclasses.replace(fp, driver_version="0.0-old")
    name, src = "scale2", SOURCES["scale2"]
    entry = ProgramEntry(name, " ".join(OPTIONS), source_hash(src), b"binary for the old driver")
    write_file(str(path), ProgramFile(ENGINE, time.time(), {
        old_driver.key(): Section(old_driver, {entry_key(src, OPTIONS): entry})}))
    store = new_store(path)
    build_program(ctx, device, name, src, OPTIONS, store)
    assert (store.hits, store.misses) == (0, 1)
    assert any(f"driver_version '0.0-old' != '{fp.driver_version}'" in r for r in store.rejections)
    assert store.save()
    assert len(read_file(str(path)).sections) == 2  # the other driver's section is kept, not clobbered


def test_changed_source_is_rebuilt_and_replaced(tmp_path, ctx, device) -> None:
    path = tmp_path / "p.clmace"
    first = new_store(path)
    build_program(ctx, device, "scale", SOURCES["scale2"].replace("scale2", "scale"), OPTIONS, first)
    assert first.save()
    changed = SOURCES["scale5"].replace("scale5", "scale")
    second = new_store(path)
    program = build_program(ctx, device, "scale", changed, OPTIONS, second)
    assert (second.hits, second.misses) == (0, 1)
    assert any("source of 'scale'" in r and "changed" in r for r in second.rejections)
    np.testing.assert_array_equal(run_scale(ctx, program, "scale"), np.arange(16) * 5.0)
    assert second.save()
    entries = [e for s in read_file(str(path)).sections.values() for e in s.entries.values()]
    assert [(e.name, e.source_hash) for e in entries] == [("scale", source_hash(changed))]


def test_binary_refused_by_driver_falls_back_to_source(tmp_path, ctx, device) -> None:
    path = tmp_path / "p.clmace"
    fp = fingerprint(device)
    name, src = "scale2", SOURCES["scale2"]
    junk = ProgramEntry(name, " ".join(OPTIONS), source_hash(src), b"\x00not a program binary\x00" * 4)
    write_file(str(path), ProgramFile(ENGINE, time.time(), {fp.key(): Section(fp, {entry_key(src, OPTIONS): junk})}))
    store = new_store(path)
    program = build_program(ctx, device, name, src, OPTIONS, store)
    np.testing.assert_array_equal(run_scale(ctx, program, name), np.arange(16) * 2.0)
    assert (store.hits, store.misses) == (0, 1)
    assert any("refused by the driver" in r for r in store.rejections)
    assert store.save()
    healed = new_store(path)
    build_program(ctx, device, name, src, OPTIONS, healed)
    assert (healed.hits, healed.misses) == (1, 0)


def test_damaged_file_warns_once_and_is_rebuilt(tmp_path, ctx, device, caplog) -> None:
    path = tmp_path / "p.clmace"
    first = new_store(path)
    build_all(first, ctx, device)
    assert first.save()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    caplog.clear()
    store = new_store(path)
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        build_all(store, ctx, device)
        assert store.save()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "truncated" in warnings[0].getMessage()
    assert store.misses == len(SOURCES)
    assert len(next(iter(read_file(str(path)).sections.values())).entries) == len(SOURCES)


def test_file_from_another_engine_version_is_skipped(tmp_path, ctx, device) -> None:
    path = tmp_path / "p.clmace"
    old = ProgramStore(path=str(path), engine_version_="0.0.1", manage_pocl_cache=False)
    build_all(old, ctx, device)
    assert old.save()
    store = new_store(path)
    build_all(store, ctx, device)
    assert store.hits == 0 and any("written by clmace 0.0.1" in r for r in store.rejections)


def test_tuned_records_round_trip(tmp_path, device) -> None:
    path = tmp_path / "p.clmace"
    store = new_store(path)
    assert store.get_tuned(fingerprint(device), "conv2d_1x1_1_8_8_4") is None
    store.put_tuned(fingerprint(device), "conv2d_1x1_1_8_8_4", {"lws": [4, 8, 1], "ms": 0.12})
    assert store.save()
    again = new_store(path)
    assert again.get_tuned(fingerprint(device), "conv2d_1x1_1_8_8_4") == {"lws": [4, 8, 1], "ms": 0.12}


def test_unwritable_path_save_returns_false(tmp_path, ctx, device, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = new_store(blocker / "p.clmace")
    build_all(store, ctx, device)
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        assert store.save() is False
    assert "not written" in caplog.text
    assert store.status()["unsaved"] == len(SOURCES)  # kept, so a later save can still succeed
