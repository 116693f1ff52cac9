"""Batch inference on a local Ray: rows per second with 1 and 2 workers on the NumPy runtime and on PoCL, and
worker start-up with and without the compiled-program file. One run; configurations alternate over rounds;
medians and extremes.

    python -m bench.bench_ray [--model ppocr_cls|PATH.onnx] [--size 48x192] [--images 256] [--batch-size 16]
                              [--rounds 2] [--write]

Throughput is `run_batch` end to end on an already started Ray (actor start-up, image decoding, inference and
writing the Parquet parts), so it includes each worker's start. Start-up is one actor created with a fresh PoCL
cache and a fresh clmace cache: creation to its first batch's result (wall), and inside the worker (session +
first batch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def _bake(model: str, program: str, batch: int, size: tuple[int, int]) -> None:
    """The program file for the batch shape the workers will run."""
    import clmace

    sess = clmace.InferenceSession(model, device="opencl", compiled_program=program)
    x = sess.graph.inputs[0]
    shape = [d if isinstance(d, int) else v for d, v in zip(x.shape, (batch, 3, *size))]
    sess.run(None, {x.name: np.zeros(shape, x.dtype)})
    sess.wait_saved()


def _startup(model: str, program: str | None, loader: object, names: list[str]) -> tuple[float, float, dict]:
    import ray

    from clmace.ray import Predictor

    with tempfile.TemporaryDirectory() as pocl, tempfile.TemporaryDirectory() as cache:
        env = {"POCL_CACHE_DIR": pocl, "CLMACE_CACHE_DIR": cache}
        t0 = time.perf_counter()
        actor = ray.remote(Predictor).options(runtime_env={"env_vars": env}).remote(
            model, program or False, device="opencl", loader=loader)
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
    parser.add_argument("--size", default="48x192", help="image height x width the model takes")
    parser.add_argument("--write", action="store_true", help="rewrite the Ray section of bench/RESULTS.md")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    import ray

    from bench.wheels import WHEEL_MODELS, wheel_model
    from clmace.ray import run_batch
    from clmace.ray.loading import RowLoader

    model = str(wheel_model(args.model)) if args.model in WHEEL_MODELS else args.model
    work = tempfile.mkdtemp(prefix="bench-ray-")
    images = os.path.join(work, "images")
    names = _images(images, args.images)
    program = os.path.join(work, "model.bin")
    _bake(model, program, args.batch_size, size)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    configs = [(device, workers) for device in ("cpu", "opencl") for workers in (1, 2)]
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    starts: dict[str, list[tuple[float, float]]] = {"with file": [], "without file": []}
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for device, workers in order:
            out = os.path.join(work, f"out-{device}-{workers}-{r}")
            report = run_batch(model, images, out, workers=workers, device=device, batch_size=args.batch_size,
                               loader=RowLoader(size=size),
                               compiled_program=program if device == "opencl" else None, progress=False)
            rates[(device, workers)].append(report.rows_per_second)
        for label in (("with file", "without file") if r % 2 == 0 else ("without file", "with file")):
            wall, inside, stats = _startup(model, program if label == "with file" else None,
                                           RowLoader(root=images, size=size), names[: args.batch_size])
            starts[label].append((wall, inside))
            print(f"  start-up {label}: {wall:.2f} s wall, {inside:.2f} s in the worker, "
                  f"program hits {stats['program_hits']}, misses {stats['program_misses']}", flush=True)
    ray.shutdown()
    lines = [f"model {os.path.basename(model)} (bench/wheels.py), {args.images} images ({args.size}), batch "
             f"{args.batch_size}, {args.rounds} rounds; Ray {ray.__version__}, 2 CPUs", "",
             "| runtime | workers | rows/s median | min | max |", "|---|---|---|---|---|"]
    for (device, workers), values in rates.items():
        name = "NumPy (cpu)" if device == "cpu" else "PoCL (opencl)"
        lines.append(f"| {name} | {workers} | {statistics.median(values):.1f} | {min(values):.1f} | "
                     f"{max(values):.1f} |")
    lines += ["", "| worker start-up (PoCL, fresh caches) | wall median | in the worker median |", "|---|---|---|"]
    for label, values in starts.items():
        lines.append(f"| {label} | {statistics.median(v[0] for v in values):.2f} s | "
                     f"{statistics.median(v[1] for v in values):.2f} s |")
    with_file = statistics.median(v[1] for v in starts["with file"])
    without = statistics.median(v[1] for v in starts["without file"])
    lines += ["", f"In the worker, start-up with the program file takes {100 * with_file / without:.1f}% of the time "
              "without it."]
    text = "\n".join(lines)
    print("\n" + text)
    if args.write:
        from bench.results_md import write_section

        command = "python -m bench.bench_ray " + " ".join(sys.argv[1:])
        write_section("<!-- ray:start -->", "<!-- ray:end -->",
                      f"<!-- ray:start -->\n## Batch inference on Ray (`clmace batch`)\n\n"
                      f"{time.strftime('%Y-%m-%d')}. Command: `{command}`. Throughput is run_batch end to end on a "
                      "started Ray (worker start, image decoding, inference, Parquet writes). Both PoCL workers "
                      "share the same 2 cores, so a second PoCL worker adds little here; the NumPy runtime is "
                      "mostly single-threaded.\n\n" + text + "\n<!-- ray:end -->")

if __name__ == "__main__":
    main()
