"""Classify a photograph with the real pretrained EfficientNet-Lite0 on clmace, checked against onnxruntime.

Run from anywhere: ``python examples/demo.py [--image photo.jpg] [--device opencl|cpu]``. The first run
exports the model from the pip-packaged weights into ``$CLMACE_CACHE_DIR/demo`` (default
``~/.cache/clmace/demo``) and later runs reuse it; every run converts it with clmace and loads the result.
On OpenCL the session reads (or, the first time, compiles and writes) the compiled-program file beside it,
and the demo then measures start-up in fresh processes: cold (nothing cached) against warm (the file only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds clmace/ and bench/

import clmace  # noqa: E402
from bench.models import efficientnet_lite0, efficientnet_lite0_preprocess, imagenet_labels  # noqa: E402

T = TypeVar("T")


def cache_dir() -> Path:
    """Where the exported and converted models are kept between runs."""
    root = os.environ.get("CLMACE_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "clmace") / "demo"


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Call fn() and return its result with the elapsed seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def load_image(path: str | None) -> tuple[np.ndarray, str]:
    """Read a JPEG/PNG with skimage.io, or return the skimage sample photograph of a cat."""
    if path is None:
        from skimage.data import chelsea

        return chelsea(), "skimage.data.chelsea()"
    from skimage.io import imread

    return imread(path), path


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def prepare_model(folder: Path) -> tuple[Path, Path, float, float]:
    """Export EfficientNet-Lite0 (once, cached) and convert it with clmace; return paths and seconds."""
    onnx_path, export_s = timed(lambda: efficientnet_lite0(folder))
    converted = folder / "efficientnet_lite0.clmace"
    _, convert_s = timed(lambda: clmace.convert(onnx_path, converted))  # redone each run: never stale
    return onnx_path, converted, export_s, convert_s


def show_startup(model: Path, device: str) -> None:
    """Process start to first result in fresh processes: cold (nothing cached) vs warm (only the file)."""
    import tempfile

    from bench.bench_startup import measure

    print("start-up in fresh processes (import / session / first inference):")
    with tempfile.TemporaryDirectory(prefix="clmace-demo-") as tmp:
        r = measure(str(model), device, 1, Path(tmp))
    for kind in ("cold", "warm"):
        t = r[kind]
        print(f"  {kind}: {t['to_first_result_s']:6.2f} s  ({t['import_s']:.2f} / {t['session_s']:.2f} / "
              f"{t['first_run_s']:.3f})" + ("  no compiled-program file" if kind == "cold" else "  file only"))
    print(f"  warm start takes {100 * r['ratio']:.1f}% of the cold start")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code (1 when clmace and onnxruntime disagree on top-1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="a JPEG/PNG file (default: skimage.data.chelsea(), a cat)")
    parser.add_argument("--device", default="opencl", help="clmace device: opencl, gpu, opencl:N or cpu")
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm fresh-process measurement")
    parser.add_argument("--runs", type=int, default=20, help="timed runs after the first (default: 20)")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print (default: 5)")
    args = parser.parse_args(argv)

    image, source = load_image(args.image)
    batch = efficientnet_lite0_preprocess(image)
    labels = imagenet_labels()

    onnx_path, converted, export_s, convert_s = prepare_model(cache_dir())
    program_file = converted.with_suffix(".programs.bin")
    options = {} if args.device == "cpu" else {"compiled_program": program_file}
    session, create_s = timed(lambda: clmace.InferenceSession(converted, device=args.device, **options))
    name = session.get_inputs()[0].name
    (logits,), first_s = timed(lambda: session.run(None, {name: batch}))
    runs = [timed(lambda: session.run(None, {name: batch}))[1] for _ in range(args.runs)]

    probs = softmax(logits[0])
    top = np.argsort(-probs)[: args.top]
    print(f"image: {source} {image.shape} -> input {list(batch.shape)}")
    print(f"model: EfficientNet-Lite0 ({onnx_path.name} -> {converted}) on device {args.device!r}")
    for rank, idx in enumerate(top, 1):
        print(f"  {rank}. {labels[idx]:<28} {probs[idx]:7.2%}")
    print(f"export         {export_s * 1e3:8.1f} ms (cached after the first run)")
    print(f"convert        {convert_s * 1e3:8.1f} ms")
    print(f"session create {create_s * 1e3:8.1f} ms")
    print(f"first run      {first_s * 1e3:8.1f} ms")
    if runs:
        print(f"median of {len(runs):<4} {statistics.median(runs) * 1e3:8.1f} ms")
    if session.program_store is not None:
        st = session.program_store.status()
        state = "compiled from source and written to" if st["misses"] else "all loaded from"
        print(f"compiled programs: {st['hits'] + st['misses']} {state} {program_file} "
              f"({program_file.stat().st_size:,} bytes)" if program_file.exists() else "compiled programs: not saved")
        if not args.no_startup:
            show_startup(converted, args.device)

    import onnxruntime as ort

    reference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {reference.get_inputs()[0].name: batch})[0]
    ref_top1 = int(np.argmax(expected[0]))
    agree = ref_top1 == int(top[0])
    err = float(np.abs(expected - logits).max())
    print(f"onnxruntime top-1: {labels[ref_top1]} -> {'agrees' if agree else 'DISAGREES'} "
          f"(max |logit diff| {err:.2e})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
