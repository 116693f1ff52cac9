"""PoCL kernel-cache capture: keep the per-work-group-size code PoCL compiles at first launch in our file.

PoCL (3.x) caches each program under `$POCL_CACHE_DIR/<2 letters>/<37 letters>/`: `program.bc`, then per
kernel `<kernel>/0-0-0/<kernel>.so` (generic work-group function, made when the binary is queried) and
`<kernel>/<lx>-<ly>-<lz>-goffs0-smallgrid/<kernel>.so` (made at the first launch with that local size).
The program binary (`poclbin`) names that directory in its header and embeds the files the directory held
when the binary was first queried (PoCL 3.1 then returns the same bytes for the program's lifetime). The
store queries it at save time, after the warm-up, so it normally carries the per-size code too; what it
lacks (sizes first launched after that, or in later processes) is captured here as driver blobs and
restored into the cache directory before a build from the binary.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import struct
import tempfile
import time
from dataclasses import dataclass

from clmace.core import drivers
from clmace.store import trust

log = logging.getLogger("clmace.store")

PLATFORM_NAME = "Portable Computing Language"
POCLBIN_MAGIC = b"poclbin\0"
# PoCL rewrites these itself from the binary; capturing them would only double the file.
_SKIP_NAMES = {"program.bc", "last_accessed"}
_SKIP_DIRS = {"0-0-0"}
_HASH_DIR = re.compile(rb"([A-P]{2}/[A-P]{8,64})\0")
MAX_CAPTURE_BYTES = 64 << 20
# A RAM-backed directory is used for PoCL's cache only with this much room (Docker's /dev/shm is 64 MB).
RAM_DIR_MIN_FREE = 512 << 20


@dataclass(frozen=True)
class PoclCacheSetup:
    """Where PoCL's kernel cache lives for this process, and whether clmace chose it."""

    path: str
    managed: bool


_setup: PoclCacheSetup | None = None
_STARTED = time.time()  # files PoCL writes from now on are this process's own compiles
_RESTORED: set[str] = set()  # cache files this process restored from trusted compiled-program files


def configure_cache_dir(cache_dir: str) -> PoclCacheSetup:
    """Point POCL_CACHE_DIR at a private directory: the user's when it is private, else one clmace manages;
    call before PoCL's first query."""
    global _setup
    if _setup is not None:
        return _setup
    user = trust.users_cache_dir("POCL_CACHE_DIR")
    if user:
        _setup = PoclCacheSetup(user, managed=False)
        return _setup
    for path in (managed_dir(cache_dir), os.path.join(cache_dir, "pocl")):
        problem = trust.private_dir_problem(path)
        if problem is None:
            break
        log.info("PoCL kernel cache not put in %s: %s", path, problem)
    else:
        path = tempfile.mkdtemp(prefix="clmace-pocl-")  # private by construction; gone with this machine's /tmp
    drivers.set_driver_variable("POCL_CACHE_DIR", path)
    _setup = PoclCacheSetup(path, managed=True)
    log.debug("PoCL kernel cache: %s", path)
    return _setup


def managed_dir(cache_dir: str) -> str:
    """The PoCL kernel cache clmace manages for one clmace cache directory.

    Everything PoCL keeps there for our programs is restored from the compiled-program file, so it is scratch
    space: it goes to a RAM-backed directory when one has room (unpacking a model's programs creates ~200
    files and directories, ~40 ms of a warm start on a disk, measured), else to `<cache_dir>/pocl`.
    """
    ram = _ram_dir()
    if ram is None:
        return os.path.join(cache_dir, "pocl")
    digest = hashlib.sha256(os.path.abspath(cache_dir).encode()).hexdigest()[:16]
    # "-2": directories of earlier clmace versions may hold files restored from files that were never checked.
    return os.path.join(ram, f"clmace-pocl-{os.getuid()}-{digest}-2")


def _ram_dir() -> str | None:
    """A writable tmpfs directory with at least RAM_DIR_MIN_FREE bytes free (XDG_RUNTIME_DIR, /dev/shm)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if not candidate or not os.path.isdir(candidate) or not os.access(candidate, os.W_OK | os.X_OK):
            continue
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        if st.f_bavail * st.f_frsize >= RAM_DIR_MIN_FREE and _is_tmpfs(candidate):
            return candidate
    return None


def _is_tmpfs(path: str) -> bool:
    """True when path lies on a tmpfs mount (/proc/mounts; the longest mount point that contains it)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")):
                    if len(parts[1]) > len(best):
                        best, kind = parts[1], parts[2]
    except OSError:
        return False
    return kind == "tmpfs"


def default_cache_root() -> str:
    """PoCL's own default kernel-cache directory (used when POCL_CACHE_DIR is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pocl", "kcache")


def cache_root() -> str:
    """The kernel-cache directory PoCL uses in this process."""
    return os.environ.get("POCL_CACHE_DIR") or default_cache_root()


def is_pocl(device: object) -> bool:
    """True when `device` belongs to a PoCL platform."""
    try:
        return device.platform.name == PLATFORM_NAME  # type: ignore[attr-defined]
    except Exception:  # a released or foreign device object: treat as not PoCL
        return False


def program_dir(binary: bytes) -> str | None:
    """The cache sub-directory ('AB/CDEF...') a poclbin names in its header, or None if not a poclbin."""
    if not binary.startswith(POCLBIN_MAGIC):
        return None
    m = _HASH_DIR.search(binary, 0, 512)
    return m.group(1).decode("ascii") if m else None


def snapshot(binary: bytes, root: str | None = None) -> dict[str, bytes]:
    """Files PoCL compiled for this program beyond what its binary holds, keyed by path under the root.

    Only regular files that PoCL wrote while this process ran, or that this process restored from a trusted
    file, are taken: whatever else the directory holds is not vouched for by this process.
    """
    rel = program_dir(binary)
    root = root or cache_root()
    if rel is None or not os.path.isdir(os.path.join(root, rel)):
        return {}
    blobs: dict[str, bytes] = {}
    total = 0
    base = os.path.join(root, rel)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name in _SKIP_NAMES or name.startswith(("tempfile", ".clmace-")):
                continue
            full = os.path.join(dirpath, name)
            key = os.path.relpath(full, root).replace(os.sep, "/")
            if _embedded(binary, os.path.relpath(full, base)) or not _ours(full, key):
                continue
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # PoCL may be replacing it right now; the next save picks it up
            total += len(data)
            if total > MAX_CAPTURE_BYTES:
                log.info("PoCL capture of %s stopped at %d MiB", rel, MAX_CAPTURE_BYTES >> 20)
                return blobs
            blobs[key] = data
    return blobs


def _ours(full: str, key: str) -> bool:
    """A regular file PoCL wrote during this process, or one this process restored from a trusted file."""
    try:
        st = os.lstat(full)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (key in _RESTORED or st.st_mtime >= _STARTED - 1.0)


def _embedded(binary: bytes, rel: str) -> bool:
    """True when the poclbin already carries this file (it stores '/<path>' after a u32 length)."""
    name = ("/" + rel.replace(os.sep, "/")).encode("utf-8")
    return struct.pack("<I", len(name)) + name in binary


def restore(blobs: dict[str, bytes], binary: bytes, root: str | None = None) -> int:
    """Write captured files back under the cache root where missing; returns how many were written.

    Only files inside the directory this program's binary names are written (a blob aimed at another
    program's directory is dropped), and nothing on the way is followed if it is a symlink (trust.write_under).
    """
    from clmace.store.format import check_blob_path

    root = root or cache_root()
    own = program_dir(binary)
    written = 0
    for rel, data in blobs.items():
        if check_blob_path(rel) or own is None or not rel.startswith(own + "/"):
            log.info("PoCL cache file %s not restored: outside its program's directory", rel)
            continue
        try:
            if trust.write_under(root, rel, data):
                written += 1
                _RESTORED.add(rel)
        except OSError as e:
            log.info("PoCL cache file %s not restored: %s", rel, e.strerror or e)
    return written
