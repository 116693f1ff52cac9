"""`clmace cache list|prune|clear`: what the default cache holds, and removing what no longer fits."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint
from clmace.core.paths import default_cache_dir
from clmace.store.capture.pocl import managed_dir as pocl_managed_dir
from clmace.store.io import read_file, write_file
from clmace.store.store import engine_version


def _dir_size(path: str) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                size += os.path.getsize(os.path.join(root, name))
                files += 1
            except OSError:
                pass  # a file removed while walking is simply not counted
    return files, size


def program_files(cache_dir: str | None = None) -> list[str]:
    """Compiled-program files directly inside the cache directory."""
    root = cache_dir or default_cache_dir()
    if not os.path.isdir(root):
        return []
    # Writers' temp files also end in .clmace but start with a dot: never touch them.
    return sorted(os.path.join(root, n) for n in os.listdir(root) if n.endswith(".clmace") and not n.startswith("."))


def list_cache(cache_dir: str | None = None) -> dict:
    """Describe the cache: each compiled-program file's sections and sizes, and PoCL's kernel cache."""
    root = cache_dir or default_cache_dir()
    files = []
    for path in program_files(root):
        entry: dict = {"path": path, "size": os.path.getsize(path)}
        try:
            pf = read_file(path)
            entry.update(engine_version=pf.engine_version, sections=[
                {"device": sec.fingerprint.describe(), "entries": len(sec.entries), "tuned": len(sec.tuned)}
                for sec in pf.sections.values()])
        except ProgramFileError as exc:
            entry["error"] = str(exc)
        files.append(entry)
    pocl_dir = pocl_managed_dir(root)
    pocl_files, pocl_size = _dir_size(pocl_dir)
    models_dir = os.path.join(root, "models")  # clmace.model_cache: converted models of .onnx paths
    model_files, model_size = _dir_size(models_dir)
    return {"cache_dir": root, "program_files": files,
            "pocl_cache": {"path": pocl_dir, "files": pocl_files, "size": pocl_size},
            "converted_models": {"path": models_dir, "files": model_files, "size": model_size}}


def prune(present: Iterable[DeviceFingerprint], cache_dir: str | None = None) -> list[str]:
    """Drop files of other engine versions or damaged ones, and sections of devices not present; say what went."""
    keep = {fp.key() for fp in present}
    removed = []
    for path in program_files(cache_dir):
        try:
            pf = read_file(path)
        except ProgramFileError as exc:
            os.unlink(path)
            removed.append(f"{path}: deleted, damaged ({exc})")
            continue
        if pf.engine_version != engine_version():
            os.unlink(path)
            removed.append(f"{path}: deleted, written by clmace {pf.engine_version}")
            continue
        gone = [k for k in pf.sections if k not in keep]
        if gone and pf.signature:
            removed.append(f"{path}: signed, left as it is ({len(gone)} section(s) for absent devices)")
            continue
        for key in gone:
            removed.append(f"{path}: section for {pf.sections.pop(key).fingerprint.describe()} (device not present)")
        if gone:
            write_file(path, pf, merge_existing=False)
    return removed


def clear(cache_dir: str | None = None) -> int:
    """Delete the whole cache directory and the PoCL kernel cache clmace keeps for it; return the bytes freed."""
    root = cache_dir or default_cache_dir()
    freed = 0
    for path in dict.fromkeys((pocl_managed_dir(root), root)):  # the PoCL cache may live inside root
        if os.path.isdir(path):
            freed += _dir_size(path)[1]
            shutil.rmtree(path)
    return freed
