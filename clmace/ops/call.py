"""Calling one IR node's NumPy implementation, shared by the runtime and constant folding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clmace.core.errors import ClmaceError, ModelError, UnsupportedOpError
from clmace.core.ir import Node
from clmace.ops.registry import OpFn, Registry

DEFAULT_DOMAINS = ("", "ai.onnx")


def resolve(registry: Registry, node: Node, opset: int) -> OpFn:
    """Find the implementation of node, or raise UnsupportedOpError naming it."""
    if node.domain not in DEFAULT_DOMAINS:
        raise UnsupportedOpError(
            f"node {node.name!r}: op {node.domain}.{node.op_type} is outside the default ONNX domain; "
            f"supported ops: {', '.join(registry.supported())}"
        )
    return registry.get(node.op_type, opset, node.name)


def call_node(fn: OpFn, node: Node, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Run fn on args with node's attributes; return one array per node output."""
    args = list(args)
    while args and args[-1] is None:  # trailing omitted inputs are simply not passed
        args.pop()
    try:
        result = fn(*args, **node.attrs)
    except ClmaceError:
        raise
    except Exception as exc:  # wrap with the node's identity so the user can find it
        shapes = [None if a is None else (tuple(a.shape), str(a.dtype)) for a in args]
        raise ModelError(f"node {node.name!r} ({node.op_type}) failed on inputs {shapes}: "
                         f"{type(exc).__name__}: {exc}") from exc
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    return [np.asarray(o) for o in outs]
