"""`clmace ops`: the coverage table and the per-op node-suite run."""

from __future__ import annotations

import json

from clmace.cli import main


def test_ops_lists_every_op_with_its_opencl_status(capsys) -> None:
    assert main(["ops", "--json"]) == 0
    rows = {r["op"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["LSTM"]["opencl"] == "kernel" and rows["Reshape"]["opencl"] == "view"
    assert rows["If"]["opencl"] == "bodies" and rows["TopK"]["opencl"] == "host"
    assert rows["Scan"]["since_opsets"] == [8, 9]
    assert len(rows) > 140


def test_ops_suite_runs_the_node_cases_of_an_op(capsys) -> None:
    assert main(["ops", "--suite", "--op", "GRU", "--op", "Loop", "--json"]) == 0
    rows = {r["op"]: r["node_suite"] for r in json.loads(capsys.readouterr().out)}
    assert rows["GRU"].get("passed", 0) >= 3 and not rows["GRU"].get("failed") and not rows["GRU"].get("error")
    assert rows["Loop"].get("passed", 0) >= 2 and not rows["Loop"].get("failed")
