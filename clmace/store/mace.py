"""Reader for Xiaomi MACE's `mace_cl_compiled_program.bin`, in its legacy and protobuf layouts."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from clmace.core.errors import ProgramFileError

PLATFORM_INFO_KEY = "mace_opencl_precompiled_platform_info_key"
DEVICE_NAME_KEY = "mace_opencl_precompiled_device_name_key"
PROGRAM_HASH_PREFIX = "program_hash_"
# Sanity limits far above real files (a few thousand pairs, 4 uint32s per tuned record): they bound the
# memory a hostile file can make the reader spend on per-item Python objects (~100 bytes per 2-byte pair).
MAX_PAIRS = 1 << 16
MAX_UINT32S = 1 << 12
_ELF_MACHINES = {0x03: "x86", 0x28: "ARM", 0x3E: "x86-64", 0xB7: "AArch64", 0xBE: "NVIDIA CUDA", 0xE0: "AMDGPU"}


@dataclass
class MacePair:
    """One key/value pair of a MACE container."""

    key: str
    value: bytes = b""
    uint32s: list[int] = field(default_factory=list)


@dataclass
class MaceFile:
    """A decoded MACE compiled-program file."""

    layout: str  # "legacy" or "protobuf"
    pairs: list[MacePair]
    crc_stored: int | None = None
    crc_computed: int | None = None

    @property
    def crc_ok(self) -> bool | None:
        """CRC32 verdict for the protobuf layout; None for the legacy layout, which has no checksum."""
        return None if self.crc_stored is None else self.crc_stored == self.crc_computed


# ---------------------------------------------------------------- legacy layout


def _parse_legacy(data: bytes) -> list[MacePair]:
    if len(data) < 8:
        raise ProgramFileError(f"legacy layout: count needs 8 bytes, {len(data)} left")
    (count,) = struct.unpack_from("<q", data, 0)
    if count < 0 or count * 8 > len(data) - 8:
        raise ProgramFileError(f"legacy layout: entry count {count} does not fit in {len(data)} bytes")
    if count > MAX_PAIRS:
        raise ProgramFileError(f"legacy layout: entry count {count} is over the limit of {MAX_PAIRS}")
    pos, pairs = 8, []
    for i in range(count):
        parts = []
        for what in ("key", "value"):
            if len(data) - pos < 4:
                raise ProgramFileError(f"legacy layout: entry {i} {what} length needs 4 bytes, "
                                       f"{len(data) - pos} left")
            (n,) = struct.unpack_from("<i", data, pos)
            pos += 4
            if n < 0 or n > len(data) - pos:
                raise ProgramFileError(f"legacy layout: entry {i} {what} needs {n} bytes, {len(data) - pos} left")
            parts.append(data[pos:pos + n])
            pos += n
        pairs.append(MacePair(_utf8(parts[0], f"legacy entry {i} key"), parts[1]))
    if pos != len(data):
        raise ProgramFileError(f"legacy layout: {len(data) - pos} bytes after the last of {count} entries")
    return pairs


# ---------------------------------------------------------------- protobuf layout


def _varint(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if pos >= end:
            raise ProgramFileError(f"protobuf: {what} varint runs past the end")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ProgramFileError(f"protobuf: {what} varint longer than 10 bytes")


def _fields(data: bytes, pos: int, end: int, what: str):
    """Yield (field number, wire type, value) of one message; LEN values come back as (start, stop)."""
    while pos < end:
        tag, pos = _varint(data, pos, end, f"{what} tag")
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProgramFileError(f"protobuf: {what} has field number 0 at byte {pos - 1}")
        if wire == 0:
            value, pos = _varint(data, pos, end, f"{what} field {number}")
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if end - pos < size:
                raise ProgramFileError(f"protobuf: {what} field {number} needs {size} bytes, {end - pos} left")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        elif wire == 2:
            n, pos = _varint(data, pos, end, f"{what} field {number} length")
            if n > end - pos:
                raise ProgramFileError(f"protobuf: {what} field {number} needs {n} bytes, {end - pos} left")
            value, pos = (pos, pos + n), pos + n
        else:
            raise ProgramFileError(f"protobuf: {what} field {number} has unsupported wire type {wire}")
        yield number, wire, value


def _parse_protobuf(data: bytes) -> list[MacePair]:
    pairs = []
    for number, wire, value in _fields(data, 0, len(data), "PairContainer"):
        if number != 1:
            continue  # unknown fields are skipped, as protobuf readers do
        if wire != 2:
            raise ProgramFileError(f"protobuf: PairContainer.pairs has wire type {wire}, expected 2")
        if len(pairs) >= MAX_PAIRS:
            raise ProgramFileError(f"protobuf: more than {MAX_PAIRS} key/value pairs")
        pair = MacePair("")
        what = f"KVPair {len(pairs)}"
        for num, w, val in _fields(data, value[0], value[1], what):
            if num == 1 and w == 2:
                pair.key = _utf8(data[val[0]:val[1]], f"{what} key")
            elif num == 2 and w == 2:
                pair.value = data[val[0]:val[1]]
            elif num == 3 and w == 0:
                pair.uint32s.append(val & 0xFFFFFFFF)
            elif num == 3 and w == 2:  # packed, should a writer ever choose it
                pos = val[0]
                while pos < val[1] and len(pair.uint32s) <= MAX_UINT32S:
                    v, pos = _varint(data, pos, val[1], f"{what} uint32s")
                    pair.uint32s.append(v & 0xFFFFFFFF)
            if len(pair.uint32s) > MAX_UINT32S:
                raise ProgramFileError(f"protobuf: {what} has more than {MAX_UINT32S} uint32 values")
        pairs.append(pair)
    return pairs


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProgramFileError(f"{what} is not valid UTF-8") from None


def loads_mace(data: bytes) -> MaceFile:
    """Decode either MACE layout: protobuf + CRC32 trailer when the CRC matches, else legacy, else damaged."""
    data = bytes(data)
    if len(data) >= 4:
        body, (stored,) = data[:-4], struct.unpack_from("<I", data, len(data) - 4)
        computed = zlib.crc32(body)
        if stored == computed:
            return MaceFile("protobuf", _parse_protobuf(body), stored, computed)
    try:
        return MaceFile("legacy", _parse_legacy(data))
    except ProgramFileError as legacy_error:
        reason = str(legacy_error)
    if len(data) < 4:
        raise ProgramFileError(f"not a MACE compiled-program file ({len(data)} bytes): {reason}")
    try:
        pairs = _parse_protobuf(body)
    except ProgramFileError as e:
        raise ProgramFileError(f"not a readable MACE compiled-program file: as protobuf: {e}; "
                               f"as {reason}") from None
    if not pairs:
        raise ProgramFileError(f"not a MACE compiled-program file: no key/value pairs ({reason})")
    # It parses as protobuf, so the trailer is what is wrong (or the body was damaged).
    return MaceFile("protobuf", pairs, stored, computed)


# ---------------------------------------------------------------- describing


def guess_binary_vendor(binary: bytes) -> str:
    """Guess who made a program binary from its first bytes (vendor headers, PTX text, ELF machine)."""
    head = binary[:512]
    if head.startswith(b"poclbin"):
        return "PoCL"
    if head.startswith(b"//\n// Generated by NVIDIA"):
        return "NVIDIA PTX"
    if any(tag in head for tag in (b"QCOM", b"Adreno", b"Qualcomm", b"QUALCOMM")):
        return "Adreno/Qualcomm"
    if any(tag in head for tag in (b"MBS2", b"Mali")):
        return "Mali"
    if head.startswith(b"\x7fELF") and len(head) >= 20:
        machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
        return f"ELF ({_ELF_MACHINES.get(machine, f'machine 0x{machine:x}')})"
    if head.startswith(b"BC\xc0\xde"):
        return "LLVM bitcode"
    if head.startswith(b"\x03\x02\x23\x07"):
        return "SPIR-V"
    return "unknown"


def split_platform_info(text: str) -> dict[str, str]:
    """Split '<platform name>, <profile>, <platform version>, <MACE version>' into its parts."""
    parts = text.split(", ")
    if len(parts) < 4:
        return {"raw": text}
    name, profile, mace_version = parts[0], parts[1], parts[-1]
    version = ", ".join(parts[2:-1])
    words = version.split(" ", 2)
    opencl = words[1] if len(words) > 1 and words[0] == "OpenCL" else ""
    driver = words[2] if opencl and len(words) > 2 else version
    return {"raw": text, "vendor": name, "profile": profile, "platform_version": version,
            "opencl_version": opencl, "driver_build": driver, "mace_version": mace_version}


def describe(mf: MaceFile) -> dict:
    """JSON-able summary: layout, CRC, platform and device info, and every entry with a vendor guess."""
    info: dict = {"format": "mace", "layout": mf.layout, "entry_count": len(mf.pairs),
                  "crc_ok": mf.crc_ok, "crc_stored": mf.crc_stored, "crc_computed": mf.crc_computed,
                  "platform_info": None, "device_name": None, "entries": []}
    for p in mf.pairs:
        row: dict = {"key": p.key, "size": len(p.value)}
        if p.uint32s:
            row["uint32s"] = p.uint32s
        if p.key == PLATFORM_INFO_KEY:
            row["kind"] = "platform info"
            info["platform_info"] = split_platform_info(p.value.decode("utf-8", "replace"))
        elif p.key == DEVICE_NAME_KEY:
            row["kind"] = "device name"
            info["device_name"] = p.value.decode("utf-8", "replace")
        elif p.key.startswith(PROGRAM_HASH_PREFIX):
            row["kind"] = "program hash"
            row["hash"] = p.value.decode("utf-8", "replace") if p.value.isascii() else p.value.hex()
        else:
            row["kind"] = "program"
            row["vendor"] = guess_binary_vendor(p.value)
        info["entries"].append(row)
    return info
