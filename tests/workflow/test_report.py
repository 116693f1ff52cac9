"""`clmace report`: a self-contained page with every section, charts embedded; troubleshooting from facts."""

from __future__ import annotations

import base64
import re

import pytest

from clmace.workflow.report import make_report
from clmace.workflow.report.html import SECTIONS
from clmace.workflow.report.troubleshoot import troubleshoot
from tests.workflow.conftest import run_cli


@pytest.fixture(scope="module")
def report(models, tmp_path_factory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("report") / "tiny.html"
    data = make_report(str(models["good"]), "cpu", str(path), runs=3, warmup=1, show_progress=False)
    return data, path.read_text(encoding="utf-8")


def test_html_is_self_contained(report) -> None:
    _, page = report
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<style>" in page and "<link" not in page and "<script" not in page


def test_html_has_every_section(report) -> None:
    _, page = report
    for key, title in SECTIONS:
        assert f'<section id="{key}"><h2>{title}</h2>' in page


def test_html_embeds_charts(report) -> None:
    _, page = report
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # start-up, latency, per-op, per-layer
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)


def test_report_data(report) -> None:
    data, page = report
    assert [s["name"] for s in data["steps"]] == ["analyse model", "convert", "validate", "bench",
                                                  "inspect compiled-program file"]
    assert all(s["status"] == "ok" for s in data["steps"]), data["steps"]
    assert data["validation"]["passed"] and data["model"]["optimized"]["flops"] > 0
    assert not data["program_file"]["produced"] and "no compiled-program file" in page.lower()
    assert not [i for i in data["troubleshooting"] if i["level"] == "error"]


def test_markdown(models, tmp_path) -> None:
    out = tmp_path / "r.md"
    code, stdout, _ = run_cli(["report", str(models["good"]), "--format", "md", "-o", str(out), "--runs", "2",
                               "--warmup", "0", "--no-fresh-process", "--quiet"])
    assert code == 0 and "report written" in stdout
    text = out.read_text()
    for _, title in SECTIONS:
        assert f"## {title}" in text
    assert (tmp_path / "r_img" / "latency.png").is_file() and "](r_img/latency.png)" in text


def test_troubleshooting_from_what_happened() -> None:
    data = {"steps": [{"name": "validate", "status": "failed", "seconds": 0.1,
                       "detail": "ClmaceError: validation needs onnxruntime as the reference"}],
            "device": {"kind": "opencl", "error": "DeviceError: no OpenCL platform found", "rows": []},
            "validation": None,
            "bench": {"device": "opencl", "startup": {
                "cold": {"to_first_result_s": 3.0, "stderr": "WARNING clmace.store: compiled-program file rejected"},
                "warm": {"to_first_result_s": 2.9, "stderr": ""}},
                "steady": {"notes": [], "fallback_nodes": ["/Resize"]}},
            "program_file": {"produced": False, "reason": "the cold-start process left no file"}}
    items = troubleshoot(data)
    titles = " | ".join(i["title"] for i in items)
    assert items[0]["level"] == "error" and "onnxruntime" in items[0]["detail"]
    for expected in ("OpenCL device could not be queried", "fell back to the CPU", "cold-start process logged",
                     "warm start was not faster", "no compiled-program file"):
        assert expected in titles
    assert not any(i["level"] == "ok" for i in items)
