"""The intermediate representation shared by every layer: Graph, Node, ValueInfo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A dimension is a concrete size, a symbolic name ("batch"), or None (unknown).
Dim = int | str | None


@dataclass
class ValueInfo:
    """Name, element type and (possibly partly symbolic) shape of a tensor."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...] | None = None

    def is_static(self) -> bool:
        """True when every dimension is a concrete integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


@dataclass
class Node:
    """One operation: ONNX op type, input/output value names and attributes.

    An empty input name marks an omitted optional input, as in ONNX.
    Fused activations live in attrs under ``activation`` / ``activation_params``.
    """

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""


@dataclass
class Graph:
    """A topologically sorted graph with its constant tensors."""

    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: dict[str, np.ndarray]
    opset: int
    values: dict[str, ValueInfo] = field(default_factory=dict)
    name: str = "graph"
    metadata: dict[str, str] = field(default_factory=dict)

    def producers(self) -> dict[str, Node]:
        """Map each value name to the node that writes it."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Map each value name to the nodes that read it."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def free_names(self) -> set[str]:
        """Values the graph reads but does not define: what a control-flow body takes from outer scopes."""
        defined = {v.name for v in self.inputs} | set(self.initializers)
        defined |= {o for node in self.nodes for o in node.outputs if o}
        read = {name for node in self.nodes for name in node.inputs if name} | set(self.output_names())
        return read - defined

    def output_names(self) -> list[str]:
        """Names of the graph outputs, in order."""
        return [v.name for v in self.outputs]

    def op_histogram(self) -> dict[str, int]:
        """Count of nodes per op type (fused activations shown as Op+Act)."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            key = node.op_type
            if node.attrs.get("activation"):
                key += "+" + node.attrs["activation"]
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def parameter_count(self) -> int:
        """Number of scalar weights held in initializers."""
        return int(sum(arr.size for arr in self.initializers.values()))
