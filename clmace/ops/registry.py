"""Op lookup: the newest implementation whose opset is <= the model's opset."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from clmace.core.errors import UnsupportedOpError

# An op is a plain function: fn(*inputs, **attributes) -> array or tuple of arrays.
# Omitted optional inputs arrive as None; attributes arrive as ONNX names.
OpFn = Callable[..., np.ndarray | tuple]
# A module's table maps an op name to one function, or to {since_opset: function}.
OpTable = Mapping[str, OpFn | Mapping[int, OpFn]]


class Registry:
    """Holds op implementations, versioned by the opset they first follow."""

    def __init__(self) -> None:
        self._ops: dict[str, dict[int, OpFn]] = {}

    def add_table(self, table: OpTable) -> None:
        """Register every op of one module's explicit table."""
        for name, impl in table.items():
            versions = impl if isinstance(impl, Mapping) else {1: impl}
            if name in self._ops:
                raise ValueError(f"op {name} registered twice")
            self._ops[name] = dict(sorted(versions.items()))

    def supported(self) -> list[str]:
        """Sorted names of every registered op."""
        return sorted(self._ops)

    def versions(self, op_type: str) -> list[int]:
        """The opsets from which each registered implementation of op_type applies."""
        return sorted(self._ops.get(op_type, {}))

    def has(self, op_type: str) -> bool:
        """True when some version of op_type is registered."""
        return op_type in self._ops

    def get(self, op_type: str, opset: int, node_name: str = "?") -> OpFn:
        """Return the implementation for op_type at opset, or raise UnsupportedOpError."""
        versions = self._ops.get(op_type)
        if not versions:
            raise UnsupportedOpError(
                f"node {node_name!r}: op {op_type} (opset {opset}) is not supported; "
                f"supported ops: {', '.join(self.supported())}"
            )
        usable = [since for since in versions if since <= opset]
        if not usable:
            raise UnsupportedOpError(
                f"node {node_name!r}: op {op_type} is implemented from opset "
                f"{min(versions)} on, the model uses opset {opset}"
            )
        return versions[max(usable)]
