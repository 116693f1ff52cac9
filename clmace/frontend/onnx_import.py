"""Load an ONNX model (path, bytes or ModelProto) and convert it to the clmace IR."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from clmace.core.errors import ModelError, UnsupportedOpError
from clmace.core.ir import Dim, Graph, Node, ValueInfo
from clmace.ops import pool
from clmace.ops.schema import with_defaults

log = logging.getLogger("clmace.frontend")

ModelSource = str | os.PathLike | bytes | onnx.ModelProto

# Opsets of the default domain that the converter is tested against; others load with a warning.
SUPPORTED_OPSETS = range(11, 22)


def load_onnx(model: ModelSource) -> onnx.ModelProto:
    """Read an ONNX model from a path (external data resolved beside it), bytes or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            return onnx.load_from_string(bytes(model))
        except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning subclasses
            raise ModelError(f"bytes are not a valid ONNX model: {exc}") from exc
    path = os.fspath(model)
    if not os.path.exists(path):
        raise ModelError(f"model file not found: {path}")
    try:
        return onnx.load(path)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid ONNX model: {exc}") from exc


def default_opset(proto: onnx.ModelProto) -> int:
    """The model's version of the default ("" / ai.onnx) domain."""
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ModelError("model imports no default-domain opset")


def _dims(type_proto: onnx.TypeProto) -> tuple[Dim, ...] | None:
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def value_info(vi: onnx.ValueInfoProto) -> ValueInfo:
    """Convert an ONNX ValueInfoProto to a ValueInfo (tensor types only)."""
    if not vi.type.HasField("tensor_type"):
        kind = vi.type.WhichOneof("value")
        raise UnsupportedOpError(f"value {vi.name!r} has type {kind}; only tensors are supported")
    elem = vi.type.tensor_type.elem_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
    except Exception as exc:
        raise UnsupportedOpError(f"value {vi.name!r}: element type {elem} is not supported") from exc
    return ValueInfo(vi.name, dtype, _dims(vi.type))


def decode_attribute(attr: onnx.AttributeProto, node_name: str) -> Any:
    """Decode one attribute into plain Python / NumPy values."""
    kind = attr.type
    A = onnx.AttributeProto
    if kind == A.GRAPHS:
        raise UnsupportedOpError(f"node {node_name!r}: attribute {attr.name} holds a list of graphs, which no "
                                 "supported op takes")
    if kind == A.SPARSE_TENSOR:
        raise UnsupportedOpError(f"node {node_name!r}: sparse tensor attribute {attr.name} is not supported")
    if kind == A.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == A.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    value = helper.get_attribute_value(attr)
    if kind == A.STRING:
        return value.decode("utf-8")
    if kind == A.STRINGS:
        return [v.decode("utf-8") for v in value]
    if kind in (A.INTS, A.FLOATS):
        return list(value)
    return value


def open_dynamic_dims(proto: onnx.ModelProto) -> onnx.ModelProto:
    """proto with every graph-input dimension declared as -1 or 0 made unknown: exporters write both for
    "dynamic" (onnxruntime reads -1 so too), and taken literally they would fix a size no input has."""
    inits = {t.name for t in proto.graph.initializer}
    if not any(d.HasField("dim_value") and d.dim_value <= 0 for vi in proto.graph.input if vi.name not in inits
               for d in vi.type.tensor_type.shape.dim):
        return proto
    opened = onnx.ModelProto()
    opened.CopyFrom(proto)
    for vi in opened.graph.input:
        if vi.name not in inits:
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value <= 0:
                    d.ClearField("dim_value")
    return opened


def fix_input_shapes(proto: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """Copy of proto whose graph inputs have the given concrete shapes."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    by_name = {vi.name: vi for vi in fixed.graph.input}
    for name, shape in shapes.items():
        if name not in by_name:
            raise ModelError(f"input {name!r} is not an input of the model; inputs: {sorted(by_name)}")
        dims = by_name[name].type.tensor_type.shape.dim
        if len(dims) and len(dims) != len(shape):
            raise ModelError(f"input {name!r}: model has rank {len(dims)}, got shape {tuple(shape)}")
        del dims[:]
        for size in shape:
            by_name[name].type.tensor_type.shape.dim.add().dim_value = int(size)
    return fixed


def infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Run ONNX shape inference with data propagation; on failure keep the model as it is."""
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:  # inference is an optimisation aid, never a reason to refuse a model
        log.debug("onnx shape inference failed: %s", exc)
        return proto


def onnx_to_ir(proto: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Convert a ModelProto to a Graph, inferring shapes (concrete where input_shapes fixes them)."""
    opset = default_opset(proto)
    if opset not in SUPPORTED_OPSETS:
        log.info("model uses opset %d; clmace is tested on opsets %d-%d", opset,
                 SUPPORTED_OPSETS.start, SUPPORTED_OPSETS.stop - 1)
    proto = open_dynamic_dims(proto)
    if input_shapes:
        proto = fix_input_shapes(proto, input_shapes)
    proto = infer_shapes(proto)
    g = proto.graph
    for sparse in g.sparse_initializer:
        raise UnsupportedOpError(f"sparse initializer {sparse.values.name!r} is not supported")
    graph = graph_to_ir(g, opset)
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update(producer_name=proto.producer_name, producer_version=proto.producer_version,
                graph_name=g.name, domain=proto.domain, model_version=str(proto.model_version),
                description=proto.doc_string)
    graph.metadata = meta
    return graph


def graph_to_ir(g: onnx.GraphProto, opset: int, outer: Mapping[str, ValueInfo] | None = None) -> Graph:
    """One ONNX graph (the model's, or a control-flow body seeing the values of `outer`) as IR.

    A node whose attributes hold bodies (If, Loop, Scan) also takes the outer values its bodies read as extra
    inputs after its own, their names listed in its `captures` attribute: every pass then sees those reads.
    """
    initializers = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [value_info(vi) for vi in g.input if vi.name not in initializers]
    outputs = [value_info(vi) for vi in g.output]
    values = {v.name: v for v in inputs + outputs}
    for vi in g.value_info:
        if vi.type.HasField("tensor_type"):
            values.setdefault(vi.name, value_info(vi))
    for name, arr in initializers.items():
        values[name] = ValueInfo(name, arr.dtype, tuple(arr.shape))
    scope = {**(outer or {}), **values}
    nodes = []
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        attrs = {a.name: decode_attribute(a, name) for a in n.attribute if a.type != onnx.AttributeProto.GRAPH}
        bodies = {a.name: graph_to_ir(a.g, opset, scope) for a in n.attribute if a.type == onnx.AttributeProto.GRAPH}
        # Complete with the schema's defaults: IR nodes (and converted files) carry every attribute explicitly.
        attrs = with_defaults(n.op_type, opset, {**attrs, **bodies}, n.domain)
        inputs_ = list(n.input)
        if bodies:
            captures = sorted({c for body in bodies.values() for c in body.free_names()})
            attrs["captures"] = captures
            inputs_ += captures
        if n.op_type == "Split" and "split" not in attrs and "num_outputs" not in attrs \
                and (len(n.input) < 2 or not n.input[1]):
            attrs["num_outputs"] = len(n.output)  # before opset 18 the output count implies equal parts
        nodes.append(Node(name, n.op_type, inputs_, list(n.output), attrs, n.domain))
        x = scope.get(n.input[0]) if n.input else None
        if n.op_type in pool.WINDOWED and n.domain in ("", "ai.onnx") and x is not None and x.is_static():
            # The op's own window count (onnxruntime's), where ONNX shape inference may count one more.
            values[n.output[0]] = ValueInfo(n.output[0], x.dtype, pool.output_shape(n.op_type, x.shape, attrs))
    return Graph(nodes, inputs, outputs, initializers, opset, values, g.name or "graph")
