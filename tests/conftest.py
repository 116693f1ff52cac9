"""Shared pytest hooks for the clmace test suite."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_runtime_dir() -> Iterator[None]:
    """A tmpfs directory of this pytest process's own for clmace's RAM-backed PoCL caches (XDG_RUNTIME_DIR),
    removed at the end: the tests' sessions and their child processes leave nothing behind, and never touch the
    caches of other processes running beside them."""
    if not os.path.isdir("/dev/shm"):
        yield
        return
    old = os.environ.get("XDG_RUNTIME_DIR")
    path = tempfile.mkdtemp(prefix=f"clmace-tests-{os.getpid()}-", dir="/dev/shm")
    os.environ["XDG_RUNTIME_DIR"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old
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
