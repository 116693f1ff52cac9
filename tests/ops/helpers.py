"""Shared helpers for the op tests: one-node ONNX models run through onnxruntime or onnx.reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from clmace.ops import REGISTRY
from clmace.ops.schema import with_defaults
from tests.onnx_build import assert_close, ort_run

__all__ = ["SchemaBound", "assert_close", "node_model", "run_ort", "run_ref", "check_against"]


def node_model(op_type: str, inputs: Sequence[np.ndarray | None], attrs: dict, opset: int,
               n_outputs: int = 1, out_types: Sequence[type] | None = None) -> onnx.ModelProto:
    """A model holding one node; None inputs become omitted ("") optional inputs.

    Outputs are typed like the first input unless out_types says otherwise (MaxPool's Indices: int64).
    """
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    # Trailing omitted inputs are dropped, as exporters write them.
    while names and not names[-1]:
        names.pop()
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in zip(names, inputs, strict=False) if n
    ]
    types = list(out_types) if out_types else [inputs[0].dtype] * n_outputs
    graph_outputs = [
        helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(np.dtype(t)), None)
        for o, t in zip(outs, types, strict=True)
    ]
    graph = helper.make_graph([node], op_type.lower(), graph_inputs, graph_outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _feeds(inputs: Sequence[np.ndarray | None]) -> dict[str, np.ndarray]:
    return {f"in{i}": a for i, a in enumerate(inputs) if a is not None}


def run_ort(op_type: str, inputs: Sequence[np.ndarray | None], attrs: dict, opset: int,
            n_outputs: int = 1, out_types: Sequence[type] | None = None) -> list[np.ndarray]:
    """Outputs of the one-node model from onnxruntime."""
    return ort_run(node_model(op_type, inputs, attrs, opset, n_outputs, out_types), _feeds(inputs))


def run_ref(op_type: str, inputs: Sequence[np.ndarray | None], attrs: dict, opset: int,
            n_outputs: int = 1, out_types: Sequence[type] | None = None) -> list[np.ndarray]:
    """Outputs of the one-node model from onnx.reference.ReferenceEvaluator."""
    model = node_model(op_type, inputs, attrs, opset, n_outputs, out_types)
    return ReferenceEvaluator(model).run(None, _feeds(inputs))


def check_against(want: Sequence[np.ndarray], got: np.ndarray | tuple, rtol: float = 1e-4,
                  atol: float = 1e-5) -> None:
    """Compare our op's result (one array or a tuple) with the oracle's outputs, in order."""
    got_list = list(got) if isinstance(got, tuple) else [got]
    assert len(got_list) >= len(want), f"{len(got_list)} outputs, oracle gave {len(want)}"
    for g, w in zip(got_list, want, strict=False):
        assert_close(g, np.asarray(w), rtol=rtol, atol=atol)


class SchemaBound:
    """An op module whose registered ops get the ONNX schema's attribute defaults, as IR nodes carry them
    (the frontend writes every defaulted attribute into each node); other names pass through."""

    def __init__(self, module: object, latest: int = 22) -> None:
        self._module, self._ops = module, {}
        for name, impl in module.OPS.items():  # type: ignore[attr-defined]
            versions = sorted(impl.items()) if isinstance(impl, dict) else [(1, impl)]
            for i, (_, fn) in enumerate(versions):
                until = versions[i + 1][0] - 1 if i + 1 < len(versions) else latest
                self._ops[id(fn)] = (name, until)

    def __getattr__(self, attr: str):
        fn = getattr(self._module, attr)
        if id(fn) not in self._ops:
            return fn
        name, opset = self._ops[id(fn)]

        def call(*args, **attrs):
            return fn(*args, **with_defaults(name, opset, attrs))

        return call


def ours(op: str, opset: int, *inputs, **attrs):
    """Our implementation of op at opset, called as the runtime calls it (schema defaults filled in)."""
    return REGISTRY.get(op, opset)(*inputs, **with_defaults(op, opset, attrs))
