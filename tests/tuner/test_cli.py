"""`clmace tune` (export/import), `clmace compile --tune` and `clmace inspect -e` on tuned records."""

from __future__ import annotations

import json

import onnx

from clmace.cli.main import main
from clmace.store import read_file
from tests.tuner.conftest import tiny_cnn


def _records(path: str) -> dict:
    return {k: v for sec in read_file(path).sections.values() for k, v in sec.tuned.items()}


def test_tune_export_import_inspect(tmp_path, capsys) -> None:
    """Tune into a file and export; import into another file; inspect shows the count and per-kernel choices."""
    model, out, doc, other = (str(tmp_path / n) for n in ("m.onnx", "p.clmace", "t.json", "q.clmace"))
    onnx.save(tiny_cnn(size=10), model)
    # --budget is a bound, not a target: the resume check below needs every launch tuned even on a busy machine
    assert main(["tune", model, "-o", out, "--budget", "120", "--seed", "2", "--export-tuning", doc]) == 0
    text = capsys.readouterr().out
    assert "tuned" in text and "exported" in text
    saved = _records(out)
    assert saved and json.loads(open(doc).read())["sections"][0]["records"] == saved
    assert main(["tune", "--import-tuning", doc, "-o", other]) == 0
    assert _records(other) == saved
    assert main(["tune", model, "-o", out]) == 0  # resumes: everything is recorded already
    assert "0 launch key(s)" in capsys.readouterr().out
    assert main(["inspect", "-e", out]) == 0
    text = capsys.readouterr().out
    assert f"tuned records:  {len(saved)}" in text
    assert "conv_dw" in text and "lws=" in text


def test_compile_with_tune(tmp_path, capsys) -> None:
    """compile --tune writes programs and tuned records into one file."""
    model, out = str(tmp_path / "m.onnx"), str(tmp_path / "p.clmace")
    onnx.save(tiny_cnn(size=10), model)
    assert main(["compile", model, "-o", out, "--tune", "--budget", "3"]) == 0
    pf = read_file(out)
    assert any(sec.entries for sec in pf.sections.values()) and _records(out)


def test_tune_needs_something_to_do(tmp_path, capsys) -> None:
    """Without a model or an import/export the command explains what it needs."""
    assert main(["tune", "-o", str(tmp_path / "p.clmace")]) == 2
    assert "needs a MODEL" in capsys.readouterr().err
