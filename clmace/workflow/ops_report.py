"""`clmace ops`: every registered op with its opset range, its OpenCL status, and (on request) the ONNX
backend node suite's result per op, run now on the chosen device."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass
class OpRow:
    """One op's line of the coverage table."""

    op: str
    since: list[int]
    # "kernel", "view" (no launch), "bodies" (control flow: its bodies run as device plans) or "host" (runs in
    # NumPy inside an OpenCL plan)
    opencl: str
    suite: dict[str, int] = field(default_factory=dict)  # outcome -> cases

    def as_dict(self) -> dict:
        """JSON-able form."""
        return {"op": self.op, "since_opsets": self.since, "opencl": self.opencl, "node_suite": self.suite}


def coverage() -> list[OpRow]:
    """Every registered op, sorted by name."""
    from clmace.backends.opencl.lower.control import LOWER as CONTROL
    from clmace.backends.opencl.plan.schedule import VIEW_OPS
    from clmace.backends.opencl.runtime import LOWERINGS
    from clmace.ops import REGISTRY

    rows = []
    for op in REGISTRY.supported():
        status = ("view" if op in VIEW_OPS else "bodies" if op in CONTROL else "kernel" if op in LOWERINGS
                  else "host")
        rows.append(OpRow(op, REGISTRY.versions(op), status))
    return rows


def _ops_of(model: object) -> set[str]:
    import onnx

    ops: set[str] = set()

    def walk(graph: onnx.GraphProto) -> None:
        for n in graph.node:
            ops.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}")
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(model.graph)  # type: ignore[attr-defined]
    return ops


def run_suite(rows: list[OpRow], device: str = "cpu", only: set[str] | None = None) -> None:
    """Run the ONNX backend node cases of each op (those whose ops are all registered) on `device`; record
    passed / failed / error counts in each row (and, on OpenCL, 'host': right outputs, but a node ran in NumPy).
    Outputs are compared with the cases' own expected outputs."""
    from onnx import numpy_helper
    from onnx.backend.test.case.node import collect_testcases

    import clmace
    from clmace.ops import REGISTRY

    by_op = {r.op: r for r in rows}
    registered = set(REGISTRY.supported())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = list(collect_testcases())
    for case in cases:
        ops = _ops_of(case.model)
        main = case.name.removeprefix("test_")
        owners = [op for op in ops if op in by_op and (only is None or op in only)]
        if not owners or not ops <= registered:
            continue
        outcome = "passed"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sess = clmace.InferenceSession(case.model, device=device)
                names = [a.name for a in sess.get_inputs()]
                for inputs, outputs in case.data_sets:
                    got = sess.run(None, {n: numpy_helper.to_array(v) if hasattr(v, "raw_data") else np.asarray(v)
                                          for n, v in zip(names, inputs)})
                    for g, w in zip(got, outputs):
                        want = numpy_helper.to_array(w) if hasattr(w, "raw_data") else np.asarray(w)
                        if g.shape != want.shape or (want.dtype.kind in "fc" and not np.allclose(
                                g.astype(np.float64), want.astype(np.float64), rtol=case.rtol, atol=case.atol,
                                equal_nan=True)) or (want.dtype.kind not in "fcV" and not np.array_equal(g, want)):
                            outcome = "failed"
            devices = getattr(sess.runtime, "node_devices", dict)()
            if outcome == "passed" and "cpu" in devices.values():
                outcome = "host"  # right, but some node ran in NumPy: not a pass on an OpenCL device
        except Exception:  # noqa: BLE001 - a case the engine refuses counts as an error for its ops
            outcome = "error"
        for op in owners:
            if op.lower() in main.lower() or len(owners) == 1:
                by_op[op].suite[outcome] = by_op[op].suite.get(outcome, 0) + 1


def render(rows: list[OpRow], with_suite: bool) -> str:
    """The table as text."""
    width = max(len(r.op) for r in rows)
    head = f"{'op':<{width}}  {'opsets':<12} {'opencl':<7}"
    head += "  node suite (passed/failed/error/host)" if with_suite else ""
    lines = [head]
    for r in rows:
        since = ",".join(map(str, r.since))
        line = f"{r.op:<{width}}  {since:<12} {r.opencl:<7}"
        if with_suite:
            s = r.suite
            line += (f"  {s.get('passed', 0)}/{s.get('failed', 0)}/{s.get('error', 0)}/{s.get('host', 0)}" if s
                     else "  -")
        lines.append(line)
    kinds = {k: sum(1 for r in rows if r.opencl == k) for k in ("kernel", "view", "bodies", "host")}
    lines.append(f"{len(rows)} ops; on OpenCL: {kinds['kernel']} with kernels, {kinds['view']} views, "
                 f"{kinds['bodies']} control flow with device-planned bodies, {kinds['host']} on the host")
    return "\n".join(lines)
