"""Control flow (If, Loop, Scan): bodies are IR graphs run through `run_body`, which the evaluator passes in.

The frontend gives a control-flow node the outer values its bodies read as extra inputs after its own, named
in its `captures` attribute; here they become the scope the bodies run in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from clmace.core.errors import ModelError
from clmace.core.ir import Graph

# (body, outer values) -> a function of the body's inputs returning its outputs (ops.call.run_body)
RunBody = Callable[[Graph, dict[str, np.ndarray]], Callable[[Sequence[np.ndarray]], list[np.ndarray]]]


def _split(args: Sequence[np.ndarray | None], captures: Sequence[str]) -> tuple[list, dict[str, np.ndarray]]:
    """(the op's own inputs, {captured name: value}) from a node's inputs."""
    own = list(args[: len(args) - len(captures)]) if captures else list(args)
    values = args[len(args) - len(captures):] if captures else []
    return own, dict(zip(captures, values))


def if_(cond: np.ndarray, *captured: np.ndarray, then_branch: Graph, else_branch: Graph,
        captures: Sequence[str] = (), run_body: RunBody) -> tuple[np.ndarray, ...]:
    """If: the outputs of then_branch when cond holds, else of else_branch."""
    _, scope = _split([cond, *captured], captures)
    if np.asarray(cond).size != 1:
        raise ModelError(f"If: condition has {np.asarray(cond).size} elements, expected one")
    body = then_branch if bool(np.asarray(cond).reshape(())) else else_branch
    return tuple(run_body(body, scope)([]))


def _stack(slices: list[np.ndarray], body: Graph, index: int, axis: int = 0) -> np.ndarray:
    """Scan outputs of all iterations stacked along axis (an empty array when the body never ran)."""
    if slices:
        return np.stack(slices, axis=axis)
    info = body.outputs[index]
    shape = [d if isinstance(d, int) else 0 for d in (info.shape or ())]
    return np.empty([0, *shape], info.dtype)


def loop(*args: np.ndarray | None, body: Graph, captures: Sequence[str] = (), run_body: RunBody) -> tuple:
    """Loop: run body while the trip count and the condition allow; returns the final loop-carried values,
    then each scan output stacked over the iterations."""
    own, scope = _split(args, captures)
    own += [None] * (2 - len(own))
    trip, cond, state = own[0], own[1], list(own[2:])
    limit = None if trip is None else int(np.asarray(trip).reshape(()))
    keep = True if cond is None else bool(np.asarray(cond).reshape(()))
    n_state = len(body.inputs) - 2
    if len(state) != n_state:
        raise ModelError(f"Loop: {len(state)} loop-carried inputs, the body takes {n_state}")
    scans: list[list[np.ndarray]] = [[] for _ in range(len(body.outputs) - 1 - n_state)]
    i = 0
    step = run_body(body, scope)
    while keep and (limit is None or i < limit):
        outs = step([np.array(i, np.int64), np.array(keep), *state])
        keep = bool(np.asarray(outs[0]).reshape(()))
        state = outs[1: 1 + n_state]
        for acc, value in zip(scans, outs[1 + n_state:]):
            acc.append(value)
        i += 1
    return (*state, *(_stack(acc, body, 1 + n_state + k) for k, acc in enumerate(scans)))


def scan(*args: np.ndarray, body: Graph, num_scan_inputs: int, captures: Sequence[str] = (),
         scan_input_axes: Sequence[int] | None = None, scan_input_directions: Sequence[int] | None = None,
         scan_output_axes: Sequence[int] | None = None, scan_output_directions: Sequence[int] | None = None,
         run_body: RunBody) -> tuple:
    """Scan (opset 9+): run body over slices of the scan inputs, carrying the state; returns the final
    states, then the scan outputs stacked."""
    own, scope = _split(args, captures)
    n_state = len(own) - num_scan_inputs
    state, xs = list(own[:n_state]), own[n_state:]
    in_axes = list(scan_input_axes or [0] * num_scan_inputs)
    in_dirs = list(scan_input_directions or [0] * num_scan_inputs)
    xs = [np.moveaxis(x, a % x.ndim, 0) for x, a in zip(xs, in_axes)]
    xs = [x[::-1] if d else x for x, d in zip(xs, in_dirs)]
    lengths = {x.shape[0] for x in xs}
    if len(lengths) > 1:
        raise ModelError(f"Scan: scan inputs have different lengths {sorted(lengths)}")
    steps = lengths.pop() if lengths else 0
    n_scan_out = len(body.outputs) - n_state
    scans: list[list[np.ndarray]] = [[] for _ in range(n_scan_out)]
    step = run_body(body, scope)
    for t in range(steps):
        outs = step([*state, *(x[t] for x in xs)])
        state = outs[:n_state]
        for acc, value in zip(scans, outs[n_state:]):
            acc.append(value)
    out_axes = list(scan_output_axes or [0] * n_scan_out)
    out_dirs = list(scan_output_directions or [0] * n_scan_out)
    stacked = []
    for k, acc in enumerate(scans):
        acc = acc[::-1] if out_dirs[k] else acc
        y = _stack(acc, body, n_state + k)
        stacked.append(np.moveaxis(y, 0, out_axes[k] % y.ndim) if y.ndim else y)
    return (*state, *stacked)


def scan_8(sequence_lens: np.ndarray | None, *args: np.ndarray, body: Graph, num_scan_inputs: int,
           captures: Sequence[str] = (), directions: Sequence[int] | None = None, run_body: RunBody) -> tuple:
    """Scan-8: every input has a leading batch axis (and the scan axis after it); run Scan per batch row."""
    own, scope = _split(args, captures)
    batch = own[0].shape[0] if own else 0
    if sequence_lens is not None and any(int(v) != own[-1].shape[1] for v in np.asarray(sequence_lens).ravel()):
        raise ModelError("Scan-8: sequence_lens shorter than the scan axis are not supported")
    rows = [scan(*(x[b] for x in own), *scope.values(), body=body, num_scan_inputs=num_scan_inputs,
                 captures=list(scope), scan_input_directions=directions, run_body=run_body) for b in range(batch)]
    return tuple(np.stack(parts) for parts in zip(*rows))


OPS = {"If": if_, "Loop": loop, "Scan": {8: scan_8, 9: scan}}
