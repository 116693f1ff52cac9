"""The compiled-program file through the public API and CLI: cold build writes it, warm start reuses it."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import clmace
from clmace.cli.main import main
from clmace.store import read_file
from tests.onnx_build import make_model
from tests.opencl_probe import require_device

rng = np.random.default_rng(5)


def _opencl_or_skip() -> None:
    require_device()


@pytest.fixture()
def model_path(tmp_path, monkeypatch):
    """A small Conv+Relu -> GlobalAveragePool -> Gemm model, and a private cache dir."""
    _opencl_or_skip()
    monkeypatch.setenv("CLMACE_CACHE_DIR", str(tmp_path / "cache"))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
    inits = [("w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32)),
             ("fw", rng.standard_normal((5, 8)).astype(np.float32))]
    path = tmp_path / "small.onnx"
    onnx.save(make_model(nodes, [("x", [1, 3, 12, 12])], [("y", [1, 5])], inits), path)
    return path


def _run(sess) -> np.ndarray:
    x = np.linspace(-1, 1, 3 * 144, dtype=np.float32).reshape(1, 3, 12, 12)
    return sess.run(None, {"x": x})[0]


def test_cold_then_warm(model_path, tmp_path, caplog):
    """The first session compiles and writes the file; the next builds every program from it."""
    prog = tmp_path / "prog.bin"
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        cold = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog))
    assert "no compiled-program file found" in caplog.text and str(prog) in caplog.text
    cold.program_store.wait()  # the binaries are read and written on a thread, off the path to the first result
    assert cold.program_store.status()["misses"] > 0 and prog.exists()
    n = len(read_file(str(prog)).sections.popitem()[1].entries)
    warm = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog))
    status = warm.program_store.status()
    assert (status["hits"], status["misses"], status["rejected"]) == (n, 0, 0)
    np.testing.assert_allclose(_run(warm), _run(cold), rtol=1e-6, atol=1e-6)
    want = clmace.InferenceSession(str(model_path)).run(None, {"x": np.linspace(-1, 1, 432, dtype=np.float32)
                                                                .reshape(1, 3, 12, 12)})[0]
    np.testing.assert_allclose(_run(warm), want, rtol=1e-4, atol=1e-4)


def test_a_second_session_waits_for_the_first_ones_background_save(model_path, tmp_path):
    """The first session writes its file on a thread; a session opened on the same file at once in the same
    process waits for it and compiles nothing, and an explicit wait leaves every program in the file."""
    prog = str(tmp_path / "prog.bin")
    cold = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=prog)
    warm = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=prog)  # no wait_saved()
    status = warm.program_store.status()
    assert status["misses"] == 0 and status["hits"] == cold.program_store.status()["misses"] > 0
    cold.wait_saved()
    entries = read_file(prog).sections.popitem()[1].entries
    assert len(entries) == status["hits"] and all(e.binary for e in entries.values())
    np.testing.assert_array_equal(_run(warm), _run(cold))


def test_corrupt_file_is_reported_and_rebuilt(model_path, tmp_path, caplog):
    """A damaged file is named with its reason, programs are rebuilt, and a valid file replaces it."""
    prog = tmp_path / "prog.bin"
    clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog)).program_store.wait()
    data = bytearray(prog.read_bytes())
    data[len(data) // 2] ^= 0x40
    prog.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        sess = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog))
    assert "ignored" in caplog.text and "crc" in caplog.text.lower()
    assert sess.program_store.status()["misses"] > 0
    sess.program_store.wait()
    read_file(str(prog))  # valid again
    assert np.isfinite(_run(sess)).all()


def test_cli_compile_inspect_and_cache(model_path, tmp_path, capsys):
    """compile writes the file, inspect describes it, cache list/prune/clear work on the cache dir."""
    prog = tmp_path / "baked.bin"
    assert main(["compile", str(model_path), "-o", str(prog)]) == 0
    assert "programs (" in capsys.readouterr().out
    assert main(["inspect", str(prog)]) == 0
    out = capsys.readouterr().out
    assert "format version 1" in out and "file crc32 ok" in out
    assert main(["cache", "list"]) == 0 and "PoCL kernel cache" in capsys.readouterr().out
    assert main(["cache", "prune"]) == 0
    assert main(["cache", "clear"]) == 0 and "cleared" in capsys.readouterr().out


def test_inspect_damaged_or_foreign_file_is_clear(tmp_path):
    """A file that is neither clmace's nor MACE's gets a one-line error, not a traceback."""
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    proc = subprocess.run([sys.executable, "-m", "clmace", "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "junk.bin" in proc.stderr


def test_signed_file_through_cli_and_session(model_path, tmp_path, caplog, capsys):
    """keygen + compile --sign-key; a session trusting the key uses the file, a tampered file is refused."""
    key, pub, prog = tmp_path / "k.pem", tmp_path / "k.pub", tmp_path / "signed.bin"
    assert main(["keygen", str(key), str(pub)]) == 0
    assert main(["compile", str(model_path), "-o", str(prog), "--sign-key", str(key)]) == 0
    assert main(["inspect", str(prog), "--trusted-key", str(pub)]) == 0
    assert "valid" in capsys.readouterr().out
    sess = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog),
                                   trusted_keys=[str(pub)])
    assert sess.program_store.status()["misses"] == 0 and sess.program_store.status()["hits"] > 0
    data = bytearray(prog.read_bytes())
    data[40] ^= 1  # inside the header's engine version: CRC and signature both break
    prog.write_bytes(bytes(data))
    before = prog.read_bytes()
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        sess = clmace.InferenceSession(str(model_path), device="opencl", compiled_program=str(prog),
                                       trusted_keys=[str(pub)])
    assert sess.program_store.status()["hits"] == 0 and np.isfinite(_run(sess)).all()
    assert prog.read_bytes() == before  # an unsigned rebuild never overwrites a signed file


@pytest.mark.parametrize("device", ["cpu", "opencl"])
def test_one_session_from_many_threads(model_path, device):
    """Concurrent run() calls on one session give each caller its own correct result."""
    from concurrent.futures import ThreadPoolExecutor

    sess = clmace.InferenceSession(str(model_path), device=device, compiled_program=False) if device != "cpu" \
        else clmace.InferenceSession(str(model_path))
    ref = clmace.InferenceSession(str(model_path))
    feeds = [rng.standard_normal((1, 3, 12, 12)).astype(np.float32) for _ in range(16)]
    want = [ref.run(None, {"x": x})[0] for x in feeds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda x: sess.run(None, {"x": x})[0], feeds))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
