"""bench(): start-up in fresh processes, steady-state statistics and the per-node profile."""

from __future__ import annotations

import json

import pytest

from clmace.workflow.bench import bench, stats
from tests.workflow.conftest import run_cli


def test_bench_fields(models) -> None:
    r = bench(str(models["good"]), "cpu", runs=3, warmup=1)
    for step in ("cold", "warm", "onnxruntime"):
        s = r["startup"][step]
        assert s["import_s"] > 0 and s["session_s"] > 0 and s["first_run_s"] > 0
        assert s["process_s"] >= s["to_first_result_s"] > 0
    assert set(r["startup"]["cache_files"]) == {"POCL_CACHE_DIR", "CLMACE_CACHE_DIR"}
    steady = r["steady"]
    for engine in ("clmace", "onnxruntime"):
        e = steady[engine]
        assert len(e["samples_ms"]) == 3
        assert 0 < e["min_ms"] <= e["median_ms"] <= e["p90_ms"] <= e["p99_ms"] <= e["max_ms"]
        assert e["throughput_per_s"] > 0
    prof = steady["profile"]
    assert prof["top_nodes"] and {n["op"] for n in prof["top_nodes"]} >= {"Gemm"}
    assert sum(o["share"] for o in prof["by_op"]) == pytest.approx(1.0)
    assert steady["peak_host_rss_bytes"] > 0


def test_bench_without_processes_or_baseline(models) -> None:
    r = bench(str(models["good"]), "cpu", runs=2, warmup=0, compare_onnxruntime=False, fresh_process=False)
    assert "startup" not in r and "onnxruntime" not in r["steady"]


def test_stats() -> None:
    s = stats([0.001, 0.002, 0.003, 0.004])
    assert s["median_ms"] == pytest.approx(2.5) and s["min_ms"] == pytest.approx(1.0)
    assert s["throughput_per_s"] == pytest.approx(4 / 0.010)


def test_cli_json(models) -> None:
    code, out, _ = run_cli(["bench", str(models["good"]), "--runs", "2", "--warmup", "0", "--no-fresh-process",
                            "--json"])
    assert code == 0 and json.loads(out)["steady"]["clmace"]["median_ms"] > 0
