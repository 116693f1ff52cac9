"""LSTM, GRU and RNN -> two launches: the input projections of every time step (one wide kernel), then the
recurrence (one work-group per batch row and direction, state in local memory; no host round trip per step)."""

from __future__ import annotations

import numpy as np

from clmace.backends.opencl.plan.schedule import Launch, NotLowerable, Plan
from clmace.core.ir import Node

FILE = "rnn.cl"
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Activation names the recurrence kernel knows (rnn_act); others run the node on the host.
ACT_CODE = {"sigmoid": 0, "tanh": 1, "relu": 2}
DEFAULT_ACTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
MAX_GROUP = 256  # work-items per recurrence group (each loops over its share of the hidden units)


def _activation_defines(node: Node, dirs: int) -> dict[str, int]:
    per_dir = len(DEFAULT_ACTS[node.op_type])
    names = [str(n).lower() for n in (node.attrs.get("activations") or DEFAULT_ACTS[node.op_type] * dirs)]
    if node.op_type == "RNN" and len(names) < dirs:
        names = names * dirs
    if names[:per_dir] != names[per_dir: 2 * per_dir] and dirs == 2:
        raise NotLowerable(f"{node.op_type}: different activations per direction")
    if any(n not in ACT_CODE for n in names[:per_dir]):
        raise NotLowerable(f"{node.op_type}: activations {names[:per_dir]} (the kernel has {sorted(ACT_CODE)})")
    return {k: ACT_CODE[n] for k, n in zip(("FACT", "GACT", "HACT"), names[:per_dir])}


def _pack_gates(w: np.ndarray) -> np.ndarray:
    """W [dirs][G][in] -> [dirs][ceil(G/16)][in][16], zero gates padding G up to whole blocks of 16."""
    dirs, g, k = w.shape
    nb = -(-g // 16)
    padded = np.zeros((dirs, nb * 16, k), np.float32)
    padded[:, :g] = w
    return np.ascontiguousarray(padded.reshape(dirs, nb, 16, k).transpose(0, 1, 3, 2))


def lower_recurrent(node: Node, p: Plan) -> list[Launch]:
    """One LSTM / GRU / RNN node (either layout), float storage."""
    import pyopencl as cl

    op, ins = node.op_type, list(node.inputs) + [""] * 8
    x, w, r, b, lens, h0 = ins[:6]
    c0, peep = (ins[6], ins[7]) if op == "LSTM" else ("", "")
    if p.dtype(x) not in (np.float32, np.float16):
        raise NotLowerable(f"{op}: float inputs only")
    layout = int(node.attrs.get("layout", 0))
    seq, batch, in_size = p.shape(x) if not layout else (p.shape(x)[1], p.shape(x)[0], p.shape(x)[2])
    dirs, g_hidden, _ = p.shape(w)
    hidden = p.shape(r)[2]
    if g_hidden != GATES[op] * hidden:
        raise NotLowerable(f"{op}: W {p.shape(w)} does not fit hidden size {hidden}")
    defines = {**p.float_defines(x), f"CELL_{op}": None, "GATES": GATES[op], **_activation_defines(node, dirs),
               **({"LAYOUT1": None} if layout else {})}
    outs = list(node.outputs) + ["", "", ""]
    y, yh, yc = outs[0], outs[1], outs[2] if op == "LSTM" else ""
    dummy = p.upload(np.zeros(1, np.float32), like=x, count=False)
    bias = b if b else None
    flags = (int(node.attrs.get("direction", "forward") == "reverse") | 2 * bool(h0) | 4 * bool(c0)
             | 8 * bool(peep) | 16 * bool(node.attrs.get("input_forget" if op == "LSTM" else "linear_before_reset"))
             | 32 * bool(y) | 64 * bool(yh) | 128 * bool(yc))
    G, rows = GATES[op] * hidden, seq * batch
    xw = p.workspace(4 * dirs * rows * G)
    b_buf = p.buf(bias) if bias else p.upload(np.zeros((dirs, 2 * G), np.float32), like=x, count=False)
    weights = p.const(w)
    if weights is not None and not p.is_gpu:  # CPUs: 16 gates x 4 rows per work-item, W packed once
        project = p.kernel(FILE, "rnn_project16", defines)
        args = [p.buf(x), p.upload(_pack_gates(weights), like=x), b_buf, xw, rows, in_size, G, batch]
        launches = p.launch(node, project, args, (-(-G // 16), -(-rows // 4), dirs), (1, 1, 1))
    else:  # GPUs (one gate per work-item: consecutive work-items read consecutive rows of W), or W at run time
        project = p.kernel(FILE, "rnn_project", defines)
        launches = p.launch(node, project, [p.buf(x), p.buf(w), b_buf, xw, rows, in_size, G, batch],
                            (G, rows, dirs), (1, 1, 1) if not p.is_gpu else (64, 1, 1))
    lens_buf = p.buf(lens) if lens else p.ints([seq] * batch)  # sequence_lens is int32 (the schema's type)
    group = min(MAX_GROUP, 1 << max(0, (hidden - 1).bit_length()))
    while group > 1 and not p.fits((group, 1, 1)):
        group //= 2
    local = [cl.LocalMemory(4 * hidden) for _ in range(4)]
    clip = float(node.attrs.get("clip") or 0.0)
    recur = p.kernel(FILE, "rnn_recur", defines)
    args = [xw, p.buf(r), b_buf, p.buf(peep) if peep else dummy, p.buf(h0) if h0 else dummy,
            p.buf(c0) if c0 else dummy, lens_buf, p.buf(y) if y else dummy, p.buf(yh) if yh else dummy,
            p.buf(yc) if yc else dummy, seq, batch, hidden, flags, clip, *local]
    return launches + p.launch(node, recur, args, (group, batch, dirs), (group, 1, 1))


LOWER = {op: lower_recurrent for op in GATES}
