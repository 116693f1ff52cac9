"""ONNX attribute defaults, read from the onnx.defs operator schemas: the one source of them.

The frontend writes every defaulted attribute into each IR node when it imports a model, so the ops receive
complete attributes and never restate a default; converted-model files carry them too, which keeps the
`onnx` package (0.5 s to import) off the warm-start path.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def attribute_defaults(op_type: str, opset: int, domain: str = "") -> dict[str, Any]:
    """{attribute: default} of an op's schema at an opset ({} for ops ONNX does not define)."""
    import onnx.defs
    from onnx import helper

    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return {}
    out = {}
    for name, attr in schema.attributes.items():
        if attr.default_value.name:  # an attribute without a default has an empty AttributeProto
            value = helper.get_attribute_value(attr.default_value)
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            elif isinstance(value, list):
                value = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
            out[name] = value
    return out


def with_defaults(op_type: str, opset: int, attrs: dict[str, Any], domain: str = "") -> dict[str, Any]:
    """attrs completed with the schema's defaults for the attributes they omit."""
    if domain not in ("", "ai.onnx"):
        return dict(attrs)
    return {**attribute_defaults(op_type, opset), **attrs}
