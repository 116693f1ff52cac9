"""The compiled-program file format: round trips and every way a file can be refused."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmace.core.errors import ProgramFileError
from clmace.core.fingerprint import DeviceFingerprint
from clmace.store.format import (
    FORMAT_VERSION,
    MAGIC,
    ProgramEntry,
    ProgramFile,
    Section,
    dumps,
    entry_key,
    loads,
    parse,
    source_hash,
)

FP = DeviceFingerprint("Portable Computing Language", "The pocl project", "OpenCL 3.0 PoCL 3.1",
                       "pthread-cpu", "GenuineCPU", "OpenCL 3.0 PoCL", "3.1", "OpenCL C 1.2 PoCL", 64)


def small_file() -> ProgramFile:
    """One section, one entry with a driver blob, one tuned record."""
    entry = ProgramEntry("conv2d", "-DBIAS -DRELU", source_hash("src"), b"BINARY" * 8,
                         {"AB/CDEF/conv2d/64-1-1-goffs0-smallgrid/conv2d.so": b"\x7fELF..."})
    sec = Section(FP, {entry_key("src", ["-DBIAS", "-DRELU"]): entry}, {"conv2d_1_8_8_4": {"lws": [4, 8, 1]}})
    return ProgramFile("0.1.0", 1_700_000_000.5, {FP.key(): sec})


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


# ---------------------------------------------------------------- round trips

_text = st.text(max_size=20)
_fingerprints = st.builds(DeviceFingerprint, _text, _text, _text, _text, _text, _text, _text, _text,
                          st.sampled_from([32, 64]))
_blob_paths = st.from_regex(r"[A-Za-z0-9_-]{1,6}(/[A-Za-z0-9_-]{1,6}){0,3}", fullmatch=True)
_entries = st.builds(ProgramEntry, _text, _text, st.text(max_size=64), st.binary(max_size=200),
                     st.dictionaries(_blob_paths, st.binary(max_size=50), max_size=3))
_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_keys = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())


@st.composite
def program_files(draw) -> ProgramFile:
    sections = {}
    for fp in draw(st.lists(_fingerprints, max_size=3, unique_by=lambda f: f.key())):
        entries = draw(st.dictionaries(_keys, _entries, max_size=3))
        tuned = draw(st.dictionaries(_text, st.dictionaries(_text, _json, max_size=3), max_size=3))
        sections[fp.key()] = Section(fp, entries, tuned)
    created = draw(st.floats(allow_nan=False, allow_infinity=False))
    return ProgramFile(draw(_text), created, sections, draw(st.sampled_from([b"", b"\x01" * 64])))


@settings(max_examples=100, deadline=None)
@given(program_files())
def test_round_trip(pf: ProgramFile) -> None:
    data = dumps(pf)
    assert loads(data) == pf
    assert dumps(loads(data)) == data  # deterministic: the same content always gives the same bytes


def test_entry_key_separates_source_and_options() -> None:
    assert entry_key("ab", ["c"]) != entry_key("a", ["bc"])
    assert entry_key("a", ["-DX", "-DY"]) != entry_key("a", ["-DX -DY"])
    assert FP.key() == DeviceFingerprint(*vars(FP).values()).key()


# ---------------------------------------------------------------- rejections


def test_wrong_magic() -> None:
    data = b"GARBAGE!" + dumps(small_file())[8:]
    with pytest.raises(ProgramFileError, match=r"not a clmace compiled-program file \(magic b'GARBAGE!'\)"):
        loads(data)
    with pytest.raises(ProgramFileError, match="not a clmace"):
        loads(b"PK\x03")


def test_newer_format_version() -> None:
    data = bytearray(dumps(small_file()))
    struct.pack_into("<I", data, 8, 9)
    with pytest.raises(ProgramFileError, match=rf"format version 9 is newer than this clmace \({FORMAT_VERSION}\)"):
        loads(bytes(data))


def test_unknown_flags() -> None:
    data = bytearray(dumps(small_file()))
    struct.pack_into("<I", data, 12, 0x80)
    with pytest.raises(ProgramFileError, match="unknown flags 0x00000080"):
        loads(bytes(data))


def test_truncation_at_every_byte_is_a_program_file_error() -> None:
    data = dumps(small_file())
    for n in range(len(data)):
        with pytest.raises(ProgramFileError):
            loads(data[:n])


def test_truncation_message_names_the_field() -> None:
    pf = small_file()
    data = dumps(pf)
    binary_end = data.index(b"BINARY" * 8) + 48
    match = r"truncated: section 0 entry 0 'conv2d' binary needs 48 bytes, \d+ left"
    with pytest.raises(ProgramFileError, match=match):
        loads(data[:binary_end - 10])


def test_every_single_bit_flip_is_detected() -> None:
    data = dumps(small_file())
    for i in range(len(data)):
        for bit in range(8):
            with pytest.raises(ProgramFileError):
                loads(_flip(data, i, bit))


def test_flip_in_entry_names_the_entry() -> None:
    data = dumps(small_file())
    i = data.index(b"BINARY")
    with pytest.raises(ProgramFileError, match=r"crc mismatch in section 0 entry 0 'conv2d -DBIAS -DRELU'"):
        loads(_flip(data, i))


def test_flip_in_header_and_trailer_is_a_file_crc_mismatch() -> None:
    data = dumps(small_file())
    for i in (17, len(data) - 1):  # created time; the trailer itself
        with pytest.raises(ProgramFileError, match="file crc mismatch"):
            loads(_flip(data, i))


def test_non_strict_parse_reports_crc_instead_of_raising() -> None:
    data = dumps(small_file())
    pf, report = parse(_flip(data, data.index(b"BINARY")), strict=False)
    assert [ok for *_, ok in report.entries] == [False]
    assert not report.file_ok
    assert len(pf.sections) == 1


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _with_entry_field(old: bytes, new: bytes) -> bytes:
    """Re-encode small_file() with one entry string replaced, fixing lengths and both CRCs."""
    pf = small_file()
    (key, entry), = next(iter(pf.sections.values())).entries.items()
    data = dumps(pf)[:-4]
    start = data.index(key.encode()) - 8  # entry size field, then key length
    (size,) = struct.unpack_from("<I", data, start)
    body = data[start + 4:start + 4 + size].replace(struct.pack("<I", len(old)) + old,
                                                   struct.pack("<I", len(new)) + new)
    sec_start = len(MAGIC) + 16 + 4 + 5 + 4
    (sec_size,) = struct.unpack_from("<I", data, sec_start)
    sec_size += len(body) - size
    out = (data[:sec_start] + struct.pack("<I", sec_size) + data[sec_start + 4:start]
           + struct.pack("<I", len(body)) + body + struct.pack("<I", zlib.crc32(body))
           + data[start + 4 + size + 4:])
    return _recrc(out)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(ProgramFileError, match="name is not valid UTF-8"):
        loads(_with_entry_field(b"conv2d", b"conv\xff\xfe"))


@pytest.mark.parametrize("path", ["../../etc/passwd", "/abs/k.so", "a//b", "a/./b", "a\\b"])
def test_unsafe_driver_blob_paths_are_refused(path: str) -> None:
    good = b"AB/CDEF/conv2d/64-1-1-goffs0-smallgrid/conv2d.so"
    with pytest.raises(ProgramFileError, match="driver blob path"):
        loads(_with_entry_field(good, path.encode()))


def test_absurd_counts_fail_before_allocating() -> None:
    data = bytearray(dumps(ProgramFile("v", 0.0, {})))
    struct.pack_into("<I", data, len(MAGIC) + 16 + 4 + 1, 0xFFFFFFFF)
    with pytest.raises(ProgramFileError, match="truncated: 4294967295 sections needs"):
        loads(_recrc(bytes(data[:-4])))


def test_trailing_bytes_are_refused() -> None:
    data = dumps(small_file())[:-4] + b"junk"
    with pytest.raises(ProgramFileError, match="4 unexplained bytes"):
        loads(_recrc(data))
