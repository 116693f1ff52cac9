"""Property tests over the file readers: any bytes give a result or the documented error, quickly, in bounded memory.

The long campaign is tools/fuzz_readers.py; these run a few thousand inputs through the same `check` (SIGALRM
timeout, tracemalloc peak <= 4x input + 1 MiB), plus regressions for the bugs fuzzing found.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
import zlib

import pytest
from conftest import load_fuzz_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clmace.core.errors import ModelError, ProgramFileError
from clmace.frontend import modelfile
from clmace.store import format as fmt
from clmace.store import mace

fz = load_fuzz_tool()
fi = fz.inputs
SEEDS = fi.all_seeds()
FAST = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


def assert_behaves(target: str, data: bytes) -> None:
    problem = fz.check(target, data, timeout=5.0)
    assert problem is None, f"{target}: {problem} (input {len(data)} bytes: {data[:64]!r}...)"


# ---------------------------------------------------------------- random bytes and mutations


@FAST
@given(target=st.sampled_from(fz.TARGETS), data=st.binary(max_size=4096))
def test_random_bytes(target: str, data: bytes) -> None:
    assert_behaves(target, data)


@FAST
@given(target=st.sampled_from(fz.TARGETS), data=st.binary(max_size=512))
def test_random_bytes_behind_a_valid_magic(target: str, data: bytes) -> None:
    magic = b"CLMACEMD" if target == "model" else b"CLMACEPF"
    assert_behaves(target, magic + data)


_OPS = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "u32", "splice"]),
                 st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=16))


def apply(data: bytes, op: tuple[str, int, bytes]) -> bytes:
    """One shrinkable mutation (hypothesis shrinks the position and the bytes)."""
    kind, pos, raw = op
    n = len(data)
    at = pos % (n + 1)
    if kind == "flip" and n:
        out = bytearray(data)
        out[pos % n] ^= 1 << (raw[0] % 8)
        return bytes(out)
    if kind == "insert":
        return data[:at] + raw + data[at:]
    if kind == "delete":
        return data[:at] + data[at + len(raw):]
    if kind == "truncate":
        return data[:at]
    if kind == "u32" and n >= 4:
        at = pos % (n - 3)
        return data[:at] + struct.pack("<I", int.from_bytes(raw[:4].ljust(4, b"\xff"), "little")) + data[at + 4:]
    others = [s for group in SEEDS.values() for s in group]
    other = others[raw[0] % len(others)]
    return data[:at] + other[pos % (len(other) + 1):]


@settings(FAST, max_examples=400)
@given(target=st.sampled_from(fz.TARGETS), which=st.integers(0, 10), ops=st.lists(_OPS, min_size=1, max_size=4),
       fix=st.booleans())
def test_mutated_valid_files(target: str, which: int, ops: list, fix: bool) -> None:
    data = SEEDS[target][which % len(SEEDS[target])]
    for op in ops:
        data = apply(data, op)
    if fix and target != "model":
        data = fi.fix_crc(fi.fix_entry_crcs(data))
    assert_behaves(target, data)


@FAST
@given(rng=st.randoms(use_true_random=False))
def test_structured_program_files(rng) -> None:
    data = fi.random_program(rng)
    assert_behaves("program", data)
    assert_behaves("inspect", data)


@FAST
@given(rng=st.randoms(use_true_random=False))
def test_structured_mace_files(rng) -> None:
    assert_behaves("mace", fi.random_mace(rng))


@settings(FAST, max_examples=400)
@given(rng=st.randoms(use_true_random=False))
def test_structured_model_files(rng) -> None:
    assert_behaves("model", fi.random_model(rng, SEEDS["model"][0]))


# ---------------------------------------------------------------- regressions for what fuzzing found


def _program_with_tuned_text(text: bytes) -> bytes:
    """A valid file with one tuned record whose JSON text is `text` (lengths and CRC right)."""
    fp = next(iter(fmt.loads(SEEDS["program"][0]).sections.values())).fingerprint
    sec = fmt.Section(fp, {}, {"k": {}})
    data = fmt.dumps(fmt.ProgramFile("0.1.0", 0.0, {fp.key(): sec}))
    tail = struct.pack("<I", 1) + struct.pack("<I", 1) + b"k" + struct.pack("<I", 2) + b"{}"
    start = data.index(tail)
    body = data[:start] + tail[:-6] + struct.pack("<I", len(text)) + text
    size_at = 24 + 4 + len("0.1.0") + 4
    (old,) = struct.unpack_from("<I", body, size_at)
    body = body[:size_at] + struct.pack("<I", old - 2 + len(text)) + body[size_at + 4:]
    return body + struct.pack("<I", zlib.crc32(body))


def test_deeply_nested_tuned_json_is_a_program_file_error() -> None:
    assert fmt.loads(_program_with_tuned_text(b'{"a":1}')).sections  # the helper makes valid files
    with pytest.raises(ProgramFileError, match="nested too deeply"):
        fmt.loads(_program_with_tuned_text(b"[" * 100_000 + b"]" * 100_000))


def _model_with_header(header: object) -> bytes:
    head = json.dumps(header).encode() if not isinstance(header, bytes) else header
    prefix = struct.pack("<8sII", b"CLMACEMD", modelfile.FORMAT_VERSION, len(head))
    return prefix + head + b" " * ((-(len(prefix) + len(head))) % 64)


def _valid_header() -> dict:
    data = SEEDS["model"][0]
    (n,) = struct.unpack_from("<I", data, 12)
    header = json.loads(data[16:16 + n])
    header.update(tensors=[], weights_size=0, weights_sha256=hashlib.sha256(b"").hexdigest())
    return header


@pytest.mark.parametrize("where, value", [
    ("deep", None), ("attrs", []), ("attrs", "x"), ("metadata", 5), ("extra", [1]), ("header", [1, 2]),
    ("dtype", "f8,i4"), ("dtype", "(2,)f4"), ("dtype", {"names": ["a"], "formats": ["<f4"], "offsets": [2**70]}),
])
def test_malformed_model_headers_are_model_errors(where: str, value: object) -> None:
    header: object = _valid_header()
    if where == "deep":
        header = b"[" * 100_000
    elif where == "attrs":
        header["graph"]["nodes"][0]["attrs"] = value
    elif where == "metadata":
        header["graph"]["metadata"] = value
    elif where == "extra":
        header["extra"] = value
    elif where == "header":
        header = value
    else:
        header["graph"]["inputs"][0]["dtype"] = value
    with pytest.raises(ModelError, match="malformed converted-model header"):
        modelfile.loads(_model_with_header(header))


def test_mace_reader_caps_item_counts() -> None:
    body = b"\x0a\x03\x0a\x01A" * (mace.MAX_PAIRS + 1)
    with pytest.raises(ProgramFileError, match="more than 65536 key/value pairs"):
        mace.loads_mace(body + struct.pack("<I", zlib.crc32(body)))
    legacy = struct.pack("<q", mace.MAX_PAIRS + 1) + (struct.pack("<i", 1) + b"A" + struct.pack("<i", 0)) * (
        mace.MAX_PAIRS + 1)
    with pytest.raises(ProgramFileError, match="over the limit"):
        mace.loads_mace(legacy)
    packed = b"\x0a\x01A\x1a" + fi.varint(20_000) + b"\xff\x01" * 10_000
    body = b"\x0a" + fi.varint(len(packed)) + packed
    with pytest.raises(ProgramFileError, match="more than 4096 uint32 values"):
        mace.loads_mace(body + struct.pack("<I", zlib.crc32(body)))


@pytest.mark.parametrize("target", ["program", "mace", "model"])
def test_huge_length_fields_fail_without_allocating(target: str) -> None:
    """Every u32 in a valid file set to 0xFFFFFFFF in turn: refused at once, in bounded memory."""
    data = SEEDS[target][0]  # the small two-device file, the legacy MACE file, the small model
    for pos in range(0, len(data) - 3, 3):
        assert_behaves(target, data[:pos] + b"\xff\xff\xff\xff" + data[pos + 4:])
