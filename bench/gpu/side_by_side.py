"""On the NVIDIA machine: clmace (NVIDIA OpenCL) beside PyTorch CUDA graphs, in one process, alternating.

fp32 with TF32 off, batch 1; torchvision models with random weights (seed 0), exported to ONNX opset 17 there.
Each round runs every contender `--runs` times, in an order that alternates between rounds:
- clmace: end-to-end `run()` (input copied in from host memory, every launch enqueued, output copied back),
  on the queue without profiling (the default), and with profiling on (what every run paid before);
- PyTorch CUDA graph, end to end like clmace (host input copied in, replay, output copied back), and the replay
  alone (input already on the GPU).
Wall times by perf_counter; medians and p90 over all rounds. Also: launches per run, host time per launch
(clmace's enqueue loop / launches), device time of one run (profiling events), and the largest difference
between the clmace and PyTorch outputs.

    python bench/gpu/side_by_side.py --models mobilenet_v2 resnet50 --rounds 10 --runs 20 --out DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision_baseline import capture_graph  # run as a script: bench/gpu is on sys.path

import clmace


def _export(name: str, out: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    path = out / f"{name}.onnx"
    # With gradients on: under no_grad torchvision's attention takes a fused path the ONNX exporter lacks.
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], verbose=False)
    return model, path


def _graph(model: torch.nn.Module) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
    static_in = torch.zeros(1, 3, 224, 224, device="cuda")
    graph, static_out = capture_graph(model, static_in)
    return graph, static_in, static_out


def _stats(values: list[float]) -> dict:
    ms = np.asarray(values) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def measure(name: str, out: Path, rounds: int, runs: int) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, path = _export(name, out)
    model = model.cuda()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    x_pinned = torch.from_numpy(x).pin_memory()
    with torch.no_grad():
        graph, static_in, static_out = _graph(model)
        sess = clmace.InferenceSession(str(path), device="gpu")
        got = sess.run(None, {"input": x})[0]
        sess.wait_saved()  # the compiled-program file is written on a thread: not inside the timed runs
        runtime = sess.runtime  # planned by now (a model with shape computations plans at its first run)
        static_in.copy_(x_pinned)
        graph.replay()
        want = static_out.cpu().numpy()

        def ours() -> None:
            sess.run(None, {"input": x})

        def e2e() -> None:
            static_in.copy_(x_pinned, non_blocking=True)
            graph.replay()
            static_out.cpu()

        def replay() -> None:
            graph.replay()
            torch.cuda.synchronize()

        contenders = {"clmace": ours, "clmace (profiling on)": ours, "cuda graph end to end": e2e,
                      "cuda graph replay": replay}
        times: dict[str, list[float]] = {k: [] for k in contenders}
        host: list[float] = []
        for r in range(rounds):
            order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
            for label in order:
                runtime.profiling = label == "clmace (profiling on)"
                fn = contenders[label]
                for _ in range(3):
                    fn()
                for _ in range(runs):
                    start = time.perf_counter()
                    fn()
                    times[label].append(time.perf_counter() - start)
                    if label == "clmace":
                        host.append(runtime.enqueue_seconds)
        runtime.profiling = True
        sess.run(None, {"input": x})
        device_ms = sum(row[3] for row in runtime.node_times()) * 1e3
        launches = sum(1 for row in runtime.node_times() if row[2] == "opencl")
        runtime.profiling = False
    result = {k: _stats(v) for k, v in times.items()}
    result.update(launches=launches, device_ms=device_ms,
                  host_us_per_launch=float(np.median(host)) * 1e6 / max(launches, 1),
                  max_abs_diff_vs_torch=float(np.abs(got - want).max()),
                  fallback_nodes=[n for n, d in runtime.node_devices().items() if d == "cpu"])
    result["ratio_vs_graph_e2e"] = result["clmace"]["median_ms"] / result["cuda graph end to end"]["median_ms"]
    result["ratio_vs_graph_replay"] = result["clmace"]["median_ms"] / result["cuda graph replay"]["median_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "efficientnet_b0", "resnet50",
                                                        "shufflenet_v2_x1_0", "vit_b_16"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", required=True, help="directory for side_by_side.json")
    parser.add_argument("--models-dir", default="/tmp/models", help="where the ONNX exports go")
    args = parser.parse_args()
    out = Path(args.out)
    models = Path(args.models_dir)
    models.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "models": {}}
    for name in args.models:
        try:
            results["models"][name] = r = measure(name, models, args.rounds, args.runs)
        except Exception as exc:  # noqa: BLE001 - one model failing must not lose the others' figures
            print(f"{name}: failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        on, e2e, replay = (r[k]["median_ms"] for k in ("clmace (profiling on)", "cuda graph end to end",
                                                         "cuda graph replay"))
        print(f"{name}: clmace {r['clmace']['median_ms']:.3f} ms (profiling on {on:.3f}), graph e2e {e2e:.3f}, "
              f"replay {replay:.3f}; ratio {r['ratio_vs_graph_e2e']:.2f}x / {r['ratio_vs_graph_replay']:.2f}x; "
              f"{r['launches']} launches, {r['host_us_per_launch']:.1f} us host each, device {r['device_ms']:.2f} "
              f"ms, max diff {r['max_abs_diff_vs_torch']:.1e}, host nodes {r['fallback_nodes']}", flush=True)
        (out / "side_by_side.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
