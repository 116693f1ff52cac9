"""GEMM throughput of clmace's OpenCL kernels: MatMul by a constant matrix, end-to-end `run()`, beside NumPy's
matmul (BLAS) on the same CPU; medians of 10 runs after 3 warm-ups.

    python -m bench.bench_gemm [--device opencl]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import onnx
from onnx import helper, numpy_helper

SHAPES = ((508, 1280, 512), (256, 256, 256), (64, 4096, 1000))


def _model(m: int, k: int, n: int, w: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _median(fn, runs: int = 10) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="opencl")
    args = parser.parse_args()
    import clmace

    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        w = rng.standard_normal((k, n)).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sess = clmace.InferenceSession(_model(m, k, n, w), device=args.device)
            sess.wait_saved()
        ours = _median(lambda s=sess, a=x: s.run(None, {"x": a}))
        blas = _median(lambda a=x, b=w: a @ b)
        flops = 2.0 * m * k * n
        print(f"M={m} K={k} N={n}: clmace {ours * 1e3:.2f} ms ({flops / ours / 1e9:.1f} GFLOP/s), "
              f"NumPy {blas * 1e3:.2f} ms ({flops / blas / 1e9:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
