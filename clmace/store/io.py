"""Reading and atomically writing compiled-program files, merging under a file lock; signature policy."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clmace.core.atomic import atomic_write_bytes
from clmace.core.errors import ProgramFileError
from clmace.store import trust
from clmace.store.format import FLAG_SIGNED, MAGIC, ProgramFile, Section, dumps, loads

log = logging.getLogger("clmace.store")

LOCK_TIMEOUT_S = 10.0  # a writer stuck longer than this costs us one save, not a hung exit


class UntrustedFileError(ProgramFileError):
    """A valid file refused as possibly foreign code: trusted keys are set and none signed it, or (no keys set)
    someone other than you or root could have written it (store/trust.py)."""


def untrusted_reason(path: str, problem: str) -> str:
    """The refusal message for a file others could have written."""
    return (f"{path}: not trusted: {problem}; sign it (clmace compile --sign-key, and trusted_keys= here) or move "
            "it to a directory only you can write")


def _decode(path: str, data: bytes, trusted_keys: Sequence[Any] | None) -> ProgramFile:
    try:
        pf = loads(data)
    except ProgramFileError as e:
        raise ProgramFileError(f"{path}: {e}") from None
    if trusted_keys is not None:
        from clmace.store import signing  # imported only when keys are in play: it loads `cryptography`

        status = signing.file_status(data, pf, trusted_keys)
        if status.state != "valid":
            raise UntrustedFileError(f"{path}: refused as foreign code: {status.reason or status.describe()}")
    return pf


def _read_checked(path: str) -> tuple[bytes, str | None]:
    """The file's bytes and why others could have written it (None: only you or root could)."""
    try:
        return trust.read_trusted(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ProgramFileError(f"{path}: cannot read ({e.strerror or e})") from e


def read_file(path: str, trusted_keys: Sequence[Any] | None = None) -> ProgramFile:
    """Read and validate a file: FileNotFoundError if absent, ProgramFileError if bad, UntrustedFileError when
    trusted keys are set and none signed it, or when no keys are set and others could have written it."""
    data, problem = _read_checked(path)
    pf = _decode(path, data, trusted_keys)
    if trusted_keys is None and problem:
        raise UntrustedFileError(untrusted_reason(path, problem))
    return pf


def is_signed(data: bytes) -> bool:
    """True when bytes start like a clmace file whose header sets the SIGNED flag (damaged or not)."""
    return len(data) >= 16 and data[:8] == MAGIC and bool(int.from_bytes(data[12:16], "little") & FLAG_SIGNED)


def holds_signed_file(path: str) -> bool:
    """True when `path` holds a file whose header says it is signed."""
    try:
        with open(path, "rb") as f:
            return is_signed(f.read(16))
    except OSError:
        return False


def merge(base: ProgramFile | None, update: ProgramFile,
          removed: Mapping[str, set[str]] | None = None) -> ProgramFile:
    """Union of two files: `update` wins on equal keys; `removed` drops entry keys per section key."""
    removed = removed or {}
    out = ProgramFile(update.engine_version, update.created, {})  # merged contents: any old signature is void
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


def _current(path: str, data: bytes | None, engine_version: str, trusted_keys: Sequence[Any] | None
             ) -> ProgramFile | None:
    """The file now on disk if it is worth merging with (same engine version, intact, trusted), else None."""
    if data is None:
        return None
    try:
        pf = _decode(path, data, trusted_keys)
    except UntrustedFileError as e:
        log.info("replacing %s without merging: its entries cannot go into a signed file: %s", path, e)
        return None
    except ProgramFileError as e:
        log.info("replacing damaged compiled-program file: %s", e)
        return None
    if pf.engine_version != engine_version:
        log.info("replacing %s: written by clmace %s, this is %s", path, pf.engine_version, engine_version)
        return None
    return pf


def _temp_prefix(path: str) -> str:
    return f".tmp-{os.path.basename(path)}-"


def _remove_stale_temps(path: str) -> None:
    """Delete temp files a killed writer of `path` left behind; call only while holding `path`'s lock."""
    directory, prefix = os.path.dirname(os.path.abspath(path)), _temp_prefix(path)
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".clmace")]
    except OSError:
        return
    for name in names:
        # Every writer of `path` holds its lock while its temp file exists, so one seen now is orphaned.
        try:
            os.unlink(os.path.join(directory, name))
            log.info("removed %s, left by a writer that died mid-write", name)
        except OSError:
            pass


def _write_atomic(path: str, data: bytes) -> None:
    # The temp name carries the target's name, so _remove_stale_temps can find what a killed writer left.
    atomic_write_bytes(path, data, prefix=_temp_prefix(path), suffix=".clmace")


def write_file(path: str, pf: ProgramFile, removed: Mapping[str, set[str]] | None = None,
               merge_existing: bool = True, timeout: float | None = None,
               signer: Callable[[bytes], bytes] | None = None, trusted_keys: Sequence[Any] | None = None) -> bool:
    """Merge `pf` into `path` atomically under `path + '.lock'`; False (and a warning) on failure."""
    # With `signer` the result is signed and the file on disk is merged only if one of `trusted_keys` signed
    # it (a signature vouches for every entry). Without one, a signed file on disk is never replaced.
    import filelock  # only writers need it; a warm start reads and never pays for its import (~10 ms)

    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)  # private: see trust.py
        directory = os.path.dirname(os.path.abspath(path))
        early = trust.path_problem(path) if os.path.lexists(path) else trust.path_problem(directory, is_dir=True)
        if early and signer is None:  # checked before the lock file too: nothing is created beside such a file
            log.warning("compiled-program file not written: %s", untrusted_reason(path, early))
            return False
        # The OS releases this lock when its holder dies (even by SIGKILL), so a crash never blocks writers.
        with filelock.FileLock(path + ".lock", timeout=timeout):
            try:
                data, problem = _read_checked(path)
            except FileNotFoundError:
                data, problem = None, None  # its directory was checked above
            except ProgramFileError as e:
                log.info("replacing unreadable compiled-program file: %s", e)
                data, problem = None, None
            if problem and signer is None:
                # Never write into, replace or delete a file (or directory) someone else could have written.
                log.warning("compiled-program file not written: %s", untrusted_reason(path, problem))
                return False
            if signer is None and data is not None and is_signed(data):
                log.warning("compiled-program file not written: %s is signed and this process has no signing "
                            "key (an unsigned file never replaces a signed one)", path)
                return False
            keys = list(trusted_keys or []) if signer is not None else None
            current = _current(path, data, pf.engine_version, keys) if merge_existing else None
            _remove_stale_temps(path)
            _write_atomic(path, dumps(merge(current, pf, removed), signer=signer))
        return True
    except filelock.Timeout:
        log.warning("compiled-program file not written: %s stayed locked for %.0f s", path + ".lock", timeout)
    except OSError as e:
        log.warning("compiled-program file not written to %s: %s", path, e.strerror or e)
    return False
