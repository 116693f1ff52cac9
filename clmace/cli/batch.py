"""`clmace batch`: parsing and printing for batch inference on Ray (the engine is clmace.ray)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

EXAMPLE = ("clmace batch model.onnx --input images/ --output scores.parquet --workers 2\n"
           "  clmace batch model.onnx --input rows.parquet --output out.parquet --device opencl "
           "--compiled-program model.bin --address ray://head:10001")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run a model over a directory or Parquet file on Ray workers; write a resumable Parquet dataset."""
    try:
        from clmace.ray import run_batch
        from clmace.ray.loading import RowLoader
    except ImportError as exc:
        raise SystemExit(f"clmace batch needs Ray: pip install 'clmace[ray]' ({exc})") from exc
    loader = RowLoader(size=args.size, scale=args.scale, mean=args.mean, std=args.std, layout=args.layout)
    report = run_batch(args.model, args.input, args.output, workers=args.workers, address=args.address,
                       device=args.device, precision=args.precision, compiled_program=args.compiled_program,
                       batch_size=args.batch_size, loader=loader, id_column=args.id_column,
                       cpus_per_worker=args.cpus_per_worker, progress=not args.quiet)
    print(f"{report.rows} rows written to {report.output} in {report.parts} part file(s), {report.skipped} already "
          f"there; {report.seconds:.1f} s ({report.rows_per_second:.1f} rows/s) on {report.workers} worker(s)")
    return 0


def register(add: Callable[..., Any]) -> None:
    """Add `clmace batch` through cli.main's `add` helper."""
    p = add("batch", cmd_batch, "Run a model over a directory of images / .npy files or a Parquet table on Ray "
            "workers (a local Ray by default); the outputs go to a Parquet dataset (a directory of part files). "
            "Resumable: rows already written are skipped.")
    p.add_argument("model", help=".onnx or converted-model file")
    p.add_argument("--input", required=True, help="directory (images, .npy; searched recursively) or Parquet file")
    p.add_argument("--output", required=True, help="output Parquet dataset directory (created; resumed if present)")
    p.add_argument("--workers", type=int, default=2, help="Ray actors, one session each (default 2)")
    p.add_argument("--address", help="Ray cluster address (ray://host:10001 or auto); default: a local Ray")
    p.add_argument("--device", default="cpu", help="cpu, opencl, gpu or opencl:N on every worker")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="OpenCL storage precision")
    p.add_argument("--compiled-program", help="compiled-program file the workers start from (read-only)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per batch (and per part file)")
    p.add_argument("--id-column", help="Parquet input: the column of unique row ids (default 'id', else row numbers)")
    p.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs Ray reserves per worker")
    p.add_argument("--size", type=_size, help="image height x width, e.g. 224x224 (default: the model input's)")
    p.add_argument("--scale", type=float, default=1 / 255, help="pixel scale before mean/std (default 1/255)")
    p.add_argument("--mean", type=_floats, default=(0.0,), help="per-channel mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_floats, default=(1.0,), help="per-channel std, e.g. 0.229,0.224,0.225")
    p.add_argument("--layout", default="auto", choices=["auto", "NCHW", "NHWC"], help="image input layout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
