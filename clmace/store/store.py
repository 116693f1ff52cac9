"""ProgramStore: the program cache (core.program_cache) kept in compiled-program files: load, merge, save."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint
from clmace.core.paths import default_cache_dir
from clmace.core.program_cache import ProgramKey
from clmace.store.capture import nvidia, pocl
from clmace.store.format import ProgramEntry, ProgramFile, Section, entry_key, source_hash
from clmace.store.io import UntrustedFileError, holds_signed_file, read_file, write_file

log = logging.getLogger("clmace.store")

PROGRAM_FILE_NAME = "compiled_programs.clmace"
MAX_REJECTIONS_KEPT = 200


# Background saves in flight, by file: a store reading one of these files waits for them first.
_SAVERS: dict[str, list[threading.Thread]] = {}
_SAVERS_LOCK = threading.Lock()


def wait_for_saves(path: str | None = None) -> None:
    """Join this process's background saves (to one file, or all of them)."""
    with _SAVERS_LOCK:
        keys = [os.path.abspath(path)] if path else list(_SAVERS)
        threads = [t for k in keys for t in _SAVERS.pop(k, [])]
    for t in threads:
        if t is not threading.current_thread():
            t.join()



def default_program_path() -> str:
    """The writable compiled-program file used when none is named."""
    return os.path.join(default_cache_dir(), PROGRAM_FILE_NAME)


def engine_version() -> str:
    """This clmace's version string (read lazily: the package may still be importing)."""
    import clmace

    version = getattr(clmace, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib.metadata import version as dist_version

        return dist_version("clmace")
    except Exception:  # not installed as a distribution (a source checkout)
        return "0+unknown"


@dataclass
class _Pending:
    """A program this process built from source, or loaded on PoCL (whose cache may grow until save)."""

    section: str
    key: str
    fingerprint: DeviceFingerprint
    entry: ProgramEntry
    dirty: bool = True
    fetch: Callable[[], bytes] | None = None  # reads the binary off the driver; called once, when saving


class ProgramStore:
    """Builds OpenCL programs from stored binaries when they fit the device, else from source; saves them."""

    # Signing (docs/HARDENING.md): `sign_key` (PEM private key path) signs what save() writes; `trusted_keys`
    # (PEM public key paths, plus $CLMACE_TRUSTED_KEYS) make any file not signed by one of them (or by
    # `sign_key`) foreign code. Without a sign key a signed file is never replaced by an unsigned one: save()
    # writes to `unsigned_path` if given, else nothing.

    def __init__(self, path: str | None = None, search_paths: list[str] | None = None,
                 engine_version_: str | None = None, manage_pocl_cache: bool = True,
                 read_only: bool = False, sign_key: str | os.PathLike | None = None,
                 trusted_keys: Sequence[str | os.PathLike] | None = None,
                 unsigned_path: str | None = None) -> None:
        self.path = path if path is not None else default_program_path()
        env = os.environ.get("CLMACE_PROGRAM_PATH", "")
        self.search_paths = [*(search_paths or []), *(p for p in env.split(os.pathsep) if p)]
        self.engine_version = engine_version_ or engine_version()
        self.read_only = read_only
        self.unsigned_path = unsigned_path
        self._signer, self.trusted_keys, self.key_ids = _load_keys(sign_key, trusted_keys)
        self.hits = 0
        self.misses = 0
        self.rejections: list[str] = []
        self.rejected = 0
        self.pocl_cache = pocl.configure_cache_dir(default_cache_dir()) if manage_pocl_cache else None
        self.cuda_cache = nvidia.configure_cache_dir(default_cache_dir()) if manage_pocl_cache else None
        self._lock = threading.RLock()
        self._fetch_lock = threading.Lock()  # binaries are read outside _lock: PoCL compiles to hand one out
        self._saver: threading.Thread | None = None
        self._files: list[tuple[str, ProgramFile]] | None = None
        self._file_state: dict[str, str] = {}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._removed: dict[str, set[str]] = {}
        self._tuned: dict[str, Section] = {}
        self._seen_sections: set[tuple[str, str, str]] = set()

    # ------------------------------------------------------------ loading

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_KEPT:
            self.rejections.append(reason)
        log.info("%s", reason)

    def _load(self) -> list[tuple[str, ProgramFile]]:
        if self._files is not None:
            return self._files
        files: list[tuple[str, ProgramFile]] = []
        wait_for_saves(self.path)  # this process may still be writing the file
        # With trusted keys, the unsigned fallback file would only be refused: not worth a warning per start.
        extra = [self.unsigned_path] if self.unsigned_path and self.trusted_keys is None else []
        paths = list(dict.fromkeys([self.path, *self.search_paths, *extra]))
        for path in paths:
            try:
                pf = read_file(path, self.trusted_keys)
            except FileNotFoundError:
                self._file_state[path] = "missing"
                continue
            except UntrustedFileError as e:
                self._file_state[path] = f"refused: {e}"
                log.warning("compiled-program file not used, its programs will be built from source: %s", e)
                self._reject(str(e))
                continue
            except ProgramFileError as e:
                self._file_state[path] = f"damaged: {e}"
                log.warning("compiled-program file ignored, its programs will be rebuilt: %s", e)
                continue
            if pf.engine_version != self.engine_version:
                self._file_state[path] = f"skipped: written by clmace {pf.engine_version}"
                self._reject(f"{path} skipped: written by clmace {pf.engine_version}, "
                             f"this is {self.engine_version}")
                continue
            self._file_state[path] = f"ok: {len(pf.sections)} section(s)"
            files.append((path, pf))
            for sec in pf.sections.values():
                # Before the driver starts (it reads its cache at init), so matched against the GPUs the kernel
                # driver lists rather than OpenCL's devices; the file is trusted by now (read_file).
                if nvidia.is_nvidia(sec.fingerprint.platform_name) and nvidia.present(sec.fingerprint):
                    for entry in sec.entries.values():
                        nvidia.restore(entry.driver_blobs)
        if all(state == "missing" for state in self._file_state.values()):
            log.warning("no compiled-program file found (searched: %s); compiling programs from source",
                        ", ".join(paths))
        self._files = files
        return files

    def load(self) -> dict[str, str]:
        """Read the files now (build() does it lazily); returns each path's state ('ok: ...', 'missing', ...)."""
        with self._lock:
            self._load()
            return dict(self._file_state)

    def _sections(self, fp: DeviceFingerprint) -> list[tuple[str, Section]]:
        """Sections for this device, file by file; explains once why near-miss sections are skipped."""
        key = fp.key()
        found = []
        for path, pf in self._load():
            for sec_key, sec in pf.sections.items():
                if sec_key == key:
                    found.append((path, sec))
                elif (path, sec_key, key) not in self._seen_sections:
                    self._seen_sections.add((path, sec_key, key))
                    if sec.fingerprint.is_same_device(fp):
                        self._reject(f"{path}: section for {fp.device_name} skipped: "
                                     f"{fp.mismatch(sec.fingerprint)}")
                    else:
                        log.debug("%s: section for another device (%s)", path, sec.fingerprint.describe())
        return found

    def _find(self, fp: DeviceFingerprint, key: str, name: str, options: str, src_hash: str
              ) -> ProgramEntry | None:
        sec_key = fp.key()
        pending = self._pending.get((sec_key, key))
        if pending is not None:  # not yet read off the driver: None, and PoCL's own cache makes the build quick
            return pending.entry if pending.entry.binary else None
        for path, sec in self._sections(fp):
            entry = sec.entries.get(key)
            if entry is not None and entry.source_hash == src_hash:
                return entry
            if entry is not None:
                self._reject(f"{path}: {name!r} has source hash {entry.source_hash[:12]}, "
                             f"the source now gives {src_hash[:12]}; rebuilding")
            for old_key, old in sec.entries.items():
                if old.name == name and old.build_options == options and old.source_hash != src_hash:
                    self._reject(f"{path}: source of {name!r} {options} changed; rebuilding and replacing")
                    if path in (self.path, self.unsigned_path):
                        self._removed.setdefault(sec_key, set()).add(old_key)
        return None

    # ------------------------------------------------------------ the program cache (core.program_cache)

    def get_program(self, device: DeviceFingerprint, key: ProgramKey) -> bytes | None:
        """The stored binary of this program for this device when one fits (its driver-cache files restored)."""
        ekey, options, src_hash = entry_key(key.source, key.options), " ".join(key.options), source_hash(key.source)
        with self._lock:
            entry = self._find(device, ekey, key.name, options, src_hash)
            if entry is None:
                return None
            self.hits += 1
            if device.platform_name == pocl.PLATFORM_NAME:
                if entry.driver_blobs:
                    pocl.restore(entry.driver_blobs, entry.binary)
                # Later launches may compile new work-group sizes: capture them at save time.
                self._pending.setdefault((device.key(), ekey), _Pending(device.key(), ekey, device, entry, False))
        return entry.binary

    def refuse_program(self, device: DeviceFingerprint, key: ProgramKey, reason: str) -> None:
        """The driver refused a binary get_program gave: count it as a miss, not a hit."""
        with self._lock:
            self.hits -= 1
            self._pending.pop((device.key(), entry_key(key.source, key.options)), None)
            self._reject(f"binary of {key.name!r} refused by the driver ({reason}); building from source")

    def put_program(self, device: DeviceFingerprint, key: ProgramKey, binary: Callable[[], bytes]) -> None:
        """Keep a program compiled from source in this process; save() reads its binary and writes it."""
        ekey = entry_key(key.source, key.options)
        entry = ProgramEntry(key.name, " ".join(key.options), source_hash(key.source), b"")
        with self._lock:
            self.misses += 1
            self._pending[(device.key(), ekey)] = _Pending(device.key(), ekey, device, entry, fetch=binary)

    def _fetch(self, p: _Pending) -> None:
        """Read a pending program's binary off the driver, once (a driver that hands out none: nothing kept)."""
        with self._fetch_lock:  # taken before _lock, never inside it
            if p.fetch is None:
                return
            binary = bytes(p.fetch())
            with self._lock:
                e = p.entry
                p.entry = ProgramEntry(e.name, e.build_options, e.source_hash, binary, e.driver_blobs)
                p.fetch = None
                if not binary:
                    self._pending.pop((p.section, p.key), None)

    # ------------------------------------------------------------ tuned parameters

    def get_tuned(self, device: DeviceFingerprint, key: str) -> dict | None:
        """The tuned-parameter record stored under `key` for this device, or None."""
        with self._lock:
            mine = self._tuned.get(device.key())
            if mine is not None and key in mine.tuned:
                return mine.tuned[key]
            for _, sec in self._sections(device):
                if key in sec.tuned:
                    return sec.tuned[key]
        return None

    def put_tuned(self, device: DeviceFingerprint, key: str, record: dict) -> None:
        """Record a tuned-parameter record (a small JSON-able dict) for this device; saved by save()."""
        with self._lock:
            self._tuned.setdefault(device.key(), Section(device)).tuned[key] = dict(record)

    # ------------------------------------------------------------ saving

    def _collect(self) -> ProgramFile:
        """This process's new and changed entries, with the PoCL cache files captured now."""
        update = ProgramFile(self.engine_version, time.time())
        for p in list(self._pending.values()):
            if p.fetch is not None:  # put after this save began reading binaries: the next save writes it
                continue
            entry = p.entry
            if pocl.program_dir(entry.binary):
                blobs = {**entry.driver_blobs, **pocl.snapshot(entry.binary)}
                if blobs != entry.driver_blobs:
                    # A copy: the loaded file's entry object must keep describing what is on disk.
                    p.entry = entry = ProgramEntry(entry.name, entry.build_options, entry.source_hash,
                                                   entry.binary, blobs)
                    p.dirty = True
            if p.dirty:
                sec = update.sections.setdefault(p.section, Section(p.fingerprint))
                sec.entries[p.key] = entry
        self._attach_cuda_cache(update)
        for sec_key, tuned in self._tuned.items():
            update.sections.setdefault(sec_key, Section(tuned.fingerprint)).tuned.update(tuned.tuned)
        return update

    @staticmethod
    def _attach_cuda_cache(update: ProgramFile) -> None:
        """Store the CUDA JIT cache with the first new entry of each NVIDIA section (it serves them all)."""
        for sec in update.sections.values():
            if not sec.entries or not nvidia.is_nvidia(sec.fingerprint.platform_name):
                continue
            blobs = nvidia.snapshot()
            if blobs:
                key = min(sec.entries)
                e = sec.entries[key]
                sec.entries[key] = ProgramEntry(e.name, e.build_options, e.source_hash, e.binary,
                                                {**e.driver_blobs, **blobs})

    def _save_target(self, update: ProgramFile) -> str | None:
        """Where save() may write: `path`, or `unsigned_path` when an unsigned file must not go to `path`."""
        if self._signer is not None:
            return self.path
        state = self._file_state.get(self.path, "")
        if self.trusted_keys is None and state.startswith("refused"):
            log.warning("compiled programs not saved: %s was %s", self.path, state)
            return self.unsigned_path
        if self.trusted_keys is None and not holds_signed_file(self.path):
            return self.path
        if self.trusted_keys is not None:
            reason = "trusted keys are set and no sign_key was given (an unsigned file would be refused)"
        else:
            reason = f"{self.path} is signed and no sign_key was given"
        if self.unsigned_path:
            log.info("saving unsigned programs to %s: %s", self.unsigned_path, reason)
            return self.unsigned_path
        count = sum(len(sec.entries) for sec in update.sections.values())
        log.warning("%d compiled program(s) not saved: %s; pass unsigned_path= to keep them elsewhere",
                    count, reason)
        return None

    def save(self) -> bool:
        """Write new or changed programs into the file (atomic, merged under a lock); False on failure."""
        if self.read_only:
            return True
        with self._lock:
            pending = [p for p in self._pending.values() if p.fetch is not None]
        for p in pending:  # without _lock: the session may plan and build meanwhile
            self._fetch(p)
        with self._lock:
            update = self._collect()
            if not update.sections and not self._removed:
                return True
            target = self._save_target(update)
            if target is None:
                return False
            ok = write_file(target, update, removed=self._removed, signer=self._signer,
                            trusted_keys=self.trusted_keys)
            if ok:
                self._removed = {}
                self._tuned = {}
                for p in self._pending.values():
                    p.dirty = p.fetch is not None  # kept: PoCL programs may still compile new work-group sizes
            return ok

    def save_in_background(self) -> None:
        """save() on a thread (reading binaries makes PoCL compile again, 0.5-0.9 s a program); wait() joins it,
        and so do a later store's first read of the same file and the interpreter's exit."""
        self.wait()
        # Registered (again) now, after pyopencl's import: atexit runs the latest registration first.
        atexit.unregister(wait_for_saves)
        atexit.register(wait_for_saves)
        self._saver = threading.Thread(target=self._save_logged, name="clmace-save", daemon=True)
        with _SAVERS_LOCK:
            _SAVERS.setdefault(os.path.abspath(self.path), []).append(self._saver)
        self._saver.start()

    def _save_logged(self) -> None:
        try:
            self.save()
        except Exception as e:  # noqa: BLE001 - a failed save costs the next start its speed, never this run
            log.warning("compiled programs not saved: %s", e)

    def wait(self) -> None:
        """Block until a save_in_background() of this store has finished."""
        if self._saver is not None:
            self._saver.join()

    def status(self) -> dict:
        """Counters and file states, for logs and `clmace inspect`."""
        with self._lock:
            return {
                "path": self.path,
                "search_paths": list(self.search_paths),
                "files": dict(self._file_state),
                "engine_version": self.engine_version,
                "hits": self.hits,
                "misses": self.misses,
                "rejected": self.rejected,
                "rejections": list(self.rejections),
                "unsaved": sum(1 for p in self._pending.values() if p.dirty),
                "pocl_cache_dir": self.pocl_cache.path if self.pocl_cache else pocl.cache_root(),
                "pocl_cache_managed": bool(self.pocl_cache and self.pocl_cache.managed),
                "signing": "on" if self._signer is not None else "off",
                "trusted_key_ids": list(self.key_ids),
                "unsigned_path": self.unsigned_path,
            }


def _load_keys(sign_key: str | os.PathLike | None, trusted: Sequence[str | os.PathLike] | None
               ) -> tuple[Any, list[Any] | None, list[str]]:
    """(signer or None, trusted public keys or None when no key is in play, their fingerprints)."""
    if sign_key is None and not trusted and not os.environ.get("CLMACE_TRUSTED_KEYS"):
        return None, None, []  # no `cryptography` import on the common path: start-up time matters
    from clmace.store import signing

    keys = [signing.load_public_key(p) for p in signing.trusted_key_paths(trusted)]
    signer = None
    if sign_key is not None:
        private = signing.load_private_key(sign_key)
        signer = signing.signer(private)
        keys.append(private.public_key())  # a signing store trusts what it signed itself
    if not keys:
        return None, None, []
    return signer, keys, list(dict.fromkeys(signing.key_fingerprint(k) for k in keys))
