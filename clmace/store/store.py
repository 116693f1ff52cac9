"""ProgramStore: hands the OpenCL runtime built programs, from the compiled-program file when it can."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import platformdirs

from clmace.core.drivers import compile_target
from clmace.core.errors import ProgramFileError
from clmace.store.capture import nvidia, pocl
from clmace.store.fingerprint import DeviceFingerprint
from clmace.store.format import ProgramEntry, ProgramFile, Section, entry_key, source_hash
from clmace.store.io import UntrustedFileError, holds_signed_file, read_file, write_file

log = logging.getLogger("clmace.store")

PROGRAM_FILE_NAME = "compiled_programs.clmace"
MAX_REJECTIONS_KEPT = 200


def default_cache_dir() -> str:
    """clmace's cache directory: $CLMACE_CACHE_DIR, else the platform's user cache dir."""
    return os.environ.get("CLMACE_CACHE_DIR") or platformdirs.user_cache_dir("clmace")


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
    """A program built from source in this process; its binary is fetched at save time."""

    section: str
    key: str
    fingerprint: DeviceFingerprint
    entry: ProgramEntry
    program: Any = None
    device: Any = None
    dirty: bool = True


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
        self._files: list[tuple[str, ProgramFile]] | None = None
        self._file_state: dict[str, str] = {}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._removed: dict[str, set[str]] = {}
        self._tuned: dict[str, Section] = {}
        self._fingerprints: dict[tuple[int, str], DeviceFingerprint] = {}
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

    def fingerprint(self, device: Any) -> DeviceFingerprint:
        """The fingerprint of a pyopencl.Device (cached per device)."""
        key = (int(device.int_ptr), compile_target(int(device.int_ptr)))  # the target may change once checked
        if key not in self._fingerprints:
            self._fingerprints[key] = DeviceFingerprint.from_cl_device(device)
        return self._fingerprints[key]

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
        if pending is not None:
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

    # ------------------------------------------------------------ building

    def build(self, context: Any, device: Any, name: str, source: str, options: list[str],
              before_compile: Callable[[], None] | None = None) -> Any:
        """A built pyopencl.Program for `device`: from the stored binary if it fits, else from source
        (calling before_compile first: the runtime's driver check, which may change the device's target)."""
        import pyopencl as cl

        options = list(options)
        fp = self.fingerprint(device)
        key = entry_key(source, options)
        opt_text = " ".join(options)
        src_hash = source_hash(source)
        with self._lock:
            entry = self._find(fp, key, name, opt_text, src_hash)
        if entry is not None:
            try:
                if entry.driver_blobs and pocl.is_pocl(device):
                    pocl.restore(entry.driver_blobs, entry.binary)
                program = cl.Program(context, [device], [entry.binary])
                program.build(options=options, devices=[device])
                with self._lock:
                    self.hits += 1
                    if pocl.is_pocl(device):
                        # Later launches may compile new work-group sizes: capture them at save time.
                        tracked = _Pending(fp.key(), key, fp, entry, dirty=False)
                        self._pending.setdefault((fp.key(), key), tracked)
                return program
            except Exception as e:  # pyopencl raises several error types; any means "use the source"
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                with self._lock:
                    self._reject(f"binary of {name!r} refused by the driver ({first}); building from source")
        if before_compile is not None:
            before_compile()
            fp = self.fingerprint(device)
        program = cl.Program(context, source).build(options=options, devices=[device])
        with self._lock:
            self.misses += 1
            self._pending[(fp.key(), key)] = _Pending(
                fp.key(), key, fp, ProgramEntry(name, opt_text, src_hash, b""), program, device)
        return program

    # ------------------------------------------------------------ tuned parameters

    def get_tuned(self, device: Any, key: str) -> dict | None:
        """The tuned-parameter record stored under `key` for this device, or None."""
        fp = self.fingerprint(device)
        with self._lock:
            mine = self._tuned.get(fp.key())
            if mine is not None and key in mine.tuned:
                return mine.tuned[key]
            for _, sec in self._sections(fp):
                if key in sec.tuned:
                    return sec.tuned[key]
        return None

    def put_tuned(self, device: Any, key: str, value: dict) -> None:
        """Record a tuned-parameter record (a small JSON-able dict) for this device; saved by save()."""
        fp = self.fingerprint(device)
        with self._lock:
            self._tuned.setdefault(fp.key(), Section(fp)).tuned[key] = dict(value)

    # ------------------------------------------------------------ saving

    def _collect(self) -> ProgramFile:
        """This process's new and changed entries, binaries fetched and PoCL cache files captured now."""
        import pyopencl as cl

        update = ProgramFile(self.engine_version, time.time())
        for pkey, p in list(self._pending.items()):
            entry = p.entry
            if p.program is not None:
                try:
                    devices = p.program.get_info(cl.program_info.DEVICES)
                    binaries = p.program.get_info(cl.program_info.BINARIES)
                    entry.binary = bytes(binaries[devices.index(p.device)])
                    if not entry.binary:
                        raise ValueError("empty binary")
                except Exception as e:  # a driver that cannot hand out binaries: nothing to store
                    log.info("no binary for %r from the driver (%s); not stored", entry.name, e)
                    del self._pending[pkey]
                    continue
                p.program = p.device = None  # release the program once its binary is in hand
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
                    p.dirty = False  # kept: PoCL programs may still compile new work-group sizes
            return ok

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
