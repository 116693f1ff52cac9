"""The tuner: records round-trip through the file, other devices' records are ignored, resume, failures, equality."""

from __future__ import annotations

import json
import zlib

import numpy as np
import onnx
import pytest

from clmace import InferenceSession
from clmace.backends.opencl.tuning.search import Tuner
from clmace.store import read_file
from clmace.workflow.tune import export_tuning, import_tuning, tune_model
from tests.tuner.conftest import tiny_cnn


@pytest.fixture()
def model(tmp_path):
    """The tiny CNN as an ONNX file."""
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_cnn(size=12), str(path))
    return str(path)


def fake_timer(fail=lambda launch: False, interrupt_after: int | None = None):
    """A deterministic cost per (variant, local size); optional failures and a Ctrl-C after N calls."""
    calls = [0]

    def timer(launch, runs):
        calls[0] += 1
        if interrupt_after is not None and calls[0] > interrupt_after:
            raise KeyboardInterrupt
        if fail(launch):
            raise RuntimeError("clEnqueueNDRangeKernel failed: OUT_OF_RESOURCES")
        cost = 1e-6 * (1 + zlib.crc32(f"{launch.variant} {launch.lws}".encode()) % 997 / 100)
        return [cost] * runs

    return timer


def tune(model: str, path: str, **kwargs):
    """One Tuner run on a fresh untuned session over the file at path."""
    sess = InferenceSession(model, device="opencl", compiled_program=path, tuned=False)
    kwargs.setdefault("timer", fake_timer())
    return Tuner(sess.runtime, sess.program_store.save, **kwargs).run()


def records(path: str) -> dict:
    """Every tuned record in the file (one device here)."""
    return {k: v for sec in read_file(path).sections.values() for k, v in sec.tuned.items()}


def test_records_round_trip(model, tmp_path) -> None:
    """Tuned records are saved, read back at plan time, and select the recorded variants and local sizes."""
    path = str(tmp_path / "p.clmace")
    report = tune(model, path)
    saved = records(path)
    assert report.total == len(report.results) == len(saved) >= 5
    sess = InferenceSession(model, device="opencl", compiled_program=path)
    plan = sess.runtime.plan
    launches = [s for s in plan.steps if getattr(s, "spec", None)]
    assert plan.records_used == len(launches) and all(s.tuned for s in launches)
    for s in launches:
        rec = saved[s.spec.key]
        assert s.variant == rec["variant"] and s.kernel.function_name == rec["kernel"]
        assert (None if s.lws is None else list(s.lws)) == rec["lws"]
    x = {"x": np.random.default_rng(5).standard_normal((1, 3, 12, 12)).astype(np.float32)}
    want = InferenceSession(model, device="cpu").run(None, x)[0]
    np.testing.assert_allclose(sess.run(None, x)[0], want, rtol=1e-4, atol=1e-4)


def test_record_for_another_device_is_ignored(model, tmp_path) -> None:
    """Records under another device's fingerprint never apply; the same records under ours do."""
    path, doc_path = str(tmp_path / "p.clmace"), str(tmp_path / "t.json")
    tune(model, path)
    export_tuning(path, doc_path)
    doc = json.loads(open(doc_path).read())
    (section,) = doc["sections"]
    for rec in section["records"].values():
        if rec["family"] == "conv_dw":
            rec.update(variant="pix4", kernel="conv_dw_pix", lws=None)
    section["fingerprint"]["device_name"] = "Another GPU"
    open(doc_path, "w").write(json.dumps(doc))
    other = str(tmp_path / "other.clmace")
    assert import_tuning(doc_path, other) == len(section["records"])
    sess = InferenceSession(model, device="opencl", compiled_program=other)
    assert sess.runtime.plan.records_used == 0
    assert not any(getattr(s, "tuned", False) for s in sess.runtime.plan.steps)
    section["fingerprint"]["device_name"] = read_file(path).sections[section["key"]].fingerprint.device_name
    open(doc_path, "w").write(json.dumps(doc))
    mine = str(tmp_path / "mine.clmace")
    import_tuning(doc_path, mine)
    plan = InferenceSession(model, device="opencl", compiled_program=mine).runtime.plan
    assert plan.records_used == len(section["records"])
    assert [s.variant for s in plan.steps if s.spec.family == "conv_dw"] == ["pix4"]


def test_resume_after_interrupt(model, tmp_path) -> None:
    """Ctrl-C mid-way keeps the records measured so far; the next run skips them and tunes the rest."""
    path = str(tmp_path / "p.clmace")
    first = tune(model, path, timer=fake_timer(interrupt_after=60))
    assert first.interrupted and 1 <= len(first.results) < first.total
    assert set(records(path)) == {r.key for r in first.results}
    second = tune(model, path)
    assert not second.interrupted and second.resumed == len(first.results)
    assert len(first.results) + len(second.results) == second.total == len(records(path))
    assert tune(model, path).results == []  # everything recorded: nothing left to do


def test_failing_candidates_are_skipped(model, tmp_path, monkeypatch) -> None:
    """Launch errors and build failures drop only those candidates; every launch still gets its record."""
    from clmace.backends.opencl.lower import conv_variants
    from clmace.backends.opencl.plan.variants import Variant, tiled_variants

    broken = Variant("broken", "conv_gpu.cl", "no_such_kernel", (("CONV_TILED", None),), (16, 16, 1))
    monkeypatch.setattr(conv_variants, "tiled_variants", lambda *a: [*tiled_variants(*a), broken])
    path = str(tmp_path / "p.clmace")
    failing = fake_timer(fail=lambda launch: launch.variant.startswith("pix") or launch.lws is None)
    report = tune(model, path, timer=failing)
    assert len(report.results) == report.total
    assert any("OUT_OF_RESOURCES" in f for f in report.failures)
    assert any("broken" in f and "build failed" in f for f in report.failures)
    for rec in records(path).values():
        assert not rec["variant"].startswith("pix") and rec["lws"] is not None and rec["variant"] != "broken"


def test_tuned_session_equals_untuned(model, tmp_path) -> None:
    """A real (timed) tuning run: the session planned with its records computes what the untuned one does."""
    outcome = tune_model(model, str(tmp_path / "p.clmace"), "opencl", budget=6.0, seed=1)
    assert outcome.report.results and outcome.records_used >= len(outcome.report.results)
    assert outcome.max_abs_diff <= 1e-5
    assert outcome.report.gain() > 0


def test_deterministic_for_a_seed(model, tmp_path) -> None:
    """Same device, seed and timings: the same candidates are tried and the same records written."""
    a, b = str(tmp_path / "a.clmace"), str(tmp_path / "b.clmace")
    ra, rb = tune(model, a, seed=3), tune(model, b, seed=3)
    assert records(a) == records(b)
    assert [(r.key, r.variant, r.lws, r.tried) for r in ra.results] == [(r.key, r.variant, r.lws, r.tried)
                                                                        for r in rb.results]
    sess = InferenceSession(model, device="opencl", compiled_program=False)
    f1, f2 = Tuner(sess.runtime, seed=3).feeds(), Tuner(sess.runtime, seed=3).feeds()
    assert all(np.array_equal(f1[k], f2[k]) for k in f1)


def test_budget_stops_early(model, tmp_path) -> None:
    """A spent budget stops before the next launch key; what is left is tuned by a later run."""
    path = str(tmp_path / "p.clmace")
    report = tune(model, path, budget=1e-3)
    assert report.out_of_budget and len(report.results) < report.total
    assert not tune(model, path).out_of_budget


def test_lost_device_context_resumes_on_a_fresh_one(model, tmp_path, monkeypatch) -> None:
    """A candidate that takes the context down (NVIDIA faults are sticky) costs one key, not the run."""
    from clmace.backends.opencl.tuning import search as tuner_module

    calls = []

    def dead_once(self, what):
        calls.append(what)
        if len(calls) == 1:
            raise tuner_module._ContextLost(what)

    monkeypatch.setattr(tuner_module.Tuner, "_check_alive", dead_once)
    path = str(tmp_path / "p.clmace")
    outcome = tune_model(model, path, "opencl", timer=fake_timer(fail=lambda launch: launch.variant == "pix_cb8"))
    report = outcome.report
    assert report.context_lost == calls[0] and "pix_cb8" in calls[0]
    saved = records(path)
    lost = [rec for rec in saved.values() if "lost_context" in rec]
    assert len(lost) == 1 and lost[0]["variant"] != "pix_cb8"
    assert len(saved) == report.total and len(report.results) == report.total - 1
    assert outcome.max_abs_diff <= 1e-5 and outcome.records_used == len(saved)
