"""The NumPy reference backend (device="cpu"): a graph evaluated node by node with the registered ops."""

from __future__ import annotations

from clmace.ops.call import GraphEvaluator, NodeHook


class NumpyRuntime(GraphEvaluator):
    """Executes a Graph on the host; resolves every op at construction so errors come early."""

    device_name = "cpu"


__all__ = ["NodeHook", "NumpyRuntime"]
