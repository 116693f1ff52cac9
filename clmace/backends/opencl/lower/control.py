"""If, Loop and Scan -> control steps whose bodies are device plans: state stays in device memory between
iterations, and the host reads back only the condition (If, a Loop whose body computes it) and a run-time trip
count. A body is planned from the shapes its values took in the session's dry run; one whose shapes change
between iterations, or a Scan over another axis than 0, stays a host step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clmace.backends.opencl.execute import copy, read_now, run_steps
from clmace.backends.opencl.plan.schedule import ControlStep, Launch, NotLowerable, Plan
from clmace.core.errors import ModelError, PlannedShapeError
from clmace.core.ir import Graph, Node, ValueInfo
from clmace.ops.call import BodyShapes, same_layout


def _own_inputs(node: Node) -> tuple[list[str], list[tuple[str, str]]]:
    """(the op's own inputs, (name in the bodies, outer value) of each value its bodies read from outside).
    The names differ once an enclosing If was inlined: its values were renamed, the bodies' reads were not."""
    captures = list(node.attrs.get("captures", ()))
    if not captures:
        return list(node.inputs), []
    cut = len(node.inputs) - len(captures)
    return list(node.inputs[:cut]), list(zip(captures, node.inputs[cut:]))


def _body_plan(p: Plan, node: Node, body: Graph, shapes: Sequence[tuple[int, ...]]
               ) -> tuple[Plan, list[tuple[str, str]]]:
    """A plan for body with its inputs of these shapes; the outer values it reads become extra inputs
    (constants become its own), held for the whole body. Returns (plan, (body input, outer value) pairs)."""
    _, captures = _own_inputs(node)
    values = dict(body.values)
    inputs = []
    read = _read_in(body)
    for info, shape in zip(body.inputs, shapes):
        seen = values.get(info.name)
        if info.name not in read and seen is not None:  # never read: its shape is whatever the step gives
            seen = ValueInfo(info.name, seen.dtype, tuple(shape))
        if seen is None or seen.shape is None or not same_layout(seen.shape, shape):
            got = "never ran" if seen is None else f"took shape {seen.shape}"
            raise NotLowerable(f"body input {info.name!r} {got}; {tuple(shape)} planned")
        inputs.append(ValueInfo(info.name, seen.dtype, tuple(seen.shape)))
    initializers = dict(body.initializers)
    outer = []
    for inner, name in captures:
        value = p.const(name)
        if value is not None:
            initializers[inner] = value
        else:
            values[inner] = ValueInfo(inner, p.dtype(name), p.shape(name))
            inputs.append(values[inner])
            outer.append((inner, name))
    for info in inputs:
        values[info.name] = info
    used = {n for nd in body.nodes for n in (*nd.inputs, *nd.outputs) if n} | set(body.output_names())
    loose = sorted(n for n in used - set(initializers) if n not in values or not values[n].is_static())
    if loose:
        raise NotLowerable(f"body values without one shape over the iterations: {loose[:4]}")
    graph = Graph(body.nodes, inputs, body.outputs, initializers, body.opset, values, f"{node.name}/{body.name}")
    keep = [v.name for v in inputs]  # written once (or by the step) before the body runs: never reused
    return p.sub_plan(graph, keep), outer


def _read_in(body: Graph) -> set[str]:
    """The names a body's nodes read or it returns."""
    return {i for nd in body.nodes for i in nd.inputs} | set(body.output_names())


class _Moves:
    """Device copies done together (the loop-carried values, outputs to inputs); a source that another copy
    overwrites goes through a scratch buffer first."""

    def __init__(self, p: Plan, pairs: Sequence[tuple[Any, Any, int]]) -> None:
        self.pairs = [(d, s, n) for d, s, n in pairs if d is not s and n]
        targets = {id(d) for d, _, _ in self.pairs}
        self.staged = [(p.workspace(n) if id(s) in targets else None) for _, s, n in self.pairs]

    def run(self, queue: Any) -> None:
        for (_, src, n), tmp in zip(self.pairs, self.staged):
            if tmp is not None:
                copy(queue, tmp, src, n)
        for (dst, src, n), tmp in zip(self.pairs, self.staged):
            copy(queue, dst, tmp if tmp is not None else src, n)


class _Body:
    """A body plan with the buffers a control step copies to and from."""

    def __init__(self, p: Plan, node: Node, body: Graph, shapes: Sequence[tuple[int, ...]]) -> None:
        self.plan, self.outer = _body_plan(p, node, body, shapes)
        self.inputs = [v.name for v in body.inputs]
        self.outputs = body.output_names()
        self.captured = [(self.plan.buf(inner), p.buf(name), p.nbytes(name)) for inner, name in self.outer]

    def bind_captures(self, queue: Any) -> None:
        """Copy the outer values the body reads into its inputs (once per run of the node)."""
        for dst, src, n in self.captured:
            copy(queue, dst, src, n)

    def buf(self, name: str) -> Any:
        return self.plan.buf(name)

    def run(self, queue: Any) -> None:
        run_steps(self.plan, queue, self.plan.steps)

    def host_nodes(self) -> list[Node]:
        return self.plan.host_nodes()


def _scalar(p: Plan, queue: Any, name: str) -> Any:
    """A scalar input's value (from the plan's constants, else read back from the device)."""
    return read_now(p, queue, name).reshape(-1)[0].item()


def _check_dtypes(p: Plan, body: _Body, pairs: Sequence[tuple[str, str]], what: str) -> None:
    for outer, inner in pairs:
        if outer and p.stored(outer) != body.plan.stored(inner):
            raise NotLowerable(f"{what}: {inner!r} is {body.plan.stored(inner)}, {outer!r} {p.stored(outer)}")


class _OneBodyStep(ControlStep):
    """A control step with one body plan (Loop, Scan)."""

    body: _Body

    def host_nodes(self) -> list[Node]:
        return self.body.host_nodes()


class LoopStep(_OneBodyStep):
    """Loop: the body plan runs while the trip count and the condition allow; carried values move from the
    body's outputs to its inputs on the device; scan outputs are copied into place per iteration."""

    def __init__(self, node: Node, p: Plan) -> None:
        self.node, self.p = node, p
        own, _ = _own_inputs(node)
        own += [""] * (2 - len(own))
        self.trip, self.cond, carried = own[0], own[1], own[2:]
        body: Graph = node.attrs["body"]
        n = len(carried)
        if len(body.inputs) != n + 2:
            raise ModelError(f"node {node.name!r} (Loop): {n} loop-carried inputs, the body takes "
                             f"{len(body.inputs) - 2}")
        seen = body.values
        head = [seen[v.name].shape if v.name in seen and seen[v.name].shape is not None else ()
                for v in body.inputs[:2]]
        read = _read_in(body)
        # A carried value the body never reads (write-only state, e.g. Paddle's placeholders that start as ()
        # and become the output's shape) is planned with the shape the body gives it.
        shapes = [p.shape(c) if v.name in read or seen.get(o.name) is None or seen[o.name].shape is None
                  else seen[o.name].shape for c, v, o in zip(carried, body.inputs[2:], body.outputs[1:])]
        self.body = b = _Body(p, node, body, [*head, *shapes])
        outs = list(node.outputs) + [""] * (len(b.outputs) - 1 - len(node.outputs))
        self.final, self.scan_outs = outs[:n], outs[n:]
        _check_dtypes(p, b, [*zip(carried, b.inputs[2:]), *zip(self.final, b.outputs[1:1 + n])], "Loop")
        for inner, outer in zip(b.outputs[1:1 + n], self.final):
            if outer and not same_layout(b.plan.shape(inner), p.shape(outer)):
                raise NotLowerable(f"Loop: carried {inner!r} has shape {b.plan.shape(inner)}, "
                                   f"{p.shape(outer)} outside")
        self.initial = [(b.buf(i), p.buf(c), p.nbytes(c)) for i, c in zip(b.inputs[2:], carried)
                        if p.nbytes(c) == b.plan.nbytes(i)]
        # Without one iteration, an output whose initial value was not copied would be left unwritten.
        self.uncopied = len(self.initial) < len(carried)
        self.moves = _Moves(b.plan, [(b.buf(i), b.buf(o), b.plan.nbytes(o))
                                     for i, o in zip(b.inputs[2:], b.outputs[1:1 + n])])
        self.finals = [(p.buf(o), b.buf(i), p.nbytes(o)) for i, o in zip(b.inputs[2:], self.final) if o]
        self.scans = []
        for inner, outer in zip(b.outputs[1 + n:], self.scan_outs):
            if outer:
                _check_dtypes(p, b, [(outer, inner)], "Loop scan output")
                if p.shape(outer)[1:] != b.plan.shape(inner):
                    raise NotLowerable(f"Loop: scan output {inner!r} {b.plan.shape(inner)} vs {p.shape(outer)}")
                self.scans.append((p.buf(outer), b.buf(inner), b.plan.nbytes(inner), p.shape(outer)[0]))
        cond_in, cond_out = b.inputs[1], b.outputs[0]
        self.cond_const = b.plan.const(cond_out)
        self.cond_kept = b.plan.root(cond_out) == b.plan.root(cond_in)  # the body passes its condition on
        self.writes_iter, self.writes_cond = b.inputs[0] in read, b.inputs[1] in read  # only what the body reads

    def run(self, queue: Any) -> None:
        import pyopencl as cl

        p, b = self.p, self.body
        limit = None if not self.trip else int(_scalar(p, queue, self.trip))
        keep = True if not self.cond else bool(_scalar(p, queue, self.cond))
        b.bind_captures(queue)
        for dst, src, n in self.initial:
            copy(queue, dst, src, n)
        hold = []  # host scalars in flight
        if self.writes_cond:  # the body only ever runs while the condition holds
            hold.append(np.ones(b.plan.shape(b.inputs[1]), b.plan.stored(b.inputs[1])))
            cl.enqueue_copy(queue, b.buf(b.inputs[1]), hold[-1], is_blocking=False)
        i = 0
        while keep and (limit is None or i < limit):
            if self.writes_iter:
                hold.append(np.full(b.plan.shape(b.inputs[0]), i, b.plan.stored(b.inputs[0])))
                cl.enqueue_copy(queue, b.buf(b.inputs[0]), hold[-1], is_blocking=False)
            b.run(queue)
            if self.cond_const is not None:
                keep = bool(np.asarray(self.cond_const).reshape(-1)[0])
            elif not self.cond_kept:
                keep = bool(_scalar(b.plan, queue, b.outputs[0]))
                p.guard.check(queue)  # a condition computed from a wrongly planned shape must not steer the loop
                hold.clear()  # the read above finished the queue
            for dst, src, n, count in self.scans:
                if i >= count:
                    raise PlannedShapeError(f"node {self.node.name!r} (Loop) ran more than the {count} "
                                            "iterations planned")
                copy(queue, dst, src, n, dst_offset=i * n)
            self.moves.run(queue)
            i += 1
        if i == 0 and self.uncopied:
            raise PlannedShapeError(f"node {self.node.name!r} (Loop) ran no iteration; its carried values "
                                    "were planned from a run that did")
        if any(i != count for *_, count in self.scans):
            raise PlannedShapeError(f"node {self.node.name!r} (Loop) ran {i} iterations, "
                                    f"{self.scans[0][3]} planned")
        for dst, src, n in self.finals:
            copy(queue, dst, src, n)
        if hold:
            queue.finish()


def _axes(values: Sequence[int] | None, count: int, ranks: Sequence[int]) -> list[int]:
    return [int(a) % max(r, 1) for a, r in zip(values or [0] * count, ranks)]


class ScanStep(_OneBodyStep):
    """Scan (opset 8 with its batch axis, 9+ over axis 0): slices of the scan inputs are copied into the body's
    inputs, its scan outputs into place, its state from outputs to inputs; all on the device."""

    def __init__(self, node: Node, p: Plan, opset8: bool) -> None:
        self.node, self.p = node, p
        own, _ = _own_inputs(node)
        lens = ""
        if opset8:
            lens, own = own[0], own[1:]
            if lens and (p.const(lens) is None or any(int(v) != p.shape(own[-1])[1] for v in p.const(lens).ravel())):
                raise NotLowerable("Scan-8: sequence_lens shorter than the scan axis")
        body: Graph = node.attrs["body"]
        k = int(node.attrs["num_scan_inputs"])
        n = len(own) - k
        states, xs = own[:n], own[n:]
        a = node.attrs
        lead = 1 if opset8 else 0  # Scan-8: every input has a batch axis first, the scan axis after it
        self.batch = p.shape(own[0])[0] if opset8 and own else 1
        n_out = len(body.outputs) - n
        if not opset8 and (any(_axes(a.get("scan_input_axes"), k, [len(p.shape(x)) for x in xs]))
                           or any(_axes(a.get("scan_output_axes"), n_out,
                                        [len(p.shape(o)) for o in node.outputs[n:] if o]))):
            raise NotLowerable("Scan over an axis other than 0")
        in_dirs = list(a.get("directions" if opset8 else "scan_input_directions") or [0] * k)
        out_dirs = [0] * n_out if opset8 else list(a.get("scan_output_directions") or [0] * n_out)
        steps = {p.shape(x)[lead] for x in xs}
        if len(steps) != 1:
            raise NotLowerable(f"Scan: scan inputs of different lengths {sorted(steps)}")
        self.steps = steps.pop()
        slice_shapes = [p.shape(x)[lead + 1:] for x in xs]
        self.body = b = _Body(p, node, body, [p.shape(s)[lead:] for s in states] + slice_shapes)
        _check_dtypes(p, b, [*zip(states, b.inputs[:n]), *zip(xs, b.inputs[n:])], "Scan")
        state_bytes = [b.plan.nbytes(i) for i in b.inputs[:n]]
        for inner, outer in zip(b.outputs[:n], node.outputs[:n]):
            if outer and b.plan.shape(inner) != p.shape(outer)[lead:]:
                raise NotLowerable(f"Scan: state {inner!r} {b.plan.shape(inner)} vs {p.shape(outer)}")
        self.initial = [(b.buf(i), p.buf(s), m) for i, s, m in zip(b.inputs[:n], states, state_bytes)]
        self.finals = [(p.buf(o), b.buf(i), m) for i, o, m in zip(b.inputs[:n], node.outputs[:n], state_bytes) if o]
        self.moves = _Moves(b.plan, [(b.buf(i), b.buf(o), m)
                                     for i, o, m in zip(b.inputs[:n], b.outputs[:n], state_bytes)])
        self.slices = [(b.buf(i), p.buf(x), b.plan.nbytes(i), d) for i, x, d in zip(b.inputs[n:], xs, in_dirs)]
        self.outs = []
        for inner, outer, d in zip(b.outputs[n:], node.outputs[n:], out_dirs):
            if not outer:
                continue
            _check_dtypes(p, b, [(outer, inner)], "Scan output")
            if p.shape(outer)[lead + 1:] != b.plan.shape(inner):
                raise NotLowerable(f"Scan: output {inner!r} {b.plan.shape(inner)} vs {p.shape(outer)}")
            self.outs.append((p.buf(outer), b.buf(inner), b.plan.nbytes(inner), d))

    def run(self, queue: Any) -> None:
        b, steps = self.body, self.steps
        b.bind_captures(queue)
        for row in range(self.batch):
            for dst, src, n in self.initial:
                copy(queue, dst, src, n, src_offset=row * n)
            for t in range(steps):
                for dst, src, n, d in self.slices:
                    copy(queue, dst, src, n, src_offset=(row * steps + (steps - 1 - t if d else t)) * n)
                b.run(queue)
                for dst, src, n, d in self.outs:
                    copy(queue, dst, src, n, dst_offset=(row * steps + (steps - 1 - t if d else t)) * n)
                self.moves.run(queue)
            for dst, src, n in self.finals:
                copy(queue, dst, src, n, dst_offset=row * n)


SELECT_FILE = "data.cl"
# If-conversion: an If whose two branches are this small and made only of ops that cannot fault on any
# data (no run-time indices, no integer division, no shape guards) runs both and selects on the device, so
# the host never waits for its condition. Paddle's decoders put such an If in every step of their Loop.
SELECT_MAX_LAUNCHES = 8
SELECT_MAX_BYTES = 1 << 16
_SAFE_OPS = frozenset({
    "Cast", "Add", "Sub", "Mul", "Neg", "Abs", "Relu", "Sigmoid", "Tanh", "Exp", "Clip", "Max", "Min", "Sum",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where", "Identity",
    "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Transpose", "Expand", "ElementwiseChain"})


class IfStep(ControlStep):
    """If: the condition is read back, the chosen branch's plan runs, its outputs are copied out. A branch the
    dry run did not take is planned the first time it is taken, from a host run on the values it reads.
    A small, fault-free If instead runs both branches and selects their outputs on the device."""

    def __init__(self, node: Node, p: Plan) -> None:
        self.node, self.p = node, p
        (self.cond, *_), _ = _own_inputs(node)
        self.branches: dict[bool, _Body | None] = {}
        reasons = []
        guards = len(p.guard.nodes)
        for which, attr in ((True, "then_branch"), (False, "else_branch")):
            try:  # a branch the dry run did not take has no shapes yet: planned when first taken
                self.branches[which] = self._plan(node.attrs[attr])
            except NotLowerable as exc:
                self.branches[which] = None
                reasons.append(f"{attr}: {exc}")
        if not any(self.branches.values()):
            raise NotLowerable(f"If: no branch has a device plan ({'; '.join(reasons)})")
        self.selects = self._selects() if len(p.guard.nodes) == guards else None

    def _selects(self) -> list[Launch] | None:
        """The select launches of an If both of whose branches may run every time (None: it may not)."""
        p, then, other = self.p, self.branches[True], self.branches[False]
        if then is None or other is None or p.const(self.cond) is not None:
            return None
        for b in (then, other):
            if len(b.plan.steps) > SELECT_MAX_LAUNCHES or not all(isinstance(s, Launch) for s in b.plan.steps):
                return None
            if any(n.op_type not in _SAFE_OPS for n in b.plan.nodes):
                return None
        launches: list[Launch] = []
        for name, a, b in zip(self.node.outputs, then.outputs, other.outputs):
            if not name:
                continue
            if not (same_layout(then.plan.shape(a), p.shape(name)) and same_layout(other.plan.shape(b), p.shape(name))):
                return None
            nbytes = p.nbytes(name)
            if nbytes > SELECT_MAX_BYTES:
                return None
            elt, size = ("uint", 4) if nbytes % 4 == 0 else ("uchar", 1)
            kern = p.kernel(SELECT_FILE, "if_select", {"ELT": elt})
            launches += p.launch(self.node, kern, [p.buf(self.cond), then.buf(a), other.buf(b), p.buf(name),
                                                   nbytes // size], (nbytes // size,), (64,))
        return launches

    def _plan(self, graph: Graph) -> _Body:
        b = _Body(self.p, self.node, graph, [])
        _check_dtypes(self.p, b, list(zip(self.node.outputs, b.outputs)), "If")
        return b

    def _plan_now(self, which: bool, queue: Any) -> _Body:
        """Plan a branch the dry run did not take: run it on the host once for its shapes."""
        graph: Graph = self.node.attrs["then_branch" if which else "else_branch"]
        _, captures = _own_inputs(self.node)
        scope = {inner: read_now(self.p, queue, name) for inner, name in captures}
        shapes = BodyShapes()
        shapes.run_body(graph, scope)([])
        shapes.commit()
        try:
            self.branches[which] = b = self._plan(graph)
        except NotLowerable as exc:
            raise PlannedShapeError(f"node {self.node.name!r} (If): the branch taken has no device plan "
                                    f"({exc})") from exc
        return b

    def run(self, queue: Any) -> None:
        if self.selects is not None:
            import pyopencl as cl

            for b in self.branches.values():
                b.bind_captures(queue)  # type: ignore[union-attr]
                b.run(queue)  # type: ignore[union-attr]
            for s in self.selects:
                cl.enqueue_nd_range_kernel(queue, s.kernel, s.gws, s.lws)
            return
        which = bool(_scalar(self.p, queue, self.cond))
        b = self.branches[which] or self._plan_now(which, queue)
        b.bind_captures(queue)
        b.run(queue)
        for inner, outer in zip(b.outputs, self.node.outputs):
            if not outer:
                continue
            if not same_layout(b.plan.shape(inner), self.p.shape(outer)):
                raise PlannedShapeError(f"node {self.node.name!r} (If): the branch taken gives {inner!r} shape "
                                        f"{b.plan.shape(inner)}, planned {self.p.shape(outer)}")
            copy(queue, self.p.buf(outer), b.buf(inner), self.p.nbytes(outer))

    def host_nodes(self) -> list[Node]:
        return [n for b in self.branches.values() if b is not None for n in b.host_nodes()]


def lower_loop(node: Node, p: Plan) -> list[ControlStep]:
    """Loop -> one LoopStep."""
    return [LoopStep(node, p)]


def lower_scan(node: Node, p: Plan) -> list[ControlStep]:
    """Scan -> one ScanStep (opset 8 has a batch axis)."""
    return [ScanStep(node, p, opset8=p.graph.opset < 9)]


def lower_if(node: Node, p: Plan) -> list[ControlStep]:
    """If -> one IfStep."""
    return [IfStep(node, p)]


LOWER = {"If": lower_if, "Loop": lower_loop, "Scan": lower_scan}
