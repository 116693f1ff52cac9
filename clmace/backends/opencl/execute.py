"""Running planned steps on a queue: reading values back, host steps (NumPy, with their copies), control steps,
and plain step lists (control-flow bodies)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clmace.backends.opencl.plan.schedule import ControlStep, HostStep, Plan, Step
from clmace.core.errors import PlannedShapeError
from clmace.ops.call import call_node


def read(plan: Plan, queue: Any, name: str) -> np.ndarray:
    """Enqueue a copy of a value to a new host array in its storage type (finish the queue before use)."""
    import pyopencl as cl

    if name in plan.consts:
        return np.array(plan.consts[name])
    out = np.empty(plan.shape(name), plan.stored(name))
    if out.size:
        cl.enqueue_copy(queue, out, plan.buf(name), is_blocking=False)
    return out


def in_graph_dtype(plan: Plan, name: str, arr: np.ndarray) -> np.ndarray:
    """arr in the graph's element type of value name (fp16 storage back to float32)."""
    dtype = plan.dtype(name)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def read_now(plan: Plan, queue: Any, name: str) -> np.ndarray:
    """A value on the host, in the graph's element type (blocks)."""
    arr = read(plan, queue, name)
    queue.finish()
    return in_graph_dtype(plan, name, arr)


def run_host(plan: Plan, queue: Any, step: HostStep) -> None:
    """A host node: read its device inputs, call the NumPy op, write its outputs back."""
    import pyopencl as cl

    node = step.node
    queue.finish()
    args = [read_now(plan, queue, name) if name else None for name in node.inputs]
    results = call_node(step.fn, node, args)
    for name, value in zip(node.outputs, results):
        if not name:
            continue
        if tuple(value.shape) != plan.shape(name):
            raise PlannedShapeError(f"node {node.name!r} ({node.op_type}) produced {name!r} with shape "
                                    f"{tuple(value.shape)}, planned {plan.shape(name)}")
        host = np.ascontiguousarray(value, dtype=plan.stored(name))
        if host.size:
            cl.enqueue_copy(queue, plan.buf(name), host, is_blocking=True)


def run_steps(plan: Plan, queue: Any, steps: Sequence[Step]) -> None:
    """Enqueue every step of a plan in order (no events kept: a control-flow body)."""
    import pyopencl as cl

    enqueue = cl.enqueue_nd_range_kernel
    for step in steps:
        if isinstance(step, HostStep):
            run_host(plan, queue, step)
        elif isinstance(step, ControlStep):
            step.run(queue)
        else:
            enqueue(queue, step.kernel, step.gws, step.lws)


def copy(queue: Any, dst: Any, src: Any, nbytes: int, dst_offset: int = 0, src_offset: int = 0) -> None:
    """Enqueue a device-to-device copy of nbytes (nothing when empty)."""
    import pyopencl as cl

    if nbytes:
        cl.enqueue_copy(queue, dst, src, byte_count=nbytes, dst_offset=dst_offset, src_offset=src_offset)
