"""Reading and atomically writing compiled-program files, merging under a file lock."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace

import filelock

from clmace.errors import ProgramFileError
from clmace.store.format import ProgramFile, Section, dumps, loads

log = logging.getLogger("clmace.store")

LOCK_TIMEOUT_S = 10.0  # a writer stuck longer than this costs us one save, not a hung exit


def read_file(path: str) -> ProgramFile:
    """Read and validate a compiled-program file; FileNotFoundError if absent, ProgramFileError if bad."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ProgramFileError(f"{path}: cannot read ({e.strerror or e})") from e
    try:
        return loads(data)
    except ProgramFileError as e:
        raise ProgramFileError(f"{path}: {e}") from None


def merge(base: ProgramFile | None, update: ProgramFile,
          removed: Mapping[str, set[str]] | None = None) -> ProgramFile:
    """Union of two files: `update` wins on equal keys; `removed` drops entry keys per section key."""
    removed = removed or {}
    out = ProgramFile(update.engine_version, update.created, {}, update.signature)
    if base is not None:
        for key, sec in base.sections.items():
            gone = removed.get(key, set())
            entries = {k: e for k, e in sec.entries.items() if k not in gone}
            out.sections[key] = replace(sec, entries=entries, tuned=dict(sec.tuned))
    for key, sec in update.sections.items():
        mine = out.sections.setdefault(key, Section(sec.fingerprint))
        mine.entries.update(sec.entries)
        mine.tuned.update(sec.tuned)
    return out


def _current(path: str, engine_version: str) -> ProgramFile | None:
    """The file now on disk if it is worth merging with (same engine version, intact), else None."""
    try:
        pf = read_file(path)
    except FileNotFoundError:
        return None
    except ProgramFileError as e:
        log.info("replacing damaged compiled-program file: %s", e)
        return None
    if pf.engine_version != engine_version:
        log.info("replacing %s: written by clmace %s, this is %s", path, pf.engine_version, engine_version)
        return None
    return pf


def _write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".clmace", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        # Make the rename itself durable; not every filesystem lets a directory be opened for this.
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_file(path: str, pf: ProgramFile, removed: Mapping[str, set[str]] | None = None,
               merge_existing: bool = True, timeout: float = LOCK_TIMEOUT_S) -> bool:
    """Merge `pf` into `path` atomically under `path + '.lock'`; False (and a warning) on failure."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # The OS releases this lock when its holder dies (even by SIGKILL), so a crash never blocks writers.
        with filelock.FileLock(path + ".lock", timeout=timeout):
            current = _current(path, pf.engine_version) if merge_existing else None
            _write_atomic(path, dumps(merge(current, pf, removed)))
        return True
    except filelock.Timeout:
        log.warning("compiled-program file not written: %s stayed locked for %.0f s", path + ".lock", timeout)
    except OSError as e:
        log.warning("compiled-program file not written to %s: %s", path, e.strerror or e)
    return False
