"""Shared pytest hooks for the clmace test suite."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the ONNX node-suite tally recorded by tests/test_onnx_node_suite.py, if it ran."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":  # teardown reports repeat the properties
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == "node_suite_summary":
                    terminalreporter.write_line(value)
