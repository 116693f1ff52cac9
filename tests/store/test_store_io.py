"""Atomic, locked, merging writes of compiled-program files; failures that must not raise."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint
from clmace.store.format import ProgramEntry, ProgramFile, Section, dumps, entry_key, source_hash
from clmace.store.io import read_file, write_file

FP = DeviceFingerprint("plat", "vendor", "OpenCL 3.0", "dev", "dvendor", "OpenCL 3.0", "1.0", "OpenCL C 1.2", 64)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))


def one_entry_file(source: str, engine: str = "0.1.0", fp: DeviceFingerprint = FP) -> ProgramFile:
    """A file with a single entry whose binary is the source's bytes."""
    entry = ProgramEntry(source, "-DX", source_hash(source), source.encode() * 10)
    return ProgramFile(engine, time.time(), {fp.key(): Section(fp, {entry_key(source, ["-DX"]): entry})})


def names(pf: ProgramFile) -> set[str]:
    return {e.name for sec in pf.sections.values() for e in sec.entries.values()}


def test_write_then_read(tmp_path) -> None:
    path = str(tmp_path / "sub" / "p.clmace")
    assert write_file(path, one_entry_file("a"))
    assert names(read_file(path)) == {"a"}
    assert [p.name for p in tmp_path.joinpath("sub").iterdir() if p.name.startswith(".tmp-")] == []


def test_missing_file_is_file_not_found_and_damage_is_program_file_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_file(str(tmp_path / "none.clmace"))
    bad = tmp_path / "bad.clmace"
    bad.write_bytes(dumps(one_entry_file("a"))[:50])
    with pytest.raises(ProgramFileError, match=r"bad\.clmace: truncated"):
        read_file(str(bad))


def test_writers_merge_sections_entries_and_removals(tmp_path) -> None:
    path = str(tmp_path / "p.clmace")
    other = DeviceFingerprint(*[*list(vars(FP).values())[:6], "2.0", "OpenCL C 1.2", 64])
    assert write_file(path, one_entry_file("a"))
    assert write_file(path, one_entry_file("b"))
    assert write_file(path, one_entry_file("c", fp=other))
    pf = read_file(path)
    assert names(pf) == {"a", "b", "c"} and len(pf.sections) == 2
    assert write_file(path, one_entry_file("d"), removed={FP.key(): {entry_key("a", ["-DX"])}})
    assert names(read_file(path)) == {"b", "c", "d"}


def test_other_engine_version_and_damaged_files_are_replaced_not_merged(tmp_path) -> None:
    path = str(tmp_path / "p.clmace")
    assert write_file(path, one_entry_file("old", engine="0.0.1"))
    assert write_file(path, one_entry_file("new"))
    assert names(read_file(path)) == {"new"}
    with open(path, "r+b") as f:
        f.truncate(40)
    assert write_file(path, one_entry_file("fresh"))
    assert names(read_file(path)) == {"fresh"}


def test_unwritable_location_returns_false_with_a_warning(tmp_path, caplog) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        assert write_file(str(blocker / "p.clmace"), one_entry_file("a")) is False
    assert "not written" in caplog.text


_RO_WRITER = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
sys.path.insert(0, sys.argv[2])
from test_store_io import one_entry_file
from clmace.store.io import write_file
import filelock  # write_file imports it lazily: import it before dropping to 'nobody' as well
if sys.argv[3] != "-":
    import os
    os.setgid(int(sys.argv[3]))
    os.setuid(int(sys.argv[3]))  # after the imports: the interpreter may live where 'nobody' cannot read
ok = write_file(sys.argv[1], one_entry_file("a"))
print("result", ok)
"""


def test_read_only_directory_returns_false_with_a_warning(tmp_path) -> None:
    ro = tempfile.mkdtemp(prefix="clmace-ro-")
    try:
        os.chmod(ro, 0o555)
        # Root writes anywhere, so as root the writer runs as 'nobody', for whom the directory is read-only.
        user = "65534" if os.geteuid() == 0 else "-"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, *sys.path]))
        out = subprocess.run([sys.executable, "-c", _RO_WRITER, os.path.join(ro, "p.clmace"), HERE, user],
                             capture_output=True, text=True, env=env, cwd="/", timeout=60)
        assert "result False" in out.stdout, out.stderr
        assert "not written" in out.stderr and "Traceback" not in out.stderr
        assert os.listdir(ro) == []
    finally:
        os.chmod(ro, 0o755)
        shutil.rmtree(ro)


def test_disk_full_returns_false_and_leaves_old_file(tmp_path, caplog, monkeypatch) -> None:
    path = str(tmp_path / "p.clmace")
    assert write_file(path, one_entry_file("a"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        assert write_file(path, one_entry_file("b")) is False
    monkeypatch.undo()
    assert "No space left on device" in caplog.text
    assert names(read_file(path)) == {"a"}
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []


def _writer(path: str, index: int) -> bool:
    """Process body: write three entries of its own, one write per entry."""
    ok = True
    for j in range(3):
        ok &= write_file(path, one_entry_file(f"w{index}-{j}"))
    return ok


def test_eight_concurrent_writers_keep_every_entry(tmp_path) -> None:
    path = str(tmp_path / "p.clmace")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        results = pool.starmap(_writer, [(path, i) for i in range(8)])
    assert all(results)
    assert names(read_file(path)) == {f"w{i}-{j}" for i in range(8) for j in range(3)}


_HOLDER = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1] + ".lock")
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_holder_killed_with_sigkill_does_not_block_the_next_writer(tmp_path) -> None:
    path = str(tmp_path / "p.clmace")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        # While it lives, the lock really is held: a short-timeout writer gives up.
        assert write_file(path, one_entry_file("blocked"), timeout=0.2) is False
        holder.kill()
        holder.wait(timeout=10)
        start = time.monotonic()
        assert write_file(path, one_entry_file("after"), timeout=5)
        assert time.monotonic() - start < 2
        assert os.path.exists(path + ".lock")  # the file stays; only the OS lock on it died with the holder
        assert names(read_file(path)) == {"after"}
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
