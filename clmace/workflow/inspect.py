"""`clmace inspect`: describe a clmace or MACE compiled-program file as a dict or as text."""

from __future__ import annotations

import datetime
import os
import struct
from collections.abc import Sequence
from dataclasses import fields

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint
from clmace.store import mace, trust
from clmace.store.format import MAGIC, ProgramFile, parse

# What a section header records about the machine: together they identify the GPU model and driver build.
FINGERPRINT_FIELDS = tuple(f.name for f in fields(DeviceFingerprint))


def _iso(ts: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _signature(data: bytes, pf: ProgramFile, key_paths: Sequence[str] | None) -> dict:
    if not pf.signature:
        return {"state": "unsigned", "key_id": None, "reason": "", "text": "unsigned"}
    from clmace.store import signing  # only for signed files: it loads `cryptography`

    status = signing.file_status(data, pf, signing.trusted_key_paths(key_paths))
    return {"state": status.state, "key_id": status.key_id, "reason": status.reason, "text": status.describe()}


def _inspect_clmace(data: bytes, key_paths: Sequence[str] | None = None) -> dict:
    pf, report = parse(data, strict=False)
    crc = {(s, k): ok for s, k, _, ok in report.entries}
    sections = []
    for sec_key, sec in pf.sections.items():
        entries = [{
            "key": key, "name": e.name, "build_options": e.build_options, "source_hash": e.source_hash,
            "binary_size": len(e.binary), "binary_vendor": mace.guess_binary_vendor(e.binary),
            "driver_blobs": len(e.driver_blobs), "driver_blob_bytes": sum(map(len, e.driver_blobs.values())),
            "crc_ok": crc.get((sec_key, key), False),
        } for key, e in sec.entries.items()]
        fp = sec.fingerprint
        sections.append({"key": sec_key, "device": fp.describe(), "fingerprint": vars(fp).copy(),
                         "recorded_fields": list(FINGERPRINT_FIELDS),
                         "entry_count": len(entries), "tuned_count": len(sec.tuned),
                         "tuned_keys": sorted(sec.tuned), "tuned": dict(sec.tuned), "entries": entries})
    all_entries = [e for s in sections for e in s["entries"]]
    return {
        "format": "clmace", "format_version": struct.unpack_from("<I", data, 8)[0],
        "engine_version": pf.engine_version, "created": _iso(pf.created), "signed": bool(pf.signature),
        "signature": _signature(data, pf, key_paths),
        "file_crc_ok": report.file_ok, "entries_crc_ok": all(e["crc_ok"] for e in all_entries),
        "program_count": len(all_entries), "tuned_count": sum(s["tuned_count"] for s in sections),
        "binary_bytes": sum(e["binary_size"] + e["driver_blob_bytes"] for e in all_entries),
        "sections": sections,
    }


def inspect_bytes(data: bytes, trusted_keys: Sequence[str | os.PathLike] | None = None) -> dict:
    """Describe clmace or MACE file bytes; signatures are checked against trusted_keys + $CLMACE_TRUSTED_KEYS."""
    if data.startswith(MAGIC):
        return _inspect_clmace(data, [os.fspath(p) for p in trusted_keys or []])
    return mace.describe(mace.loads_mace(data))


def inspect_path(path: str, trusted_keys: Sequence[str | os.PathLike] | None = None) -> dict:
    """Describe the file at `path` (see inspect_bytes); ProgramFileError if unreadable or bad."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ProgramFileError(f"{path}: cannot read ({e.strerror or e})") from e
    try:
        info = inspect_bytes(data, trusted_keys)
    except ProgramFileError as e:
        raise ProgramFileError(f"{path}: {e}") from None
    if info.get("format") == "clmace":
        keys_set = bool(trusted_keys or os.environ.get("CLMACE_TRUSTED_KEYS"))
        info["trust"] = trust_verdict(path, info["signature"], keys_set)
    return {"path": path, "size": len(data), **info}


def trust_verdict(path: str, signature: dict, keys_set: bool) -> dict:
    """Whether a session of the current user would load this file's programs, and why (store/trust.py)."""
    if signature["state"] == "valid":
        return {"trusted": True, "text": f"trusted: signed by trusted key {signature['key_id']}"}
    if keys_set:
        return {"trusted": False, "text": f"not trusted: trusted keys are set and the file is {signature['text']}"}
    problem = trust.path_problem(path)
    if problem:
        return {"trusted": False, "text": f"not trusted: {problem} (sign it, or move it to a directory only you can "
                                          "write)"}
    return {"trusted": True, "text": "trusted: only you or root can have written it"}


def _ok(flag: bool | None) -> str:
    return "none (legacy layout)" if flag is None else ("ok" if flag else "MISMATCH")


def _render_clmace(info: dict, verbose: bool) -> list[str]:
    lines = [
        f"format:         clmace compiled-program file, format version {info['format_version']}",
        f"engine:         clmace {info['engine_version']}, created {info['created']}",
        f"programs:       {info['program_count']} in {len(info['sections'])} device section(s), "
        f"{info['binary_bytes']} bytes of binaries and driver blobs",
        f"tuned records:  {info['tuned_count']}",
        f"checksums:      file crc32 {_ok(info['file_crc_ok'])}, entries {_ok(info['entries_crc_ok'])}",
        f"signature:      {info['signature']['text']}",
    ]
    if "trust" in info:
        lines.append(f"trust:          {info['trust']['text']} (for uid {os.getuid()})")
    for sec in info["sections"]:
        fp = sec["fingerprint"]
        lines += ["", f"device:         {fp['device_name']} ({fp['device_vendor']})",
                  f"  platform:     {fp['platform_name']}, {fp['platform_version']}",
                  f"  driver:       {fp['driver_version']}; {fp['device_version']}; {fp['opencl_c_version']}",
                  f"  section key:  {sec['key']}; {sec['entry_count']} programs, {sec['tuned_count']} tuned",
                  "  records:      " + ", ".join(sec["recorded_fields"])
                  + " (they identify this device model and its driver build)"]
        if fp["platform_name"] == "Portable Computing Language":
            lines.append("  blobs:        PoCL binaries embed the per-work-group-size code compiled before they were "
                         "saved; blobs count only the files PoCL compiled after that")
        width = max([len(e["name"]) for e in sec["entries"]] + [6])
        lines.append(f"  {'kernel':<{width}}  {'size':>9}  {'blobs':>5}  crc  build options")
        for e in sec["entries"]:
            size = e["binary_size"] + e["driver_blob_bytes"]
            lines.append(f"  {e['name']:<{width}}  {size:>9}  {e['driver_blobs']:>5}  "
                         f"{'ok ' if e['crc_ok'] else 'BAD'}  {e['build_options']}")
            if verbose:
                lines.append(f"  {'':<{width}}  key {e['key']}  source {e['source_hash'][:16]}  "
                             f"binary {e['binary_size']} bytes ({e['binary_vendor']})")
        if verbose and sec["tuned_keys"]:
            from clmace.workflow.tune import render_summary

            lines.append("  tuned (per kernel family: records, default -> tuned device time, chosen variant and "
                         "local size x count):")
            lines += render_summary(sec["tuned"], indent="    ")
    return lines


def _render_mace(info: dict, verbose: bool) -> list[str]:
    lines = [f"format:         MACE compiled-program file, {info['layout']} layout",
             f"entries:        {info['entry_count']}",
             f"checksum:       crc32 {_ok(info['crc_ok'])}"]
    pi = info["platform_info"]
    if pi:
        lines.append(f"platform:       {pi.get('vendor', pi['raw'])}")
        if "opencl_version" in pi:
            lines += [f"  OpenCL:       {pi['opencl_version']}", f"  driver build: {pi['driver_build']}",
                      f"  MACE version: {pi['mace_version']}"]
    lines.append(f"device name:    {info['device_name']!r}")
    lines.append("")
    width = max([len(e["key"]) for e in info["entries"]] + [3])
    width = width if verbose else min(width, 60)
    for e in info["entries"]:
        key = e["key"] if verbose or len(e["key"]) <= width else e["key"][:width - 3] + "..."
        what = e.get("vendor") or e["kind"]
        lines.append(f"  {key:<{width}}  {e['size']:>9}  {what}")
    return lines


def render_text(info: dict, verbose: bool = False) -> str:
    """Human-readable report of `inspect_path`'s dict; verbose adds keys, hashes and vendors."""
    head = [f"file:           {info['path']} ({info['size']} bytes)"]
    body = _render_clmace(info, verbose) if info["format"] == "clmace" else _render_mace(info, verbose)
    return "\n".join(head + body) + "\n"
