"""The NumPy reference runtime: runs an IR graph node by node with the registered ops."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from clmace.core.ir import Graph
from clmace.ops import REGISTRY
from clmace.ops.call import call_node, resolve

# Observer called after each node with (node name, output names, output arrays).
NodeHook = Callable[[str, list[str], list[np.ndarray]], None]


class NumpyRuntime:
    """Executes a Graph on the host; resolves every op at construction so errors come early."""

    device_name = "cpu"

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._fns = [resolve(REGISTRY, node, graph.opset) for node in graph.nodes]
        self._last_use = self._lifetimes()

    def _lifetimes(self) -> dict[str, int]:
        """Index of the last node reading each value, so dead intermediates can be freed."""
        last: dict[str, int] = {}
        for i, node in enumerate(self.graph.nodes):
            for name in node.inputs:
                if name:
                    last[name] = i
        for name in self.graph.output_names():
            last[name] = len(self.graph.nodes)
        return last

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None,
            hook: NodeHook | None = None) -> dict[str, np.ndarray]:
        """Run the graph on feeds; return the requested outputs (all graph outputs by default)."""
        env: dict[str, np.ndarray] = dict(self.graph.initializers)
        env.update(feeds)
        wanted = list(outputs) if outputs is not None else self.graph.output_names()
        keep = set(wanted)
        for i, (node, fn) in enumerate(zip(self.graph.nodes, self._fns)):
            args = [env[name] if name else None for name in node.inputs]
            results = call_node(fn, node, args)
            for name, value in zip(node.outputs, results):
                if name:
                    env[name] = value
            if hook is not None:
                hook(node.name, node.outputs, results)
            for name in node.inputs:
                if name and self._last_use.get(name) == i and name not in keep \
                        and name not in self.graph.initializers:
                    env.pop(name, None)
        return {name: env[name] for name in wanted}
