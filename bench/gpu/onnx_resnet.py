"""ResNet-18/34/50 as ONNX built with onnx.helper alone (torchvision topology, BatchNorm folded, seeded He weights).

For machines where PyTorch's ONNX export is unavailable (it segfaults on the NVIDIA machine):

    python3 bench/gpu/onnx_resnet.py resnet50 /tmp/models/resnet50.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEPTHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
          "resnet50": ("bottleneck", (3, 4, 6, 3))}


class _Builder:
    """Collects nodes and initializers; every conv has a bias (BatchNorm folded into it)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, gain: float = 1.0) -> str:
        from onnx import helper, numpy_helper

        w, b, y = self.name("w"), self.name("b"), self.name("conv")
        std = gain * np.sqrt(2.0 / (cin * k * k))
        weight = (self.rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        bias = (self.rng.standard_normal(cout) * 0.05).astype(np.float32)
        self.inits += [numpy_helper.from_array(weight, w), numpy_helper.from_array(bias, b)]
        self.nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[k // 2] * 4))
        return self.op("Relu", [y]) if relu else y

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        y = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [y], **attrs))
        return y


def build(arch: str, path: Path, seed: int = 0) -> Path:
    """Write the ONNX model of `arch` (input [1,3,224,224], output [1,1000]) to path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kind, blocks = DEPTHS[arch]
    b = _Builder(seed)
    x = b.conv("input", 3, 64, 7, 2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin, expansion = 64, 4 if kind == "bottleneck" else 1
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            cout = width * expansion
            if kind == "basic":
                y = b.conv(b.conv(x, cin, width, 3, stride), width, cout, 3, relu=False, gain=0.5)
            else:
                y = b.conv(b.conv(x, cin, width, 1), width, width, 3, stride)
                y = b.conv(y, width, cout, 1, relu=False, gain=0.5)
            short = x if stride == 1 and cin == cout else b.conv(x, cin, cout, 1, stride, relu=False)
            x = b.op("Relu", [b.op("Add", [y, short])])
            cin = cout
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    fc_w = (b.rng.standard_normal((1000, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    b.inits += [numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b")]
    b.nodes.append(helper.make_node("Gemm", [x, "fc_w", "fc_b"], ["output"], transB=1))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1000])]
    graph = helper.make_graph(b.nodes, arch, inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def main() -> None:
    """Command line: ARCH PATH [--seed N]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=sorted(DEPTHS))
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.arch, args.path, args.seed))


if __name__ == "__main__":
    main()
