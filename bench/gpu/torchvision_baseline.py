"""On the NVIDIA machine: export torchvision CNNs to ONNX and time PyTorch eager and CUDA-graph replay.

fp32 with TF32 off, batch 1, random weights (seed 0); median and p90 of N runs after warm-up, CUDA events.

    python bench/gpu/torchvision_baseline.py --out DIR --runs 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torchvision

MODELS = ("mobilenet_v2", "efficientnet_b0", "resnet50")


def export(name: str, out_dir: Path) -> Path:
    """Export torchvision's `name` (random weights, eval mode) to ONNX opset 17 with the legacy exporter."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    path = out_dir / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
    return path


def _timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def capture_graph(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """model(x) captured as a CUDA graph after warm-up on a side stream: (graph, its static output)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(5):
            model(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(x)
    return graph, out


def torch_latency(name: str, runs: int) -> dict:
    """Eager and CUDA-graph latency (ms) of one model."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval().cuda()
    x = torch.randn(1, 3, 224, 224, device="cuda")
    with torch.no_grad():
        for _ in range(20):
            model(x)
        eager = _timed(lambda: model(x), runs)
        graph, _ = capture_graph(model, x)
        for _ in range(20):
            graph.replay()
        graphed = _timed(graph.replay, runs)
    return {k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
            for k, v in (("eager", eager), ("cuda_graph", graphed))}


def main() -> None:
    """Export every model and time it; write DIR/torch_baseline.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name in MODELS:
        export(name, out)
        results[name] = torch_latency(name, args.runs)
        print(name, json.dumps(results[name]), flush=True)
    (out / "torch_baseline.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
