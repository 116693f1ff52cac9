"""A sample of the ONNX backend node suite on device='opencl': cases whose ops all have OpenCL kernels.

Up to PER_OP cases per op type (sorted by name, so the sample is fixed), minus those excluded in the cpu
suite (tests/test_onnx_node_suite.py) and those whose output shapes depend on input values: a static
OpenCL plan is made for shapes known before the first run. A case in which a node ran on the host (an
unsupported variant of a kernel-backed op, e.g. Resize in linear mode) is checked all the same, but it is not
an OpenCL pass: it is skipped with the host nodes named, and the tally counts it on its own.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import clmace
from clmace.backends.opencl.plan.schedule import VIEW_OPS
from clmace.backends.opencl.runtime import LOWERINGS
from tests.test_onnx_node_suite import CASES, EXCLUDED, _unsupported

PER_OP = 4
PASS_BAR = 0.97  # of the sample, correct results (OpenCL passes and host-fallback runs)
OPENCL_BAR = 0.75  # of the sample, correct results with every node on OpenCL (79% measured; raise it as kernels land)
# Inputs (by op, input index) that decide output shapes: given as graph inputs, they make shapes data-dependent.
SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "Tile": 1, "Slice": 1, "Pad": 1, "Squeeze": 1, "Unsqueeze": 1,
                "Split": 1, "Resize": 2, "ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1,
                "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1, "ReduceSumSquare": 1, "ReduceLogSum": 1,
                "ReduceLogSumExp": 1, "ConstantOfShape": 0, "Range": 0}
OUTCOMES: dict[str, str] = {}


def _data_dependent(model: onnx.ModelProto) -> bool:
    """True when a graph input (or a value computed from one) feeds a shape-deciding input."""
    inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    computed = {o for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        first = SHAPE_INPUTS.get(node.op_type)
        if first is not None and any(name in inputs or name in computed for name in node.input[max(first, 1):]):
            return True
    return False


def _sample() -> list:
    supported = set(LOWERINGS) | set(VIEW_OPS)
    per_op: dict[str, int] = {}
    chosen = []
    for case in sorted(CASES, key=lambda c: c.name):
        ops = {n.op_type for n in case.model.graph.node}
        if case.name in EXCLUDED or not ops <= supported or _unsupported(case.model) or any(
                n.domain not in ("", "ai.onnx") for n in case.model.graph.node):
            continue
        if _data_dependent(case.model):
            continue
        key = "+".join(sorted(ops))
        if per_op.get(key, 0) >= PER_OP:
            continue
        per_op[key] = per_op.get(key, 0) + 1
        chosen.append(case)
    return chosen


SAMPLE = _sample()


def case_array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


@pytest.mark.parametrize("case", SAMPLE, ids=[c.name for c in SAMPLE])
def test_node_case_opencl(case) -> None:
    """One case on OpenCL: every output within the case's tolerances."""
    OUTCOMES[case.name] = "failed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = clmace.InferenceSession(case.model, device="opencl")
        names = [arg.name for arg in session.get_inputs()]
        for inputs, outputs in case.data_sets:
            got = session.run(None, dict(zip(names, (case_array(v) for v in inputs), strict=True)))
            for out, value, want in zip(case.model.graph.output, got, outputs, strict=True):
                want = case_array(want)
                assert value.shape == want.shape, f"{out.name}: shape {value.shape} != {want.shape}"
                assert value.dtype == want.dtype, f"{out.name}: dtype {value.dtype} != {want.dtype}"
                np.testing.assert_allclose(value, want, rtol=case.rtol, atol=case.atol, err_msg=out.name)
    host = [str(w.message) for w in caught if "run on the host" in str(w.message)]
    if host:
        OUTCOMES[case.name] = "host fallback"
        pytest.skip(f"correct, but not an OpenCL pass: {host[0]}")
    OUTCOMES[case.name] = "passed"


def test_node_suite_opencl_pass_rate(record_property) -> None:
    """Tally the sample; at least PASS_BAR of it passes."""
    if not OUTCOMES:
        pytest.skip("no OpenCL node-suite case ran")
    passed = sum(v == "passed" for v in OUTCOMES.values())
    fallback = sum(v == "host fallback" for v in OUTCOMES.values())
    failed = len(OUTCOMES) - passed - fallback
    line = (f"ONNX node suite on OpenCL: {passed} OpenCL passes, {fallback} host-fallback runs (correct, not "
            f"counted as passes), {failed} failed of {len(OUTCOMES)} sampled cases")
    record_property("node_suite_summary", line)
    print(line)
    assert (passed + fallback) / len(OUTCOMES) >= PASS_BAR, line
    assert passed / len(OUTCOMES) >= OPENCL_BAR, line
