"""`clmace inspect`'s engine: clmace and MACE files described as dicts and text."""

from __future__ import annotations

import json

import pytest
from test_store_format import small_file
from test_store_mace import legacy_file, protobuf_file

from clmace.core.errors import ProgramFileError
from clmace.store.format import dumps
from clmace.workflow.inspect import inspect_path, render_text


def test_clmace_file(tmp_path) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(dumps(small_file()))
    info = inspect_path(str(path))
    json.dumps(info)  # --json must work as is
    assert info["format"] == "clmace" and info["format_version"] == 1 and info["engine_version"] == "0.1.0"
    assert info["program_count"] == 1 and info["tuned_count"] == 1
    assert info["file_crc_ok"] and info["entries_crc_ok"]
    (sec,) = info["sections"]
    assert sec["fingerprint"]["driver_version"] == "3.1"
    assert sec["entries"][0]["driver_blobs"] == 1
    text = render_text(info)
    assert "format version 1" in text and "pthread-cpu" in text and "driver:       3.1" in text
    assert "conv2d" in text and "-DBIAS -DRELU" in text and "file crc32 ok" in text
    assert "source" in render_text(info, verbose=True) and "source" not in text


def test_clmace_file_with_a_damaged_entry_is_shown_not_refused(tmp_path) -> None:
    data = bytearray(dumps(small_file()))
    data[data.index(b"BINARY")] ^= 1
    path = tmp_path / "p.clmace"
    path.write_bytes(bytes(data))
    info = inspect_path(str(path))
    assert not info["entries_crc_ok"] and not info["file_crc_ok"]
    text = render_text(info)
    assert "MISMATCH" in text and "BAD" in text


def test_structurally_broken_file_raises(tmp_path) -> None:
    path = tmp_path / "p.clmace"
    path.write_bytes(dumps(small_file())[:60])
    with pytest.raises(ProgramFileError, match=r"p\.clmace: truncated"):
        inspect_path(str(path))
    with pytest.raises(ProgramFileError, match="cannot read"):
        inspect_path(str(tmp_path / "missing"))


@pytest.mark.parametrize("make, layout, crc", [(legacy_file, "legacy", "none (legacy layout)"),
                                               (protobuf_file, "protobuf", "crc32 ok")])
def test_mace_files(tmp_path, make, layout, crc) -> None:
    path = tmp_path / "mace_cl_compiled_program.bin"
    path.write_bytes(make())
    info = inspect_path(str(path))
    json.dumps(info)
    assert info["format"] == "mace" and info["layout"] == layout
    text = render_text(info)
    assert f"{layout} layout" in text and crc in text
    assert "Adreno/Qualcomm" in text and "NVIDIA PTX" in text and "MACE version: v0.12.0-0-g9a3f1b2" in text
