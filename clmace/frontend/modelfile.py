"""The converted-model file: magic, version, JSON graph header, aligned weights blob with its SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from typing import Any

import numpy as np

from clmace.core.atomic import atomic_write_bytes
from clmace.core.errors import ModelError
from clmace.core.ir import Graph, Node, ValueInfo

MAGIC = b"CLMACEMD"
FORMAT_VERSION = 2  # 2: every node carries its schema-defaulted attributes
ALIGN = 64
_PREFIX = struct.Struct("<8sII")  # magic, format version, header length
# The `dtype.str` forms dumps() writes: numbers, bool, strings, object (ONNX strings), void (onnx's
# stand-in for bfloat16 / float8 / int4: '<V2', '<V1').
_DTYPE_STR = re.compile(r"[<>|=]?(?:[biufcSUV][0-9]{1,4}|O)")


def _encode_attr(value: Any) -> Any:
    if isinstance(value, Graph):  # a control-flow body: its constants travel inline (bodies are small)
        body = _graph_header(value)
        body["initializers"] = {k: _encode_attr(v) for k, v in value.initializers.items()}
        return {"__graph__": body}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
                "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_encode_attr(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dtype(text: Any) -> np.dtype:
    """A plain dtype from its `dtype.str` (e.g. '<f4'); structured and comma-string specs are refused."""
    # Checked before np.dtype sees it: numpy accepts structured, object and comma-string specs (the last via
    # ast.literal_eval), none of which dumps() writes.
    if not isinstance(text, str) or not _DTYPE_STR.fullmatch(text):
        raise ValueError(f"dtype {text!r} is not a plain dtype string such as '<f4'")
    dtype = np.dtype(text)
    if dtype.itemsize == 0:
        raise ValueError(f"dtype {text!r} has no size")
    return dtype


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, dict) and "__graph__" in value:
        body = _object(value["__graph__"], "body")
        inits = {k: _decode_attr(v) for k, v in _object(body["initializers"], "body initializers").items()}
        return _graph_from(body, inits)
    if isinstance(value, dict) and "__ndarray__" in value:
        raw = base64.b64decode(value["__ndarray__"])
        return np.frombuffer(raw, dtype=_dtype(value["dtype"])).reshape(value["shape"]).copy()
    if isinstance(value, list):
        return [_decode_attr(v) for v in value]
    return value


def _vi(v: ValueInfo) -> dict:
    return {"name": v.name, "dtype": v.dtype.str, "shape": None if v.shape is None else list(v.shape)}


def _from_vi(d: dict) -> ValueInfo:
    return ValueInfo(d["name"], _dtype(d["dtype"]), None if d["shape"] is None else tuple(d["shape"]))


def _graph_header(graph: Graph) -> dict:
    """A graph without its weights, as JSON-able data."""
    return {
        "name": graph.name, "opset": graph.opset, "metadata": graph.metadata,
        "inputs": [_vi(v) for v in graph.inputs], "outputs": [_vi(v) for v in graph.outputs],
        "values": [_vi(v) for v in graph.values.values()],
        "nodes": [{"name": n.name, "op": n.op_type, "domain": n.domain, "inputs": n.inputs,
                   "outputs": n.outputs, "attrs": {k: _encode_attr(v) for k, v in n.attrs.items()}}
                  for n in graph.nodes],
    }


def _graph_from(g: dict, inits: dict[str, np.ndarray]) -> Graph:
    """The Graph of a header made by _graph_header, with its weights."""
    nodes = [Node(n["name"], n["op"], n["inputs"], n["outputs"],
                  {k: _decode_attr(v) for k, v in _object(n["attrs"], "node attrs").items()}, n["domain"])
             for n in g["nodes"]]
    values = {v["name"]: _from_vi(v) for v in g["values"]}
    return Graph(nodes, [_from_vi(v) for v in g["inputs"]], [_from_vi(v) for v in g["outputs"]],
                 inits, g["opset"], values, g["name"], _object(g["metadata"], "graph metadata"))


def dumps(graph: Graph, extra: dict | None = None) -> bytes:
    """Serialise graph (and an extra JSON-able dict, e.g. the pass report) to bytes."""
    from clmace import __version__

    tensors, chunks, offset = [], [], 0
    for name, arr in graph.initializers.items():
        data = np.ascontiguousarray(arr).tobytes()
        pad = (-offset) % ALIGN
        chunks.append(b"\0" * pad)
        offset += pad
        tensors.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    blob = b"".join(chunks)
    header = {
        "engine_version": __version__,
        "graph": _graph_header(graph),
        "tensors": tensors,
        "weights_size": len(blob),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "extra": extra or {},
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head))
    pad = (-(len(prefix) + len(head))) % ALIGN
    return prefix + head + b" " * pad + blob


def is_model_file(data: bytes) -> bool:
    """True when data starts like a converted-model file."""
    return data[:8] == MAGIC


def loads(data: bytes | memoryview, source: str = "<bytes>") -> tuple[Graph, dict]:
    """Parse a converted-model file; verify the weights' SHA-256; return (graph, extra)."""
    buf = memoryview(data)
    if len(buf) < _PREFIX.size:
        raise ModelError(f"{source}: truncated converted-model file ({len(buf)} bytes)")
    magic, version, head_len = _PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ModelError(f"{source}: not a clmace converted-model file (magic {bytes(magic)!r})")
    if version != FORMAT_VERSION:
        raise ModelError(f"{source}: converted-model format version {version}, this clmace reads "
                         f"{FORMAT_VERSION}; convert the model again")
    if head_len > len(buf) - _PREFIX.size:
        raise ModelError(f"{source}: truncated header ({head_len} bytes announced)")
    try:
        header = _object(json.loads(bytes(buf[_PREFIX.size:_PREFIX.size + head_len])), "header")
        start = _PREFIX.size + head_len
        start += (-start) % ALIGN
        blob = buf[start:]
        if len(blob) != header["weights_size"]:
            raise ModelError(f"{source}: weights are {len(blob)} bytes, header says {header['weights_size']}")
        if hashlib.sha256(blob).hexdigest() != header["weights_sha256"]:
            raise ModelError(f"{source}: weights SHA-256 mismatch: the file is corrupt")
        g = _object(header["graph"], "graph")
        inits = {}
        for t in header["tensors"]:
            end = t["offset"] + t["nbytes"]
            if t["offset"] < 0 or end > len(blob):
                raise ModelError(f"{source}: tensor {t['name']!r} lies outside the weights")
            inits[t["name"]] = np.frombuffer(blob[t["offset"]:end], dtype=_dtype(t["dtype"])).reshape(t["shape"])
        graph = _graph_from(g, inits)
        extra = _object(header.get("extra", {}), "extra")
    except ModelError:
        raise
    except RecursionError:  # json and _decode_attr recurse per nesting level; a hostile header nests deeply
        raise ModelError(f"{source}: malformed converted-model header: nested too deeply") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelError(f"{source}: malformed converted-model header: {type(exc).__name__}: {exc}") from exc
    return graph, extra


def save(graph: Graph, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write graph to path atomically."""
    atomic_write_bytes(os.fspath(path), dumps(graph, extra))


def load(path: str | os.PathLike) -> tuple[Graph, dict]:
    """Read a converted-model file with one read."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, os.fspath(path))
