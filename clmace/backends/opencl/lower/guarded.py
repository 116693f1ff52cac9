"""Ops whose output shape depends on run-time values (Slice, Range and Pad with computed inputs)
lowered to kernels/guarded.cl: planned at the shape the session's dry run saw; the kernel checks that shape
against the values and sets the plan's ShapeGuard when they disagree, so the session plans again instead of
reading a wrong result. No value goes back to the host on the way."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl.lower import data
from clmace.backends.opencl.lower.eltwise import dims6
from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node

FILE = "guarded.cl"
RANGE_TYPES = {np.dtype(np.int32): "int", np.dtype(np.int64): "long", np.dtype(np.int16): "short",
               np.dtype(np.float32): "float"}


def lower_slice(node: Node, p: Plan) -> list[Launch]:
    """Slice: a copy planned from constant bounds (lower/data), else the guarded kernel for bounds computed
    at run time (an index that a Loop body advances, a length a decoder found)."""
    if all(p.const(name) is not None for name in node.inputs[1:] if name):
        return data.lower_probed(node, p)
    x, starts, ends = node.inputs[:3]
    axes_name = node.inputs[3] if len(node.inputs) > 3 else ""
    steps_name = node.inputs[4] if len(node.inputs) > 4 else ""
    y = node.outputs[0]
    shape = p.shape(x)
    if len(shape) > 6:
        raise NotLowerable(f"rank {len(shape)} > 6")
    count = int(np.prod(p.shape(starts)))
    for name, what in ((axes_name, "axes"), (steps_name, "steps")):
        if name and p.const(name) is None:
            raise NotLowerable(f"Slice {what} computed at run time")
    axes = [int(a) % len(shape) for a in (p.const(axes_name) if axes_name else range(count))]
    steps = [int(s) for s in (p.const(steps_name) if steps_name else [1] * count)]
    if 0 in steps or p.dtype(starts) != p.dtype(ends) or p.dtype(starts) not in (np.int32, np.int64):
        raise NotLowerable("Slice: zero steps or bounds of other types than int32/int64")
    pad = 6 - len(shape)
    meta = dims6(p.shape(y)) + dims6(shape) + [0] * pad + data.contiguous_strides(shape)
    for a, s in zip(axes, steps):
        meta += [a + pad, s]
    guard, flag = p.guard.register(p, node)
    idx = "int" if p.dtype(starts) == np.int32 else "long"
    kern = p.kernel(FILE, "slice_dyn", {"ELT": data.elt_type(p, y), "IDX": idx})
    n = int(np.prod(p.shape(y)))
    args = [p.buf(x), p.buf(y), p.buf(starts), p.buf(ends), p.ints(meta), len(axes), n, guard, flag]
    return p.launch(node, kern, args, (n,), (64,))


def lower_range(node: Node, p: Plan) -> list[Launch]:
    """Range from tensors (its constant form is folded before planning)."""
    y = node.outputs[0]
    dtype = p.stored(y)
    if dtype not in RANGE_TYPES:
        raise NotLowerable(f"Range of {dtype} has no kernel")
    cl_type = RANGE_TYPES[dtype]
    guard, flag = p.guard.register(p, node)
    defines = {"RANGE_T": cl_type, **({"RANGE_FLOAT": None} if cl_type == "float" else {})}
    kern = p.kernel(FILE, "range_dyn", defines)
    n = int(np.prod(p.shape(y)))
    args = [*(p.buf(name) for name in node.inputs[:3]), p.buf(y), n, guard, flag]
    return p.launch(node, kern, args, (n,), (64,))


PAD_MODES = {"constant": 0, "edge": 1, "reflect": 2, "wrap": 3}


def lower_pad(node: Node, p: Plan) -> list[Launch]:
    """Pad: planned from constant pads (lower/data), else the guarded kernel for pads computed at run time."""
    if all(p.const(name) is not None for name in node.inputs[1:] if name):
        return data.lower_probed(node, p)
    x, pads = node.inputs[:2]
    fill_name = node.inputs[2] if len(node.inputs) > 2 else ""
    axes_name = node.inputs[3] if len(node.inputs) > 3 else ""
    y = node.outputs[0]
    shape = p.shape(x)
    mode = node.attrs.get("mode", "constant")
    if len(shape) > 6 or mode not in PAD_MODES or p.dtype(pads) not in (np.int32, np.int64):
        raise NotLowerable(f"Pad: rank {len(shape)}, mode {mode!r}, pads of {p.dtype(pads)}")
    if axes_name and p.const(axes_name) is None:
        raise NotLowerable("Pad axes computed at run time")
    axes = [int(a) % len(shape) for a in (p.const(axes_name) if axes_name else range(len(shape)))]
    if 2 * len(axes) != int(np.prod(p.shape(pads))):
        raise NotLowerable(f"Pad: {int(np.prod(p.shape(pads)))} pads for {len(axes)} axes")
    pad = 6 - len(shape)
    entry = [-1] * 6
    for k, a in enumerate(axes):
        entry[a + pad] = k
    meta = dims6(p.shape(y)) + dims6(shape) + [0] * pad + data.contiguous_strides(shape) + entry
    if fill_name and int(np.prod(p.shape(fill_name))):
        fill = p.buf(fill_name)
    else:
        fill = p.upload(np.zeros(1, p.stored(y)), count=False)
    guard, flag = p.guard.register(p, node)
    idx = "int" if p.dtype(pads) == np.int32 else "long"
    kern = p.kernel(FILE, "pad_dyn", {"ELT": data.elt_type(p, y), "IDX": idx})
    n = int(np.prod(p.shape(y)))
    args = [p.buf(x), p.buf(y), p.buf(pads), fill, p.ints(meta), len(axes), PAD_MODES[mode], n, guard, flag]
    return p.launch(node, kern, args, (n,), (64,))


LOWER = {"Slice": lower_slice, "Range": lower_range, "Pad": lower_pad}
