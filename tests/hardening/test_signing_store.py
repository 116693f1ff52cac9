"""ProgramStore with signing keys on real PoCL programs: what is trusted, what is refused, what is written."""

from __future__ import annotations

import logging
import os
import struct
import zlib

import pytest
from conftest import ENGINE, OPTIONS, SOURCES, build_and_check, run_scale

from clmace.backends.opencl.device import build_program
from clmace.store import ProgramStore, signing
from clmace.store.format import ProgramFile, dumps, loads
from clmace.store.io import is_signed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
EXTRA = {"scale7": SOURCES["scale2"].replace("scale2", "scale7").replace("2.0f", "7.0f")}


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("keys")
    return {n: (str(d / f"{n}.pem"), str(d / f"{n}.pub"), signing.generate_keypair(d / f"{n}.pem", d / f"{n}.pub"))
            for n in "ab"}


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch) -> None:
    monkeypatch.delenv("CLMACE_TRUSTED_KEYS", raising=False)


def new_store(path, **kw) -> ProgramStore:
    return ProgramStore(path=str(path), engine_version_=ENGINE, manage_pocl_cache=False, **kw)


def save_programs(path, ctx, device, sources=SOURCES, **kw) -> bytes:
    """Build `sources` through a store made with `kw`, save, return the file's bytes."""
    store = new_store(path, **kw)
    for name, src in sources.items():
        build_program(ctx, device, name, src, OPTIONS, store)
    assert store.save()
    return path.read_bytes()


def names(data: bytes) -> set[str]:
    return {e.name for s in loads(data).sections.values() for e in s.entries.values()}


def test_signed_file_is_used_by_a_store_that_trusts_its_key(tmp_path, ctx, device, keys) -> None:
    path = tmp_path / "p.clmace"
    data = save_programs(path, ctx, device, sign_key=keys["a"][0])
    assert is_signed(data)
    store = new_store(path, trusted_keys=[keys["b"][1], keys["a"][1]])
    build_and_check(store, ctx, device)
    assert (store.hits, store.misses, store.rejected) == (len(SOURCES), 0, 0)
    assert store.status()["trusted_key_ids"] == [keys["b"][2], keys["a"][2]]


def _tamper(data: bytes) -> bytes:
    """Change one byte of the first entry's binary and make every CRC right again: only the signature sees it."""
    pf = loads(data)
    entry = next(iter(next(iter(pf.sections.values())).entries.values()))
    entry.binary = entry.binary[:100] + bytes([entry.binary[100] ^ 1]) + entry.binary[101:]
    return dumps(pf)  # re-serialized with the old signature block, entry and file CRCs recomputed


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "the file carries no signature"),
    ("tampered", "does not match the file's contents"),
    ("other key", "which is not among the 1 trusted key"),
])
def test_untrusted_files_are_refused_as_foreign_code(tmp_path, ctx, device, keys, caplog, case, reason) -> None:
    path = tmp_path / "p.clmace"
    if case == "unsigned":
        data = save_programs(path, ctx, device)
    elif case == "tampered":
        data = _tamper(save_programs(path, ctx, device, sign_key=keys["a"][0]))
        path.write_bytes(data)
        assert loads(data)  # structurally perfect: CRCs match
    else:
        data = save_programs(path, ctx, device, sign_key=keys["b"][0])
    store = new_store(path, trusted_keys=[keys["a"][1]])
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        build_and_check(store, ctx, device)  # built from source, right numbers
        assert store.save() is False  # trusted keys but no sign key: nothing is written
    assert (store.hits, store.misses) == (0, len(SOURCES))
    assert f"not used, its programs will be built from source: {path}: refused as foreign code" in caplog.text
    assert reason in caplog.text and "not saved" in caplog.text
    assert path.read_bytes() == data  # never overwritten


def test_trusted_keys_from_the_environment(tmp_path, ctx, device, keys, monkeypatch) -> None:
    path = tmp_path / "p.clmace"
    save_programs(path, ctx, device, sign_key=keys["a"][0])
    monkeypatch.setenv("CLMACE_TRUSTED_KEYS", os.pathsep.join([keys["b"][1], keys["a"][1]]))
    store = new_store(path)
    build_and_check(store, ctx, device)
    assert store.hits == len(SOURCES)
    monkeypatch.setenv("CLMACE_TRUSTED_KEYS", keys["b"][1])
    refused = new_store(path)
    build_and_check(refused, ctx, device)
    assert refused.hits == 0 and "refused" in refused.load()[str(path)]


def test_store_without_keys_never_overwrites_a_signed_file(tmp_path, ctx, device, keys, caplog) -> None:
    path, fallback = tmp_path / "p.clmace", tmp_path / "unsigned.clmace"
    data = save_programs(path, ctx, device, sign_key=keys["a"][0])
    store = new_store(path)
    build_and_check(store, ctx, device)
    assert store.hits == len(SOURCES)  # no trusted keys: a signed file is used like any other
    program = build_program(ctx, device, "scale7", EXTRA["scale7"], OPTIONS, store)
    assert run_scale(ctx, program, "scale7")[3] == 21.0
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        assert store.save() is False
    assert "is signed and no sign_key was given" in caplog.text
    assert path.read_bytes() == data
    # Told where unsigned programs may go, the store writes there and leaves the signed file alone.
    told = new_store(path, unsigned_path=str(fallback))
    build_program(ctx, device, "scale7", EXTRA["scale7"], OPTIONS, told)
    assert told.save()
    assert path.read_bytes() == data and names(fallback.read_bytes()) == {"scale7"}
    again = new_store(path, unsigned_path=str(fallback))
    build_program(ctx, device, "scale7", EXTRA["scale7"], OPTIONS, again)
    assert again.hits == 1  # the fallback file is read back when no trusted keys are set


def test_signing_store_replaces_an_unsigned_file_without_merging_it(tmp_path, ctx, device, keys, caplog) -> None:
    path = tmp_path / "p.clmace"
    save_programs(path, ctx, device, sources=EXTRA)  # unsigned, from who knows where
    with caplog.at_level(logging.INFO, logger="clmace.store"):
        data = save_programs(path, ctx, device, sign_key=keys["a"][0])
    assert "cannot go into a signed file" in caplog.text
    assert names(data) == set(SOURCES)  # scale7 was not vouched for: not carried into the signed file
    pf = loads(data)
    assert signing.file_status(data, pf, [keys["a"][1]]).state == "valid"


def test_signing_store_merges_what_a_trusted_key_signed(tmp_path, ctx, device, keys) -> None:
    path = tmp_path / "p.clmace"
    save_programs(path, ctx, device, sources={"scale2": SOURCES["scale2"]}, sign_key=keys["b"][0])
    data = save_programs(path, ctx, device, sources=EXTRA, sign_key=keys["a"][0], trusted_keys=[keys["b"][1]])
    assert names(data) == {"scale2", "scale7"}
    status = signing.file_status(data, loads(data), [keys["a"][1]])
    assert (status.state, status.key_id) == ("valid", keys["a"][2])  # re-signed by the writer


def test_tampered_file_is_replaced_by_a_signing_store(tmp_path, ctx, device, keys) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(_tamper(save_programs(path, ctx, device, sign_key=keys["a"][0])))
    store = new_store(path, sign_key=keys["a"][0])
    build_and_check(store, ctx, device)
    assert store.hits == 0 and store.save()
    data = path.read_bytes()
    assert signing.file_status(data, loads(data), [keys["a"][1]]).state == "valid" and names(data) == set(SOURCES)


def test_bad_key_paths_fail_at_construction(tmp_path, keys) -> None:
    with pytest.raises(signing.SigningKeyError, match="cannot read"):
        new_store(tmp_path / "p.clmace", trusted_keys=[tmp_path / "none.pub"])
    with pytest.raises(signing.SigningKeyError, match="not a PEM private key"):
        new_store(tmp_path / "p.clmace", sign_key=keys["a"][1])


def test_signature_block_bytes_are_covered_by_the_file_crc(tmp_path, keys) -> None:
    """A flipped bit inside the signature block is a CRC failure first (damaged), before any key is asked."""
    data = dumps(ProgramFile(ENGINE, 0.0), signer=signing.signer(keys["a"][0]))
    forged = bytearray(data)
    forged[-10] ^= 1
    with pytest.raises(Exception, match="file crc mismatch"):
        loads(bytes(forged))
    fixed = bytes(forged[:-4]) + struct.pack("<I", zlib.crc32(bytes(forged[:-4])))
    assert signing.file_status(fixed, loads(fixed), [keys["a"][1]]).state == "invalid"
