"""Calling one IR node's NumPy implementation, and evaluating a whole graph node by node with them: the NumPy
backend, constant folding, host steps and the bodies of control-flow ops all go through here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from clmace.core.errors import ClmaceError, ModelError, UnsupportedOpError
from clmace.core.ir import Graph, Node, ValueInfo
from clmace.ops.registry import OpFn, Registry

# Observer called after each node with (node name, output names, output arrays).
NodeHook = Callable[[str, list[str], list[np.ndarray]], None]
# (body, outer values) -> the body as a function of its inputs, returning its outputs
BodyRunner = Callable[[Graph, Mapping[str, np.ndarray]], Callable[[Sequence[np.ndarray]], list[np.ndarray]]]

DEFAULT_DOMAINS = ("", "ai.onnx")


def resolve(registry: Registry, node: Node, opset: int) -> OpFn:
    """Find the implementation of node, or raise UnsupportedOpError naming it."""
    if node.domain not in DEFAULT_DOMAINS:
        raise UnsupportedOpError(
            f"node {node.name!r}: op {node.domain}.{node.op_type} is outside the default ONNX domain; "
            f"supported ops: {', '.join(registry.supported())}"
        )
    return registry.get(node.op_type, opset, node.name)


def call_node(fn: OpFn, node: Node, args: Sequence[np.ndarray | None],
              body_runner: BodyRunner | None = None) -> list[np.ndarray]:
    """Run fn on args with node's attributes; return one array per node output. A control-flow op runs its
    bodies through body_runner (default: run_body)."""
    args = list(args)
    while args and args[-1] is None:  # trailing omitted inputs are simply not passed
        args.pop()
    attrs = node.attrs
    if any(isinstance(v, Graph) for v in attrs.values()):  # a control-flow op: it runs its bodies through us
        attrs = {**attrs, "run_body": body_runner or run_body}
    try:
        result = fn(*args, **attrs)
    except ClmaceError:
        raise
    except Exception as exc:  # wrap with the node's identity so the user can find it
        shapes = [None if a is None else (tuple(a.shape), str(a.dtype)) for a in args]
        raise ModelError(f"node {node.name!r} ({node.op_type}) failed on inputs {shapes}: "
                         f"{type(exc).__name__}: {exc}") from exc
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    return [np.asarray(o) for o in outs]


class GraphEvaluator:
    """Runs a Graph on the host with the registered ops; resolves every op at construction so errors come
    early, and frees each intermediate after its last reader."""

    def __init__(self, graph: Graph, registry: Registry | None = None,
                 body_runner: BodyRunner | None = None) -> None:
        if registry is None:
            from clmace.ops import REGISTRY as registry  # the package's table (it does not import this module)
        self.graph, self.body_runner = graph, body_runner
        self._fns = [resolve(registry, node, graph.opset) for node in graph.nodes]
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
            hook: NodeHook | None = None, scope: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run on feeds (and the outer values in scope, for a body); return the requested outputs."""
        env: dict[str, np.ndarray] = {**(scope or {}), **self.graph.initializers, **feeds}
        wanted = list(outputs) if outputs is not None else self.graph.output_names()
        keep = set(wanted) | set(scope or {})
        for i, (node, fn) in enumerate(zip(self.graph.nodes, self._fns)):
            args = [env[name] if name else None for name in node.inputs]
            results = call_node(fn, node, args, self.body_runner)
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


def run_body(body: Graph, scope: Mapping[str, np.ndarray]) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
    """A control-flow body ready to run in the outer values it reads: call it with the body's inputs (in order)
    for its outputs. Its ops are resolved once, however many iterations a Loop or Scan makes."""
    evaluator = GraphEvaluator(body)

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = {v.name: np.asarray(a) for v, a in zip(body.inputs, inputs)}
        return list(evaluator.run(feeds, scope=scope).values())

    return run


class BodyShapes:
    """Records the shapes every control-flow body value takes while a graph runs (hand `run_body` to a
    GraphEvaluator), merged over iterations: a dimension that varied becomes None. `commit` writes them into
    the bodies' `values`, so that a backend can plan a body whose shapes hold across iterations."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Graph, dict[str, ValueInfo]]] = {}

    def run_body(self, body: Graph, scope: Mapping[str, np.ndarray]) -> Callable[[Sequence[np.ndarray]],
                                                                                   list[np.ndarray]]:
        """Like `run_body`, recording the shapes of the body's inputs and of every value it computes."""
        evaluator = GraphEvaluator(body, body_runner=self.run_body)
        seen = self._seen.setdefault(id(body), (body, {}))[1]

        def record(_node: str, names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
            for name, arr in zip(names, arrays):
                if name:
                    _merge(seen, name, np.asarray(arr))

        def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
            feeds = {v.name: np.asarray(a) for v, a in zip(body.inputs, inputs)}
            record("", list(feeds), list(feeds.values()))
            return list(evaluator.run(feeds, scope=scope, hook=record).values())

        return run

    def commit(self) -> None:
        """Write the recorded shapes into each body's values (and its inputs' and outputs' infos)."""
        for body, seen in self._seen.values():
            body.values.update(seen)
            for info in (*body.inputs, *body.outputs):
                if info.name in seen:
                    info.shape = seen[info.name].shape


def same_layout(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    """True when two shapes hold the same elements in the same order (they differ only in 1-dims)."""
    return [d for d in a if d != 1] == [d for d in b if d != 1]


def _merge(seen: dict[str, ValueInfo], name: str, arr: np.ndarray) -> None:
    """Record arr's shape under name; dimensions that differ from an earlier record become None."""
    old = seen.get(name)
    shape: tuple = tuple(int(d) for d in arr.shape)
    if old is not None and old.shape != shape:
        if old.shape is not None and same_layout(old.shape, shape):
            # The same elements in the same order, e.g. () on one iteration and (1,) on the others (Paddle's
            # exports): one plan serves both; the higher rank is kept.
            shape = max(old.shape, shape, key=len)
        elif old.shape is None or len(old.shape) != len(shape):
            shape = None  # type: ignore[assignment]
        else:
            shape = tuple(a if a == b else None for a, b in zip(old.shape, shape))
    seen[name] = ValueInfo(name, arr.dtype, shape)
