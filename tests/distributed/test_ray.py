"""Batch inference on a local Ray instance (2 workers, started here): `clmace batch` and `run_batch` give a plain
session's outputs row for row, resume without redoing rows, lose no row when a worker is killed mid-run; warm
workers load every program from the shared compiled-program file."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is the optional extra clmace[ray]; CI installs it")

import clmace  # noqa: E402
from clmace.core.errors import ConfigError  # noqa: E402
from clmace.ray import Predictor, run_batch  # noqa: E402
from clmace.ray.batch import read_output  # noqa: E402
from clmace.ray.loading import RowLoader  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for the module; run_batch uses it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _tiny_model(path: str, batch: int | str = "N") -> str:
    """Conv 3x3 + Relu + global pool + a linear layer over 3x16x16 images (dynamic batch by default)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])
    graph = helper.make_graph(nodes, "tiny", [x],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 5])],
                              [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
                               numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _images(directory: str, count: int, start: int = 0) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(start)
    os.makedirs(os.path.join(directory, "sub"), exist_ok=True)
    names = []
    for i in range(start, start + count):
        name = f"{'sub/' if i % 4 == 0 else ''}img{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (18 + i % 3, 20, 3), dtype=np.uint8)).save(os.path.join(directory, name))
        names.append(name)
    return names


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    model = _tiny_model(str(root / "tiny.onnx"))
    images = str(root / "images")
    names = _images(images, 24)
    return root, model, images, names


def _reference(model: str, images: str, names: list[str], device: str = "cpu") -> dict[str, np.ndarray]:
    """A plain session over the same rows, one at a time."""
    sess = clmace.InferenceSession(model, device=device)
    x = sess.graph.inputs[0]
    loader = RowLoader(root=images)
    return {n: sess.run(None, {"x": loader.load([n], x)})[0][0] for n in names}


def _check(output: str, want: dict[str, np.ndarray], rtol: float = 1e-5) -> None:
    got = read_output(output)
    assert len(got["id"]) == len(set(got["id"])), "a row was written twice"
    assert sorted(got["id"]) == sorted(want), "rows missing or extra"
    for i, name in enumerate(got["id"]):
        np.testing.assert_allclose(got["logits"][i], want[name], rtol=rtol, atol=1e-6, err_msg=name)


def test_batch_cli_with_two_workers_equals_a_plain_session(local_ray, setup, tmp_path) -> None:
    from clmace.cli import main

    _, model, images, names = setup
    out = str(tmp_path / "scores.parquet")
    assert main(["batch", model, "--input", images, "--output", out, "--workers", "2", "--batch-size", "4",
                 "--quiet"]) == 0
    _check(out, _reference(model, images, names))
    parts = [n for n in os.listdir(out) if n.endswith(".parquet")]
    assert len(parts) == 6  # one per batch of 4


def test_a_second_run_resumes_and_skips_written_rows(local_ray, setup, tmp_path) -> None:
    root, model, _, _ = setup
    images = str(tmp_path / "images")
    first = _images(images, 8)
    out = str(tmp_path / "out")
    report = run_batch(model, images, out, workers=2, batch_size=4, progress=False)
    assert (report.rows, report.skipped) == (8, 0)
    more = _images(images, 6, start=100)
    with open(os.path.join(out, ".tmp-part-half-written.parquet"), "wb") as f:
        f.write(b"PAR1 interrupted")  # a write cut short: not a part, never read
    report = run_batch(model, images, out, workers=2, batch_size=4, progress=False)
    assert (report.rows, report.skipped) == (6, 8)
    _check(out, _reference(model, images, first + more))


def _map_workers() -> list[int]:
    """PIDs of the Ray Data actors running our predictor (by their process title)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"MapWorker(MapBatches(" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_a_killed_worker_loses_no_row(local_ray, setup, tmp_path) -> None:
    """SIGKILL one worker once the first part file is written: Ray restarts it and runs its batch again; every
    row is written exactly once, with the plain session's values."""
    _, model, images, names = setup
    out = str(tmp_path / "out")
    killed: list[int] = []

    class SlowPredictor(Predictor):  # defined here: Ray ships it by value, the workers need not import tests/
        """A Predictor taking 0.4 s a batch, so that a worker can be killed while rows are in flight."""

        def __call__(self, batch):
            time.sleep(0.4)
            return super().__call__(batch)

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if os.path.isdir(out) and any(n.startswith("part-") for n in os.listdir(out)):
                pids = _map_workers()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_batch(model, images, out, workers=2, batch_size=2, progress=False, predictor=SlowPredictor)
    thread.join(5)
    assert killed, "no worker was killed: the run ended before the first part file appeared"
    assert report.rows == len(names)
    _check(out, _reference(model, images, names))


def test_warm_workers_load_every_program_from_the_file(local_ray, setup, tmp_path) -> None:
    """A program file baked once; workers given it as a path and as bytes compile nothing (PoCL)."""
    from tests.opencl_probe import require_device

    require_device()
    _, model, images, names = setup
    program = str(tmp_path / "tiny.bin")
    feeds = {"x": np.zeros((4, 3, 16, 16), np.float32)}
    baker = clmace.InferenceSession(model, device="opencl", compiled_program=program)
    baker.run(None, feeds)
    baker.program_store.wait()  # written on a thread
    with open(program, "rb") as f:
        blob = f.read()
    actor = ray.remote(Predictor)
    batch = {"id": np.array(names[:4]), "path": np.array(names[:4])}
    loader = RowLoader(root=images)
    for shipped in (program, blob):
        worker = actor.remote(model, shipped, device="opencl", loader=loader)
        got = ray.get(worker.__call__.remote(batch))
        stats = ray.get(worker.stats.remote())
        assert stats["program_misses"] == 0 and stats["program_hits"] > 0, stats
        want = _reference(model, images, names[:4], device="opencl")
        for i, name in enumerate(names[:4]):
            np.testing.assert_allclose(got["logits"][i], want[name], rtol=1e-5, atol=1e-6)
        ray.kill(worker)


def test_a_batch_without_the_input_column_names_it(setup) -> None:
    _, model, _, _ = setup
    predictor = Predictor(model)
    with pytest.raises(ConfigError, match="no column 'x' for model input 'x'"):
        predictor({"pixels": np.zeros((2, 3, 16, 16), np.float32)})
    predictor = Predictor(model, columns={"x": "pixels"}, outputs={"logits": "scores"})
    out = predictor({"pixels": np.zeros((2, 3, 16, 16), np.float32)})
    assert out["scores"].shape == (2, 5)


def test_a_model_with_a_fixed_batch_runs_in_pieces(tmp_path) -> None:
    """7 rows through a model fixed at batch 3: pieces of 3, the last one padded and the padding dropped."""
    fixed = Predictor(_tiny_model(str(tmp_path / "fixed.onnx"), batch=3))
    one = clmace.InferenceSession(_tiny_model(str(tmp_path / "dynamic.onnx")), device="cpu")
    x = np.random.default_rng(5).standard_normal((7, 3, 16, 16)).astype(np.float32)
    got = fixed({"x": x, "id": np.arange(7)})
    assert got["logits"].shape == (7, 5) and list(got["id"]) == list(range(7))
    want = np.concatenate([one.run(None, {"x": x[i:i + 1]})[0] for i in range(7)])
    np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)


def test_a_worker_merges_what_it_compiled_into_the_shared_file(setup, tmp_path) -> None:
    """merge_programs=True: a worker on a device the file lacks compiles and merges into it (under the store's
    lock); a worker started later on that file compiles nothing."""
    from tests.opencl_probe import require_device

    require_device()
    _, model, images, names = setup
    shared = str(tmp_path / "shared.bin")
    batch = {"path": np.array(names[:2])}
    first = Predictor(model, shared, device="opencl", loader=RowLoader(root=images), merge_programs=True)
    first(batch)
    first.session.program_store.wait()  # written on a thread
    assert first.stats()["program_misses"] > 0 and os.path.getsize(shared) > 0
    later = Predictor(model, shared, device="opencl", loader=RowLoader(root=images))
    later(batch)
    assert later.stats()["program_misses"] == 0 and later.stats()["program_hits"] > 0
