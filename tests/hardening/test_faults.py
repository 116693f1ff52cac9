"""Fault injection at the ProgramStore level with real PoCL programs (the fault matrix of docs/HARDENING.md).

Every case: the programs still build and give the right numbers, the reason is logged, and where writing is
possible a valid file holding every program is left behind (a second store then gets only hits).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import struct
import subprocess
import sys
import time

import pytest
from conftest import ENGINE, OPTIONS, REPO_ROOT, SOURCES, build_and_check

from clmace.backends.opencl.device import build_program, fingerprint
from clmace.store import ProgramStore
from clmace.store import io as store_io
from clmace.store.format import ProgramEntry, ProgramFile, Section, dumps, entry_key, loads, source_hash

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def new_store(path, **kw) -> ProgramStore:
    return ProgramStore(path=str(path), engine_version_=kw.pop("engine", ENGINE), manage_pocl_cache=False, **kw)


@pytest.fixture()
def good_file(tmp_path, ctx, device) -> bytes:
    """A saved file holding all three programs; returns its bytes."""
    store = new_store(tmp_path / "p.clmace")
    build_and_check(store, ctx, device)
    assert store.save()
    return (tmp_path / "p.clmace").read_bytes()


def assert_recovers(path, ctx, device, caplog, reason: str, hits: int = 0) -> ProgramStore:
    """Build and check through a fresh store, see `reason` logged, save, and find a complete valid file."""
    caplog.clear()
    store = new_store(path)
    with caplog.at_level(logging.DEBUG, logger="clmace.store"):
        build_and_check(store, ctx, device)
        assert store.save()
    assert reason in caplog.text, caplog.text
    assert (store.hits, store.misses) == (hits, len(SOURCES) - hits)
    sections = loads(path.read_bytes()).sections
    assert {e.name for s in sections.values() for e in s.entries.values()} >= set(SOURCES)
    again = new_store(path)
    build_and_check(again, ctx, device)
    assert (again.hits, again.misses) == (len(SOURCES), 0)
    return store


def boundaries(data: bytes) -> list[int]:
    """Offsets where one structural part of a compiled-program file ends and the next begins."""
    u32 = lambda pos: struct.unpack_from("<I", data, pos)[0]  # noqa: E731
    out = [0, 8, 24]
    pos = 24 + 4 + u32(24)
    out.append(pos)
    count, pos = u32(pos), pos + 4
    out.append(pos)
    for _ in range(count):
        end = pos + 4 + u32(pos)
        pos += 4
        for _ in range(8):
            pos += 4 + u32(pos)
        pos += 4
        out.append(pos)  # after the fingerprint
        entries, pos = u32(pos), pos + 4
        for _ in range(entries):
            out += [pos, pos + 4]  # entry start, its body after the size field
            pos += 4 + u32(pos)
            out.append(pos)  # entry body end, its CRC next
            pos += 4
        out += [pos, end]  # tuned records start, section end
        pos = end
    return sorted(set(out + [len(data) - 4]))


def test_truncation_at_every_section_boundary(tmp_path, ctx, device, caplog, good_file) -> None:
    path = tmp_path / "p.clmace"
    cuts = boundaries(good_file)
    # 0, magic, header, engine version, section count, fingerprint, 3 per entry, tuned records, trailer
    assert len(cuts) == 6 + 3 * len(SOURCES) + 2
    for cut in cuts:
        path.write_bytes(good_file[:cut])
        assert_recovers(path, ctx, device, caplog, "truncated")


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


@pytest.mark.parametrize("where, reason", [
    ("magic", "not a clmace compiled-program file"),
    ("version", "format version 3 is newer"),
    ("flags", "unknown flags"),
    ("created", "file crc mismatch"),
    ("entry", "crc mismatch in section 0 entry"),
    ("entry_crc", "crc mismatch in section 0 entry"),
    ("file_crc", "file crc mismatch"),
])
def test_flipped_bits(tmp_path, ctx, device, caplog, good_file, where: str, reason: str) -> None:
    entry_at = boundaries(good_file)[6]  # 0, magic, header, engine version, count, fingerprint, entry 0
    size = struct.unpack_from("<I", good_file, entry_at)[0]
    index = {"magic": 0, "version": 8, "flags": 12, "created": 20, "entry": entry_at + 4 + size // 2,
             "entry_crc": entry_at + 4 + size,
             "file_crc": len(good_file) - 1}[where]
    bit = 1 if where in ("version", "flags") else 0  # version 1 -> 3, flags bit 1 (unknown)
    (tmp_path / "p.clmace").write_bytes(_flip(good_file, index, bit))
    assert_recovers(tmp_path / "p.clmace", ctx, device, caplog, reason)


def _rewrite_sections(data: bytes, change) -> bytes:
    pf = loads(data)
    pf.sections = {s.fingerprint.key(): s for s in map(change, pf.sections.values())}
    return dumps(pf)


def test_section_from_another_driver_is_skipped_and_kept(tmp_path, ctx, device, caplog, good_file) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(_rewrite_sections(good_file, lambda s: dataclasses.replace(
        s, fingerprint=dataclasses.replace(s.fingerprint, driver_version="0.9-old"))))
    assert_recovers(path, ctx, device, caplog, "driver_version '0.9-old' != ")
    assert len(loads(path.read_bytes()).sections) == 2  # the other driver's programs are kept


def test_section_from_another_device_is_skipped_and_kept(tmp_path, ctx, device, caplog, good_file) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(_rewrite_sections(good_file, lambda s: dataclasses.replace(
        s, fingerprint=dataclasses.replace(s.fingerprint, device_name="NVIDIA H200", platform_name="NVIDIA CUDA"))))
    assert_recovers(path, ctx, device, caplog, "section for another device (NVIDIA H200")
    assert len(loads(path.read_bytes()).sections) == 2


def test_foreign_binary_under_this_devices_fingerprint(tmp_path, ctx, device, caplog) -> None:
    fp = fingerprint(device)
    ptx = b"//\n// Generated by NVIDIA NVVM Compiler\n.version 8.5\n.target sm_90\n"
    entries = {entry_key(src, OPTIONS): ProgramEntry(name, " ".join(OPTIONS), source_hash(src), ptx)
               for name, src in SOURCES.items()}
    path = tmp_path / "p.clmace"
    path.write_bytes(dumps(ProgramFile(ENGINE, time.time(), {fp.key(): Section(fp, entries)})))
    assert_recovers(path, ctx, device, caplog, "refused by the driver")


def test_engine_version_bump(tmp_path, ctx, device, caplog, good_file) -> None:
    path = tmp_path / "p.clmace"
    pf = loads(good_file)
    pf.engine_version = "hardening-0"
    path.write_bytes(dumps(pf))
    assert_recovers(path, ctx, device, caplog, "written by clmace hardening-0, this is hardening-1")
    assert loads(path.read_bytes()).engine_version == ENGINE


def test_kernel_source_changed(tmp_path, ctx, device, caplog) -> None:
    path = tmp_path / "p.clmace"
    old = new_store(path)
    build_program(ctx, device, "scale2", SOURCES["scale2"].replace("2.0f", "7.0f"), OPTIONS, old)
    assert old.save()
    store = assert_recovers(path, ctx, device, caplog, "source of 'scale2' -DHARDENING=1 changed")
    assert store.rejected == 1
    assert len([e for s in loads(path.read_bytes()).sections.values() for e in s.entries.values()]) == 3


# ---------------------------------------------------------------- writes that fail


def _assert_save_fails(store, path, caplog, reason: str, old: bytes | None) -> None:
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        assert store.save() is False
    assert "not written" in caplog.text and reason in caplog.text, caplog.text
    if old is not None:
        assert path.read_bytes() == old and loads(old)
    leftovers = [n for n in os.listdir(path.parent) if n.startswith(".tmp-")] if path.parent.is_dir() else []
    assert leftovers == []
    assert store.status()["unsaved"] == len(SOURCES)  # kept for a later save


def test_parent_of_the_file_is_a_file(tmp_path, ctx, device, caplog) -> None:
    """A real OS error (ENOTDIR): tests run as root here, where a chmod'ed directory stays writable."""
    (tmp_path / "blocker").write_text("a file where the cache directory should be")
    path = tmp_path / "blocker" / "p.clmace"
    store = new_store(path)
    build_and_check(store, ctx, device)
    _assert_save_fails(store, path, caplog, "Not a directory", None)


def test_read_only_directory_simulated_by_os_replace(tmp_path, ctx, device, caplog, good_file, monkeypatch) -> None:
    """os.replace raising PermissionError(EACCES), as it does for a non-root user in a read-only directory."""
    path = tmp_path / "p.clmace"
    pf = loads(good_file)
    pf.sections = {}
    path.write_bytes(dumps(pf))  # a valid file without the programs: the store has something to add
    old = path.read_bytes()
    store = new_store(path)
    build_and_check(store, ctx, device)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    _assert_save_fails(store, path, caplog, "Permission denied", old)
    monkeypatch.undo()
    assert store.save() and len(next(iter(loads(path.read_bytes()).sections.values())).entries) == 3


def test_disk_full_during_the_write(tmp_path, ctx, device, caplog, good_file, monkeypatch) -> None:
    path = tmp_path / "p.clmace"
    pf = loads(good_file)
    pf.sections = {}
    path.write_bytes(dumps(pf))
    old = path.read_bytes()
    store = new_store(path)
    build_and_check(store, ctx, device)
    real_fdopen = os.fdopen

    class FillsUp:
        """Writes half of what it is given, then fails as a full disk does."""

        def __init__(self, f) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            self.f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FillsUp(real_fdopen(fd, *a, **k)))
    _assert_save_fails(store, path, caplog, "No space left on device", old)
    monkeypatch.undo()
    assert store.save()


_MID_WRITE = """
import os, sys, time
from clmace.core.fingerprint import DeviceFingerprint
from clmace.store.format import ProgramEntry, ProgramFile, Section, entry_key, source_hash
from clmace.store.io import write_file
real_fdopen = os.fdopen
class Slow:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()
    def write(self, data):
        self.f.write(data[:len(data) // 2]); self.f.flush()
        print("half written", len(data), flush=True)
        time.sleep(120)
os.fdopen = lambda fd, *a, **k: Slow(real_fdopen(fd, *a, **k))
fp = DeviceFingerprint("p", "v", "1", "big-device", "v", "1", "1", "C", 64)
big = ProgramEntry("big", "", source_hash("big"), b"\\xab" * (48 << 20))
write_file(sys.argv[1], ProgramFile(sys.argv[2], time.time(), {fp.key(): Section(fp, {entry_key("big", []): big})}))
"""


def _child(script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, *sys.path]))
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env)


def test_writer_killed_mid_write_leaves_the_old_file(tmp_path, ctx, device, caplog, good_file) -> None:
    path = tmp_path / "p.clmace"
    child = _child(_MID_WRITE, str(path), ENGINE)
    try:
        assert child.stdout.readline().startswith("half written")
        temps = [n for n in os.listdir(tmp_path) if n.startswith(".tmp-p.clmace-")]
        assert len(temps) == 1 and os.path.getsize(tmp_path / temps[0]) >= 24 << 20
        child.kill()
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert path.read_bytes() == good_file  # the rename never happened: readers see the old, valid file
    store = new_store(path)
    build_and_check(store, ctx, device)
    assert store.hits == len(SOURCES)
    store.put_tuned(fingerprint(device), "k", {"lws": [1, 1, 1]})  # something to save, so the next write runs
    with caplog.at_level(logging.INFO, logger="clmace.store"):
        assert store.save()
    assert "left by a writer that died mid-write" in caplog.text
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []
    assert len(next(iter(loads(path.read_bytes()).sections.values())).entries) == 3


_HOLD_LOCK = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1] + ".lock")  # kept referenced: a collected FileLock releases itself
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_lock_of_a_killed_process_does_not_block(tmp_path, ctx, device, caplog, monkeypatch) -> None:
    path = tmp_path / "p.clmace"
    holder = _child(_HOLD_LOCK, str(path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = new_store(path)
        build_and_check(store, ctx, device)
        monkeypatch.setattr(store_io, "LOCK_TIMEOUT_S", 0.3)
        # While the holder lives (a hung writer), the save gives up with a warning and keeps its programs.
        _assert_save_fails(store, path, caplog, "stayed locked", None)
        holder.kill()
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert os.path.exists(str(path) + ".lock")  # the lock file stays; the OS lock died with its holder
    start = time.monotonic()
    assert store.save()
    assert time.monotonic() - start < 2
    assert len(next(iter(loads(path.read_bytes()).sections.values())).entries) == 3
