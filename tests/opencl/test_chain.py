"""Element-wise chains: nodes of one shape whose intermediates nothing else reads run as one generated kernel,
with the same outputs as onnxruntime; values read elsewhere stay stored."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import helper

import clmace
from clmace.backends.opencl.plan.fusion import CHAIN_OP, chain_host_fn
from tests.onnx_build import ort_run
from tests.opencl.conftest import make_model, runtime_of


def _gelu_affine(extra_outputs: tuple[str, ...] = ()) -> object:
    """y = gelu(x) * gamma + beta, GELU spelt out as exported models do; gamma per channel, beta per row."""
    nodes = [helper.make_node("Div", ["x", "sq2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["g"]), helper.make_node("Mul", ["g", "gamma"], ["s"]),
             helper.make_node("Add", ["s", "beta"], ["y"])]
    rng = np.random.default_rng(0)
    consts = [("sq2", np.array(1.4142135, np.float32)), ("one", np.array(1.0, np.float32)),
              ("half", np.array(0.5, np.float32)), ("gamma", rng.random(8).astype(np.float32)),
              ("beta", rng.random((1, 5, 1)).astype(np.float32))]
    return make_model(nodes, [("x", [2, 5, 8])], ["y", *extra_outputs], consts)


def _run(model, feeds, **options) -> clmace.InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = clmace.InferenceSession(model, device="opencl", **options)
        got = sess.run(None, feeds)
    for g, want in zip(got, ort_run(model, feeds), strict=True):
        tol = 3e-3 if options.get("precision") == "fp16" else 2e-6
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol)
    assert set(runtime_of(sess).node_devices().values()) <= {"opencl", "view"}
    return sess


def test_a_chain_with_broadcast_operands_is_one_launch() -> None:
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    for options in ({}, {"precision": "fp16", "fp16_without_extension": True}):
        plan = runtime_of(_run(_gelu_affine(), {"x": x}, **options)).plan
        assert [n.op_type for n in plan.nodes] == [CHAIN_OP] and len(plan.steps) == 1
        assert plan.nodes[0].attrs["ops"] == "Div+Erf+Add+Mul+Mul+Mul+Add"


def test_a_value_read_elsewhere_ends_the_chain() -> None:
    """'m' is also a graph output, so it keeps its storage: two chains around it."""
    x = np.random.default_rng(2).standard_normal((2, 5, 8)).astype(np.float32)
    plan = runtime_of(_run(_gelu_affine(("m",)), {"x": x})).plan
    assert [n.op_type for n in plan.nodes] == [CHAIN_OP, CHAIN_OP]
    assert plan.nodes[0].outputs == ["m"]


def test_max_keeps_nan_and_clip_folds_its_bounds() -> None:
    nodes = [helper.make_node("Max", ["x", "z"], ["a"]), helper.make_node("Clip", ["a", "lo", "hi"], ["y"])]
    model = make_model(nodes, [("x", [4, 6]), ("z", [4, 6])], ["y"],
                       [("lo", np.array(-0.5, np.float32)), ("hi", np.array(0.75, np.float32))])
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    z = np.random.default_rng(4).standard_normal((4, 6)).astype(np.float32)
    x[0, 0], z[1, 1] = np.nan, np.nan
    plan = runtime_of(_run(model, {"x": x, "z": z})).plan
    assert [n.op_type for n in plan.nodes] == [CHAIN_OP]


def test_the_host_form_of_a_chain_matches_its_kernel() -> None:
    """A chain whose kernel cannot be built runs its members' NumPy ops instead: same values."""
    x = np.random.default_rng(5).standard_normal((2, 5, 8)).astype(np.float32)
    sess = _run(_gelu_affine(), {"x": x})
    plan = runtime_of(sess).plan
    host = chain_host_fn(plan.graph, plan.nodes[0])
    np.testing.assert_allclose(host(x), sess.run(None, {"x": x})[0], rtol=2e-6, atol=2e-6)


@st.composite
def _broadcast_case(draw):
    """An output shape (its last dim short or long) and two operand shapes that broadcast to it."""
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 5)) for _ in range(rank - 1)] + [draw(st.sampled_from([3, 16, 24, 70]))]
    sides = [[d if draw(st.booleans()) else 1 for d in shape] for _ in range(2)]
    sides[0] = shape if draw(st.booleans()) else sides[0]
    return shape, [s[draw(st.integers(0, rank - 1)):] for s in sides]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_broadcast_case(), st.booleans())
@example(([2, 2, 16], [[2, 2, 16], [2, 1, 1]]), False)  # rows of two merged dims (32 long)
def test_broadcasts_over_rows_match_onnxruntime(case, chain) -> None:
    """A broadcast binary op, or a chain of them, over any operand shapes; the long-row ones (last merged dim
    of 16 or more) run one work-item per row element, rows along dimension 1 (-DROWS)."""
    shape, (sa, sb) = case
    nodes = [helper.make_node("Sub", ["a", "b"], ["s" if chain else "y"])]
    if chain:
        nodes += [helper.make_node("Tanh", ["s"], ["t"]), helper.make_node("Mul", ["t", "b"], ["y"])]
    rng = np.random.default_rng(len(shape))
    feeds = {"a": rng.standard_normal(sa).astype(np.float32), "b": rng.standard_normal(sb).astype(np.float32)}
    model = make_model(nodes, [("a", sa), ("b", sb)], ["y"])
    plan = runtime_of(_run(model, feeds)).plan
    assert len(plan.steps) == 1
    dims = [d for d in np.broadcast_shapes(tuple(sa), tuple(sb))]
    (step,) = plan.steps
    if len(step.gws) == 2:  # by rows: a row is the trailing dims that broadcast alike, merged (16 or more)
        total = int(np.prod(dims))
        row = total // step.gws[1]
        assert row * step.gws[1] == total and 16 <= row <= step.gws[0] and row % dims[-1] == 0
