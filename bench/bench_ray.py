"""Batch inference on a local Ray: rows per second with 1 and 2 workers on the NumPy runtime and on PoCL, and
worker start-up with and without the compiled-program file. One run; configurations alternate over rounds;
medians and extremes.

    python -m bench.bench_ray [--model ppocr_cls|PATH.onnx] [--images 256] [--batch-size 16] [--rounds 2]

Throughput is `run_batch` end to end on an already started Ray (actor start-up, image decoding, inference and
writing the Parquet parts), so it includes each worker's start. Start-up is one actor created with a fresh PoCL
cache and a fresh clmace cache: creation to its first batch's result (wall), and inside the worker (session +
first batch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _images(directory: str, count: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (40 + i % 17, 160 + i % 31, 3), dtype=np.uint8)).save(
            os.path.join(directory, name))
        names.append(name)
    return names


def _bake(model: str, program: str, batch: int) -> None:
    """The program file for the batch shape the workers will run (and the last, shorter batch)."""
    import clmace

    sess = clmace.InferenceSession(model, device="opencl", compiled_program=program)
    x = sess.graph.inputs[0]
    shape = [d if isinstance(d, int) else batch for d in x.shape]
    sess.run(None, {x.name: np.zeros(shape, x.dtype)})


def _startup(model: str, program: str | None, images: str, names: list[str]) -> tuple[float, float, dict]:
    import ray

    from clmace.ray import Predictor
    from clmace.ray.loading import RowLoader

    with tempfile.TemporaryDirectory() as pocl, tempfile.TemporaryDirectory() as cache:
        env = {"POCL_CACHE_DIR": pocl, "CLMACE_CACHE_DIR": cache}
        options = {} if program else {"compiled_program": False}
        t0 = time.perf_counter()
        actor = ray.remote(Predictor).options(runtime_env={"env_vars": env}).remote(
            model, program, device="opencl", loader=RowLoader(root=images), **options)
        ray.get(actor.__call__.remote({"path": np.array(names)}))
        wall = time.perf_counter() - t0
        stats = ray.get(actor.stats.remote())
        ray.kill(actor)
    return wall, stats["startup_seconds"] + stats["first_batch_seconds"], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ppocr_cls", help="a bench/wheels.py model name or an .onnx path")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray

    from bench.wheels import WHEEL_MODELS, wheel_model
    from clmace.ray import run_batch

    model = str(wheel_model(args.model)) if args.model in WHEEL_MODELS else args.model
    work = tempfile.mkdtemp(prefix="bench-ray-")
    images = os.path.join(work, "images")
    names = _images(images, args.images)
    program = os.path.join(work, "model.bin")
    _bake(model, program, args.batch_size)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    configs = [(device, workers) for device in ("cpu", "opencl") for workers in (1, 2)]
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    starts: dict[str, list[tuple[float, float]]] = {"with file": [], "without file": []}
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for device, workers in order:
            out = os.path.join(work, f"out-{device}-{workers}-{r}")
            report = run_batch(model, images, out, workers=workers, device=device, batch_size=args.batch_size,
                               compiled_program=program if device == "opencl" else None, progress=False)
            rates[(device, workers)].append(report.rows_per_second)
        for label in (("with file", "without file") if r % 2 == 0 else ("without file", "with file")):
            wall, inside, stats = _startup(model, program if label == "with file" else None, images,
                                           names[: args.batch_size])
            starts[label].append((wall, inside))
            print(f"  start-up {label}: {wall:.2f} s wall, {inside:.2f} s in the worker, "
                  f"program hits {stats['program_hits']}, misses {stats['program_misses']}", flush=True)
    ray.shutdown()
    print(f"\nmodel {os.path.basename(model)}, {args.images} images, batch {args.batch_size}, {args.rounds} rounds")
    print("| runtime | workers | rows/s median | min | max |\n|---|---|---|---|---|")
    for (device, workers), values in rates.items():
        name = "NumPy (cpu)" if device == "cpu" else "PoCL (opencl)"
        print(f"| {name} | {workers} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")
    print("\n| worker start-up (PoCL) | wall median | in worker median |\n|---|---|---|")
    for label, values in starts.items():
        print(f"| {label} | {statistics.median(v[0] for v in values):.2f} s | "
              f"{statistics.median(v[1] for v in values):.2f} s |")
    with_file = statistics.median(v[1] for v in starts["with file"])
    without = statistics.median(v[1] for v in starts["without file"])
    print(f"\nin-worker start-up with the file: {100 * with_file / without:.1f}% of without")


if __name__ == "__main__":
    main()
