"""The converted-model cache: a second session on the same .onnx path reads the converted model and does not
import onnx; a changed file, other input shapes or a changed external-data file miss; an entry in a directory
others can write is not used."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import clmace
from clmace import model_cache
from tests.onnx_build import assert_close, make_model, ort_run


@pytest.fixture
def model_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CLMACE_CACHE_DIR", str(tmp_path / "cache"))
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [2, 4])], [("y", [2, 3])],
                       [("w", w)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def test_second_start_reads_the_converted_model_without_onnx(model_path, tmp_path):
    clmace.InferenceSession(str(model_path))  # converts and caches
    entry = model_cache.entry_path(str(model_path), None, True)
    assert os.path.exists(entry)
    code = ("import sys, numpy as np, clmace; s = clmace.InferenceSession(sys.argv[1]); "
            "y = s.run(None, {'x': np.ones((2, 4), np.float32)})[0]; "
            "print('onnx' in sys.modules, y.shape)")
    out = subprocess.run([sys.executable, "-c", code, str(model_path)], capture_output=True, text=True,
                         env=dict(os.environ, CLMACE_CACHE_DIR=str(tmp_path / "cache")), timeout=120, check=True)
    assert out.stdout.split() == ["False", "(2,"] + ["3)"], out.stdout + out.stderr


def test_a_changed_model_or_shape_misses(model_path):
    first = model_cache.entry_path(str(model_path), None, True)
    assert model_cache.entry_path(str(model_path), {"x": [2, 4]}, True) != first
    model = onnx.load(model_path)
    model.graph.initializer[0].float_data[:] = []
    model.graph.initializer[0].raw_data = np.zeros((4, 3), np.float32).tobytes()
    onnx.save(model, model_path)
    assert model_cache.entry_path(str(model_path), None, True) != first
    x = np.ones((2, 4), np.float32)
    assert_close(clmace.InferenceSession(str(model_path)).run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_external_data_change_misses(tmp_path, monkeypatch):
    monkeypatch.setenv("CLMACE_CACHE_DIR", str(tmp_path / "cache"))
    w = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [1, 64])], [("y", [1, 64])],
                       [("w", w)])
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    x = np.ones((1, 64), np.float32)
    clmace.InferenceSession(str(path)).run(None, {"x": x})
    assert model_cache.get(str(path), None, True) is not None
    (tmp_path / "ext.bin").write_bytes(np.zeros((64, 64), np.float32).tobytes())
    assert model_cache.get(str(path), None, True) is None
    assert_close(clmace.InferenceSession(str(path)).run(None, {"x": x})[0], np.zeros((1, 64), np.float32))


def test_entry_in_a_world_writable_directory_is_not_used(model_path, tmp_path):
    clmace.InferenceSession(str(model_path))
    os.chmod(tmp_path / "cache" / "models", 0o777)
    assert model_cache.get(str(model_path), None, True) is None
