"""ONNX element types <-> NumPy dtypes, without importing onnx (it costs start-up time)."""

from __future__ import annotations

import numpy as np

# TensorProto.DataType values (onnx.proto) of the types clmace computes with.
ONNX_TO_NUMPY: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8), 4: np.dtype(np.uint16),
    5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.int64), 9: np.dtype(np.bool_),
    10: np.dtype(np.float16), 11: np.dtype(np.float64), 12: np.dtype(np.uint32), 13: np.dtype(np.uint64),
}
ONNX_NAMES: dict[int, str] = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
}
BFLOAT16 = 16


def _bfloat16() -> np.dtype | None:
    try:
        import ml_dtypes  # shipped with onnx; the only common source of a NumPy bfloat16
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def onnx_type_name(elem_type: int) -> str:
    """TensorProto name of an element type, e.g. 1 -> 'FLOAT'."""
    return ONNX_NAMES.get(elem_type, str(elem_type))


def onnx_type_value(name: str) -> int:
    """Element type of a TensorProto name, e.g. 'float' -> 1; -1 when unknown."""
    return next((k for k, v in ONNX_NAMES.items() if v == name.upper()), -1)


def to_numpy(elem_type: int) -> np.dtype | None:
    """NumPy dtype of an ONNX element type, None when clmace does not compute with it."""
    if elem_type == BFLOAT16:
        return _bfloat16()
    return ONNX_TO_NUMPY.get(elem_type)
