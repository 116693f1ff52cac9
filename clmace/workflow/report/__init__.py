"""`clmace report`: run the whole workflow on a model and write one self-contained HTML (or Markdown) page."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from clmace.core.errors import ClmaceError
from clmace.workflow.report.collect import collect


def write_report(data: dict, output: str, fmt: str = "html") -> str:
    """Render collected data to output in fmt ('html' or 'md'); return the path written."""
    if fmt == "html":
        from clmace.workflow.report.html import render_html

        text = render_html(data)
    elif fmt == "md":
        from clmace.workflow.report.markdown import render_markdown

        text = render_markdown(data, output)
    else:
        raise ClmaceError(f"unknown report format {fmt!r}; expected 'html' or 'md'")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = f"{output}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, output)  # a half-written page never replaces a good one
    return output


def make_report(model: str, device: str = "cpu", output: str = "report.html", fmt: str = "html", *,
                runs: int = 50, warmup: int = 5, precision: str = "fp32", layers: bool = True,
                fresh_process: bool = True, compare_onnxruntime: bool = True,
                input_shapes: Mapping[str, Sequence[int]] | None = None, command: str | None = None,
                show_progress: bool = True) -> dict:
    """Run convert, validate, bench and inspect on model/device, write the page, return the collected data."""
    data = collect(model, device, runs, warmup, precision, layers, fresh_process, compare_onnxruntime,
                   input_shapes, command, show_progress)
    write_report(data, output, fmt)
    return data


__all__ = ["collect", "make_report", "write_report"]
