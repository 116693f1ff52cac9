"""Shared pytest hooks for the clmace test suite."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _drop_pocl_scratch_caches() -> Iterator[None]:
    """Remove the RAM-backed PoCL caches clmace made for the tests' temporary cache directories."""
    pattern = f"/dev/shm/clmace-pocl-{os.getuid()}-*"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    patterns = [pattern] + ([os.path.join(runtime, f"clmace-pocl-{os.getuid()}-*")] if runtime else [])
    before = {p for pat in patterns for p in glob.glob(pat)}
    yield
    for path in {p for pat in patterns for p in glob.glob(pat)} - before:
        shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the ONNX node-suite tally recorded by tests/test_onnx_node_suite.py, if it ran."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":  # teardown reports repeat the properties
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == "node_suite_summary":
                    terminalreporter.write_line(value)
