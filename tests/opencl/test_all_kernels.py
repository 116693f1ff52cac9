"""Every kernel program the planner and the tuner produce compiles and runs once on the default device.

The corpus reaches every lowering: the ONNX node-suite sample (each op with an OpenCL kernel, several
attribute classes each) and small CNN / transformer blocks (each fused activation, residual adds, depthwise,
1x1, general and transposed convolutions, GEMM, MatMul, LayerNorm, Softmax), planned at fp32 and at half
storage. For every tunable launch, each of its tuner variants is built and launched once too. The programs are
compiled from source into a PoCL cache of this process's own (no compiled-program file), so a driver that
cannot compile one of them fails here rather than on a user's machine.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
from onnx import helper

from clmace import InferenceSession
from clmace.backends.opencl.plan.schedule import Launch
from clmace.backends.opencl.plan.variants import heuristic_lws
from tests.opencl.conftest import make_model, random_feeds, runtime_of
from tests.opencl.test_node_suite import SAMPLE, case_array

ACTIVATIONS = ("Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip")


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)


def _conv_block(act: str, seed: int) -> object:
    """Stem conv, depthwise 3x3 and 5x5 (strides 1, 2), pointwise with residual, transposed conv, pool, Gemm."""
    rng = np.random.default_rng(seed)
    attrs = {"alpha": 0.1} if act == "LeakyRelu" else {}
    extra = [("lo", np.float32(-1.0)), ("hi", np.float32(1.0))] if act == "Clip" else []
    act_in = ["c0", "lo", "hi"] if act == "Clip" else ["c0"]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node(act, act_in, ["a0"], **attrs),
        helper.make_node("Conv", ["a0", "wd3", "bd"], ["d3"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Conv", ["d3", "wd5", "bd"], ["d5"], pads=[2, 2, 2, 2], strides=[2, 2], group=16),
        helper.make_node("Conv", ["d5", "wp", "bd"], ["p"]),
        helper.make_node("Add", ["p", "d5"], ["r"]),
        helper.make_node("Relu", ["r"], ["rr"]),
        helper.make_node("ConvTranspose", ["rr", "wt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1],
                         output_padding=[1, 1]),
        helper.make_node("MaxPool", ["t"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["mp"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    inits = [("w0", _w(rng, 16, 3, 3, 3)), ("b0", _w(rng, 16)), ("wd3", _w(rng, 16, 1, 3, 3)),
             ("wd5", _w(rng, 16, 1, 5, 5)), ("bd", _w(rng, 16)), ("wp", _w(rng, 16, 16, 1, 1)),
             ("wt", _w(rng, 16, 8, 3, 3)), ("fw", _w(rng, 10, 8)), ("fb", _w(rng, 10)), *extra]
    return make_model(nodes, [("x", [1, 3, 32, 32])], ["y"], inits)


def _attention_block() -> object:
    """LayerNorm, Q/K/V MatMuls, scaled scores, Softmax, a GELU (Erf) MLP with residuals."""
    rng = np.random.default_rng(7)
    d = 32
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["h"], axis=-1, epsilon=1e-5),
        *[helper.make_node("MatMul", ["h", f"w{n}"], [n]) for n in "qkv"],
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["x1"]),
        helper.make_node("MatMul", ["x1", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["m1b"]),
        helper.make_node("Div", ["m1b", "sqrt2"], ["m1d"]),
        helper.make_node("Erf", ["m1d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["m1b", "e1"], ["gl"]),
        helper.make_node("Mul", ["gl", "half"], ["gh"]),
        helper.make_node("MatMul", ["gh", "w2"], ["m2"]),
        helper.make_node("Add", ["x1", "m2"], ["y"]),
    ]
    inits = [("g", np.ones(d, np.float32)), ("b", np.zeros(d, np.float32)),
             *[(f"w{n}", _w(rng, d, d)) for n in "qkv"], ("scale", np.float32(d ** -0.5)),
             ("w1", _w(rng, d, 4 * d)), ("b1", _w(rng, 4 * d)), ("sqrt2", np.float32(np.sqrt(2.0))),
             ("one", np.float32(1.0)), ("half", np.float32(0.5)), ("w2", _w(rng, 4 * d, d))]
    return make_model(nodes, [("x", [1, 8, d])], ["y"], inits)


def _cast_fan() -> object:
    """float -> every integer type, bool and float16, and back, summed (every cast.cl type pair with float)."""
    from onnx import TensorProto

    types = [TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
             TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64, TensorProto.BOOL, TensorProto.FLOAT16]
    nodes, total = [], "x"
    for i, to in enumerate(types):
        nodes += [helper.make_node("Cast", ["x"], [f"c{i}"], to=to),
                  helper.make_node("Cast", [f"c{i}"], [f"f{i}"], to=TensorProto.FLOAT),
                  helper.make_node("Add", [total, f"f{i}"], [f"s{i}"])]
        total = f"s{i}"
    nodes.append(helper.make_node("Identity", [total], ["y"]))
    return make_model(nodes, [("x", [4, 8])], ["y"])


def _corpus() -> list[tuple[str, object, list | None]]:
    """(name, model, inputs or None for random ones): the node cases run on their own test data."""
    models: list[tuple[str, object, list | None]] = [(f"conv-{act}", _conv_block(act, i), None)
                                                     for i, act in enumerate(ACTIVATIONS)]
    models += [("attention", _attention_block(), None), ("casts", _cast_fan(), None)]
    return models + [(case.name, case.model, [case_array(v) for v in case.data_sets[0][0]]) for case in SAMPLE]


def _exercise(model: object, precision: str, inputs: list | None) -> set[str]:
    """Plan model, build and launch every tuner variant of every tunable launch once, run the plan once;
    the program keys built."""
    options = {"fp16_without_extension": True} if precision == "fp16" else {}
    sess = InferenceSession(model, device="opencl", precision=precision, compiled_program=False, **options)
    if inputs is not None and not sess._runtimes:  # a dynamic input (declared size 0): planned at the first run
        sess.run(None, dict(zip([a.name for a in sess.get_inputs()], inputs)))
    runtime = runtime_of(sess)
    plan = runtime.plan
    for step in list(plan.steps):
        if not isinstance(step, Launch) or step.spec is None:
            continue
        for variant in step.spec.variants:
            if variant.name == step.variant:
                continue
            with plan.scratch():
                bound = plan.prepare(step.spec, variant)
                if not all(g > 0 for g in bound.gws):
                    continue
                lws = heuristic_lws(variant, bound.gws, plan.is_gpu)  # as the tuner's first trial of a variant
                plan.make_launch(step.node, step.spec, variant, bound, lws).enqueue(runtime.queue)
                runtime.queue.finish()
    feeds = random_feeds(sess) if inputs is None else dict(zip([a.name for a in sess.get_inputs()], inputs))
    sess.run(None, feeds)
    return set(runtime.handle.keys())  # every program built, the tuner variants' too


@pytest.fixture(scope="module", autouse=True)
def _fresh_pocl_cache():
    """A PoCL kernel cache of this module's own, so that every program really compiles here."""
    if os.environ.get("POCL_CACHE_DIR"):
        yield  # PoCL already started with the user's cache: it reads the variable only once
        return
    # PoCL keeps the directory it started with for the life of the process, so it is removed only at exit
    # (removed now, later tests in this process could no longer build any program).
    path = tempfile.mkdtemp(prefix="clmace-all-kernels-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["POCL_CACHE_DIR"] = path
    try:
        yield
    finally:
        os.environ.pop("POCL_CACHE_DIR", None)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_program_compiles_and_runs(precision: str) -> None:
    """Each (kernel file, build options) the planner and tuner produce builds and launches without error."""
    programs: set[str] = set()
    for name, model, inputs in _corpus():
        try:
            programs |= _exercise(model, precision, inputs)
        except Exception as exc:
            raise AssertionError(f"{name} ({precision}): {type(exc).__name__}: {exc}") from exc
    files = {key.split(" ", 1)[0] for key in programs}
    print(f"{len(programs)} distinct programs over {len(files)} kernel files at {precision}")
    kernels = {"cast.cl", "conv.cl", "data.cl", "eltwise.cl", "gemm.cl", "pool.cl", "reduce.cl"}
    assert kernels <= files, f"the corpus never reached {sorted(kernels - files)}"
