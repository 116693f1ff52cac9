"""Fixtures for the workflow tests: tiny conv models saved as ONNX, and a way to call the CLI."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.onnx_build import make_model
from tests.opencl_probe import require_device

# Value names in the tiny model, in topological order; Conv outputs vanish when a Relu is fused into them.
LAYER_OUTPUTS = ["r1", "r2", "pool", "flat", "logits"]


def tiny_cnn(scale_conv2: float = 1.0) -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm on 1x3x16x16; scale_conv2 != 1 perturbs conv2."""
    rng = np.random.default_rng(42)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b1 = rng.standard_normal(8).astype(np.float32) * 0.1
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2
    w2[0] *= scale_conv2  # changing one output channel keeps the layer recognisable but wrong
    wg = rng.standard_normal((10, 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wg"], ["logits"], transB=1)]
    return make_model(nodes, [("x", [1, 3, 16, 16])], [("logits", [1, 10])],
                      [("w1", w1), ("b1", b1), ("w2", w2), ("wg", wg)])


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """{'good': tiny CNN, 'bad': the same with conv2's first filter scaled} as ONNX files."""
    folder = tmp_path_factory.mktemp("workflow-models")
    paths = {"good": folder / "tiny.onnx", "bad": folder / "tiny_bad.onnx"}
    onnx.save(tiny_cnn(), paths["good"])
    onnx.save(tiny_cnn(scale_conv2=-3.0), paths["bad"])
    return paths


@pytest.fixture(params=["cpu", "opencl"])
def device(request) -> str:
    """Each device the workflow should work on; opencl needs a usable device (a reasoned skip without one,
    a failure under CLMACE_REQUIRE_OPENCL=1)."""
    if request.param == "opencl":
        require_device()
    return request.param


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run `clmace ARGV`, through cli.main when the workflow commands are wired in, else the same way."""
    from clmace.cli.main import build_parser, main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        if "validate" in sub.choices:
            try:
                code = main(argv)
            except SystemExit as exc:  # --help and usage errors
                code = int(exc.code or 0)
        else:  # not wired into cli.py yet: mirror cli.main's dispatch and error handling
            from clmace.cli.workflow import register
            from clmace.core.errors import ClmaceError

            parser = argparse.ArgumentParser(prog="clmace")
            register(parser.add_subparsers(dest="command", required=True), None)
            try:
                args = parser.parse_args(argv)
                code = args.fn(args)
            except SystemExit as exc:
                code = int(exc.code or 0)
            except (ClmaceError, ValueError, FileNotFoundError) as exc:
                print(f"clmace: error: {exc}", file=err)
                code = 2
    return code, out.getvalue(), err.getvalue()
