"""The clmace compiled-program file format: dataclasses, `dumps` and a validating `loads` (docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint

MAGIC = b"CLMACEPF"
FORMAT_VERSION = 1
FLAG_SIGNED = 0x1  # a signature block precedes the CRC trailer; clmace.store.signing gives it meaning
KNOWN_FLAGS = FLAG_SIGNED
_HEADER = struct.Struct("<8sIId")  # magic, format version, flags, created
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FP_STRINGS = (
    "platform_name", "platform_vendor", "platform_version", "device_name",
    "device_vendor", "device_version", "driver_version", "opencl_c_version",
)
# Smallest possible encodings, used to reject absurd counts before looping over them.
_MIN_ENTRY = 4 + 4 * 4 + 4 + 4 + 4  # size, 4 empty strings, empty binary, blob count, crc
_MIN_TUNED = 4 + 4


@dataclass
class ProgramEntry:
    """One compiled program: its binary for one device plus driver-level cache files."""

    name: str
    build_options: str
    source_hash: str
    binary: bytes
    driver_blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Section:
    """Everything stored for one device fingerprint: programs and tuned parameters."""

    fingerprint: DeviceFingerprint
    entries: dict[str, ProgramEntry] = field(default_factory=dict)
    tuned: dict[str, dict] = field(default_factory=dict)


@dataclass
class ProgramFile:
    """A whole compiled-program file; `sections` is keyed by `DeviceFingerprint.key()`."""

    engine_version: str
    created: float
    sections: dict[str, Section] = field(default_factory=dict)
    signature: bytes = b""


@dataclass
class CrcReport:
    """CRC results gathered while reading: (section key, entry key, name, ok) per entry, and the file's."""

    entries: list[tuple[str, str, str, bool]] = field(default_factory=list)
    file_ok: bool = True
    file_stored: int = 0
    file_computed: int = 0


def source_hash(source: str) -> str:
    """sha256 hex digest of a kernel source."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def entry_key(source: str, options: Sequence[str]) -> str:
    """Entry key: sha256 of the source and the build options (NUL-separated, so the split is unambiguous)."""
    h = hashlib.sha256(source.encode("utf-8"))
    for opt in options:
        h.update(b"\0" + opt.encode("utf-8"))
    return h.hexdigest()


def check_blob_path(path: str) -> str | None:
    """Return why `path` is not a safe relative driver-blob path, or None when it is."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return f"driver blob path {path!r} is not a relative POSIX path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"driver blob path {path!r} has an empty, '.' or '..' component"
    return None


# ---------------------------------------------------------------- writing


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _blob(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + bytes(b)


def _entry_body(key: str, e: ProgramEntry) -> bytes:
    parts = [_str(key), _str(e.name), _str(e.build_options), _str(e.source_hash), _blob(e.binary)]
    parts.append(struct.pack("<I", len(e.driver_blobs)))
    for path in sorted(e.driver_blobs):
        parts += [_str(path), _blob(e.driver_blobs[path])]
    return b"".join(parts)


def _section(sec: Section) -> bytes:
    fp = sec.fingerprint
    parts = [_str(getattr(fp, name)) for name in _FP_STRINGS]
    parts.append(struct.pack("<II", fp.address_bits, len(sec.entries)))
    for key in sorted(sec.entries):
        body = _entry_body(key, sec.entries[key])
        parts += [struct.pack("<I", len(body)), body, struct.pack("<I", zlib.crc32(body))]
    parts.append(struct.pack("<I", len(sec.tuned)))
    for key in sorted(sec.tuned):
        parts += [_str(key), _str(json.dumps(sec.tuned[key], sort_keys=True, separators=(",", ":")))]
    payload = b"".join(parts)
    return struct.pack("<I", len(payload)) + payload


def dumps(pf: ProgramFile, signer: Callable[[bytes], bytes] | None = None) -> bytes:
    """Serialize a ProgramFile (sorted, so output is deterministic); `signer` makes the signature block."""
    # Without a signer, `pf.signature` (as read) is written back verbatim: it verifies only if nothing changed.
    flags = FLAG_SIGNED if (signer is not None or pf.signature) else 0
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION, flags, float(pf.created)), _str(pf.engine_version)]
    parts.append(struct.pack("<I", len(pf.sections)))
    parts += [_section(pf.sections[k]) for k in sorted(pf.sections)]
    body = b"".join(parts)
    # The signature covers every byte before its block, the header's SIGNED flag included.
    signature = signer(body) if signer is not None else pf.signature
    data = body + _blob(signature) if flags else body
    return data + struct.pack("<I", zlib.crc32(data))


def signed_part(data: bytes, pf: ProgramFile) -> bytes:
    """The bytes a signature covers in file `data` that parsed as `pf`: all before the signature block."""
    return bytes(data[:len(data) - 4 - 4 - len(pf.signature)])


# ---------------------------------------------------------------- reading


class _Reader:
    """Cursor over `data[pos:end]` that checks every length against the bytes left before slicing."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def left(self) -> int:
        return self.end - self.pos

    def need(self, n: int, what: str) -> None:
        if n > self.left():
            raise ProgramFileError(f"truncated: {what} needs {n} bytes, {self.left()} left")

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return v

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def blob(self, what: str) -> bytes:
        n = self.u32(f"{what} length")
        return self.raw(n, what)

    def str(self, what: str) -> str:
        raw = self.blob(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProgramFileError(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})") from None


def _read_header(data: bytes) -> tuple[int, float]:
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise ProgramFileError(f"truncated: magic needs {len(MAGIC)} bytes, {len(data)} left")
        raise ProgramFileError(f"not a clmace compiled-program file (magic {bytes(data)!r})")
    if data[:8] != MAGIC:
        raise ProgramFileError(f"not a clmace compiled-program file (magic {bytes(data[:8])!r})")
    if len(data) < _HEADER.size:
        raise ProgramFileError(f"truncated: header needs {_HEADER.size} bytes, {len(data)} left")
    _, version, flags, created = _HEADER.unpack_from(data, 0)
    if version > FORMAT_VERSION:
        raise ProgramFileError(f"format version {version} is newer than this clmace ({FORMAT_VERSION})")
    if version == 0:
        raise ProgramFileError("format version 0 is invalid")
    if flags & ~KNOWN_FLAGS:
        raise ProgramFileError(f"unknown flags 0x{flags:08x} (this clmace knows 0x{KNOWN_FLAGS:08x})")
    if not math.isfinite(created):
        raise ProgramFileError(f"created time {created!r} is not a finite number")
    return flags, created


def _read_fingerprint(r: _Reader, where: str) -> DeviceFingerprint:
    values: dict[str, Any] = {name: r.str(f"{where} {name}") for name in _FP_STRINGS}
    values["address_bits"] = r.u32(f"{where} address_bits")
    return DeviceFingerprint(**values)


def _entry_label(body: bytes) -> str:
    """Best-effort 'name options' of an entry body whose CRC failed, for the error message."""
    try:
        r = _Reader(body, 0, len(body))
        r.str("key")
        return f"{r.str('name')} {r.str('options')}".strip()
    except ProgramFileError:
        return "?"


def _read_entry(r: _Reader, where: str, strict: bool, report: CrcReport, sec_key: str
                ) -> tuple[str, ProgramEntry]:
    size = r.u32(f"{where} size")
    body_start = r.pos
    if size > r.left():
        # Parse what is there so the message names the innermost field that runs past the end.
        _parse_entry_body(_Reader(r.data, body_start, r.end), where)
        r.need(size, where)
    r.pos += size
    stored_crc = r.u32(f"{where} crc")
    body = memoryview(r.data)[body_start:body_start + size]  # a view: no copy of a large binary
    crc_ok = zlib.crc32(body) == stored_crc
    if not crc_ok and strict:
        raise ProgramFileError(f"crc mismatch in {where} {_entry_label(bytes(body))!r}")
    key, entry = _parse_entry_body(_Reader(r.data, body_start, body_start + size), where)
    report.entries.append((sec_key, key, entry.name, crc_ok))
    return key, entry


def _parse_entry_body(e: _Reader, where: str) -> tuple[str, ProgramEntry]:
    key = e.str(f"{where} key")
    if not _HEX64.fullmatch(key):
        raise ProgramFileError(f"{where} key {key[:80]!r} is not a sha256 hex digest")
    name = e.str(f"{where} name")
    where = f"{where} {name!r}"
    options = e.str(f"{where} build options")
    src_hash = e.str(f"{where} source hash")
    binary = e.blob(f"{where} binary")
    count = e.u32(f"{where} driver blob count")
    e.need(count * 8, f"{where} {count} driver blobs")
    blobs: dict[str, bytes] = {}
    for i in range(count):
        path = e.str(f"{where} driver blob {i} path")
        reason = check_blob_path(path)
        if reason:
            raise ProgramFileError(f"{where}: {reason}")
        if path in blobs:
            raise ProgramFileError(f"{where}: driver blob {path!r} appears twice")
        blobs[path] = e.blob(f"{where} driver blob {path!r}")
    if e.left():
        raise ProgramFileError(f"{where}: {e.left()} unexplained bytes after its fields")
    return key, ProgramEntry(name, options, src_hash, binary, blobs)


def _read_section(r: _Reader, index: int, strict: bool, report: CrcReport) -> Section:
    where = f"section {index}"
    size = r.u32(f"{where} size")
    # Parse inside what is there; a section cut short fails at its innermost field, which names it best.
    s = _Reader(r.data, r.pos, min(r.pos + size, r.end))
    fp = _read_fingerprint(s, where)
    sec = Section(fp)
    sec_key = fp.key()
    count = s.u32(f"{where} entry count")
    s.need(count * _MIN_ENTRY, f"{where} {count} entries")
    for i in range(count):
        key, entry = _read_entry(s, f"{where} entry {i}", strict, report, sec_key)
        if key in sec.entries:
            raise ProgramFileError(f"{where} entry {i} {entry.name!r}: key {key} appears twice")
        sec.entries[key] = entry
    count = s.u32(f"{where} tuned count")
    s.need(count * _MIN_TUNED, f"{where} {count} tuned records")
    for i in range(count):
        key = s.str(f"{where} tuned record {i} key")
        text = s.str(f"{where} tuned record {key!r}")
        try:
            value = json.loads(text)
        except RecursionError:  # deeply nested arrays; json raises this, not a ValueError
            raise ProgramFileError(f"{where} tuned record {key!r} is nested too deeply") from None
        except ValueError as e:
            raise ProgramFileError(f"{where} tuned record {key!r} is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise ProgramFileError(f"{where} tuned record {key!r} is not a JSON object")
        sec.tuned[key] = value
    if s.left():
        raise ProgramFileError(f"{where}: {s.left()} unexplained bytes after its tuned records")
    r.need(size, where)
    r.pos += size
    return sec


def parse(data: bytes, strict: bool = True) -> tuple[ProgramFile, CrcReport]:
    """Validate and decode a file; with strict=False, CRC mismatches are reported instead of raised."""
    data = bytes(data)
    flags, created = _read_header(data)
    report = CrcReport()
    if len(data) < _HEADER.size + 4:
        raise ProgramFileError(f"truncated: checksum trailer needs 4 bytes, {len(data) - _HEADER.size} left")
    r = _Reader(data, _HEADER.size, len(data) - 4)
    engine_version = r.str("engine version")
    pf = ProgramFile(engine_version, created)
    count = r.u32("section count")
    r.need(count * 4, f"{count} sections")
    for i in range(count):
        sec = _read_section(r, i, strict, report)
        key = sec.fingerprint.key()
        if key in pf.sections:
            raise ProgramFileError(f"section {i} repeats the device of an earlier section ({key})")
        pf.sections[key] = sec
    if flags & FLAG_SIGNED:
        pf.signature = r.blob("signature block")
    if r.left():
        raise ProgramFileError(f"{r.left()} unexplained bytes before the checksum trailer")
    (stored,) = struct.unpack_from("<I", data, len(data) - 4)
    computed = zlib.crc32(memoryview(data)[:-4])
    report.file_ok, report.file_stored, report.file_computed = stored == computed, stored, computed
    if strict and not report.file_ok:
        raise ProgramFileError(f"file crc mismatch: trailer says {stored:08x}, contents give {computed:08x}")
    return pf, report


def loads(data: bytes) -> ProgramFile:
    """Decode a compiled-program file, raising ProgramFileError with a precise reason on any defect."""
    return parse(data, strict=True)[0]
