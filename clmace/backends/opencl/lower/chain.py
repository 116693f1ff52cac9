"""ElementwiseChain (plan/fusion.py) -> one generated kernel: each member's expression (expr.py) assigned to
a temporary, the operands loaded at the element's offset (broadcast inputs through their strides, constant
scalars as literals), the last temporary stored."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl import expr
from clmace.backends.opencl.lower.eltwise import (
    ROW_MIN,
    broadcast_strides,
    collapse,
    dims6,
    flat_range,
    lower_binary,
    row_range,
)
from clmace.backends.opencl.plan.fusion import CHAIN_DOMAIN, CHAIN_OP, MAX_CHAIN_INPUTS
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node

FILE = "eltwise.cl"


def lower_chain(node: Node, p: Plan) -> list[Launch]:
    """One launch over the chain's output elements."""
    out = node.outputs[0]
    shape = p.shape(out)
    n = int(np.prod(shape, dtype=np.int64))
    if p.dtype(out) != np.float32:
        raise NotLowerable("element-wise chains of float32 values only")
    operand: dict[str, str] = {}
    buffers: list = []
    strided: list[list[int]] = []
    for name in node.inputs:
        value = p.const(name)
        if value is not None and value.size == 1:
            operand[name] = expr.literal(value.reshape(-1)[0])
            continue
        if len(buffers) == MAX_CHAIN_INPUTS:
            raise NotLowerable(f"a chain reading more than {MAX_CHAIN_INPUTS} tensors")
        k = len(buffers)
        buffers.append(p.buf(name))
        size = int(np.prod(p.shape(name), dtype=np.int64))
        if p.shape(name) == shape:
            operand[name] = f"LD(x{k},i)"
        elif size == 1:
            operand[name] = f"LD(x{k},0)"
        else:
            operand[name] = f"LD(x{k},OFF{len(strided)})"
            strided.append(broadcast_strides(p.shape(name), shape)[6 - len(shape):])
    body = []
    for t, member in enumerate(node.attrs["members"]):
        args = [operand[i] for i in expr.operands(p.graph, member)]
        body.append(f"t[{t}]={expr.render(p.graph, member, args)};")
        operand[member.outputs[0]] = f"t[{t}]"
    defines = {**p.float_defines(out), "CHAIN": None, "CHAIN_N": len(body), "CHAIN_BODY": "".join(body)}
    meta = dims6(shape)
    gws, lws, exact = flat_range(n)
    if strided:
        dims, steps = collapse(shape, strided)
        if dims[-1] >= ROW_MIN:
            row = dims[-1]
            defines.update({"ROWS": None, "CHAIN_ROW": row})
            gws, lws, exact = row_range(row, n)
        defines["CHAIN_INDEX"] = _index_code(dims, steps, rows=dims[-1] >= ROW_MIN)
    defines.update(exact)
    kern = p.kernel(FILE, "chain", defines)
    pad = [p.buf(out)] * (MAX_CHAIN_INPUTS - len(buffers))  # unused inputs: any buffer
    return p.launch(node, kern, [*buffers, *pad, p.buf(out), p.ints(meta), n], gws, lws)


def lower_variadic(node: Node, p: Plan) -> list[Launch]:
    """Sum, Mean, Max, Min: two operands as the binary kernel, any other count as a one-node chain."""
    inputs = [i for i in node.inputs if i]
    if len(inputs) == 2:
        return lower_binary(node, p)
    if not expr.supported(p.graph, node) or any(p.dtype(i) != np.float32 for i in inputs):
        raise NotLowerable(f"{node.op_type} of {len(inputs)} non-float32 inputs")
    chain = Node(node.name, CHAIN_OP, list(dict.fromkeys(inputs)), list(node.outputs),
                 {"members": [node], "ops": node.op_type}, CHAIN_DOMAIN)
    return lower_chain(chain, p)


LOWER = {CHAIN_OP: lower_chain, **{op: lower_variadic for op in expr.VARIADIC}}


def _index_code(dims: list[int], steps: list[list[int]], rows: bool) -> str:
    """Straight-line C for the broadcast operands' offsets: the element's coordinates over the merged dims
    (with rows, the last one is the work-item's and the others come from the row), by compiled-in constants
    (a division by a run-time value kept PoCL from vectorising the work-items: 8 ns per element), then
    OFF0, OFF1, ... as sums of coordinate times compiled-in stride."""
    last = len(dims) - 1
    # No spaces: it travels as a -D option. CI declares a const int; rem starts as the element (or row) index.
    code = [f"CI(c{last},col)"] if rows else []
    for d in range(last - 1 if rows else last, 0, -1):
        code.append(f"CI(c{d},rem%{dims[d]})rem/={dims[d]};")
    if last > 0 or not rows:
        code.append("CI(c0,rem)")
    for j, st in enumerate(steps):
        terms = [f"c{d}" if v == 1 else f"c{d}*{v}" for d, v in enumerate(st) if v]
        code.append(f"CI(OFF{j},{'+'.join(terms) or '0'})")
    return "".join(code)
