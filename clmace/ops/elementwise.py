"""Element-wise unary math, standalone activations, Cast and CastLike (NumPy reference)."""

from __future__ import annotations

import math

import numpy as np

from clmace.core import dtypes
from clmace.core.errors import ModelError, UnsupportedOpError
from clmace.ops import activation


def castable(elem_type: int) -> bool:
    """True for the element types Cast may produce (string, float8, int4/2, float4/6 are out of scope).

    bfloat16 needs ml_dtypes, whose import (0.4-1.3 s) is paid only by a model that casts to bfloat16.
    """
    return elem_type in dtypes.ONNX_TO_NUMPY or (elem_type == dtypes.BFLOAT16 and dtypes.to_numpy(elem_type)
                                                  is not None)


def _castable_dtype(dtype: np.dtype) -> bool:
    # A bfloat16 array exists only once ml_dtypes is imported: no import needed to recognise one.
    return dtype in dtypes.ONNX_TO_NUMPY.values() or dtype.name == "bfloat16"
# np.frompyfunc keeps the exact libm erf; NumPy itself has none.
_ERF_UFUNC = np.frompyfunc(math.erf, 1, 1)


def _erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64 (np.asarray: frompyfunc returns a bare float for 0-d input)."""
    return np.asarray(_ERF_UFUNC(x.astype(np.float64)), dtype=np.float64)


def abs_(x: np.ndarray) -> np.ndarray:
    """Abs."""
    return np.abs(x)


def neg(x: np.ndarray) -> np.ndarray:
    """Neg."""
    return np.negative(x)


def reciprocal(x: np.ndarray) -> np.ndarray:
    """Reciprocal: 1 / x."""
    with np.errstate(divide="ignore"):
        return np.reciprocal(x)


def floor(x: np.ndarray) -> np.ndarray:
    """Floor."""
    return np.floor(x)


def ceil(x: np.ndarray) -> np.ndarray:
    """Ceil."""
    return np.ceil(x)


def round_(x: np.ndarray) -> np.ndarray:
    """Round half to even, as ONNX specifies."""
    return np.round(x)


def sign(x: np.ndarray) -> np.ndarray:
    """Sign."""
    return np.sign(x)


def exp(x: np.ndarray) -> np.ndarray:
    """Exp."""
    with np.errstate(over="ignore"):
        return np.exp(x)


def log(x: np.ndarray) -> np.ndarray:
    """Natural log; log(0) = -inf, log(<0) = nan."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def sqrt(x: np.ndarray) -> np.ndarray:
    """Square root; sqrt(<0) = nan."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def erf(x: np.ndarray) -> np.ndarray:
    """Gauss error function, computed in float64."""
    return _erf64(x).astype(x.dtype)


def sin(x: np.ndarray) -> np.ndarray:
    """Sin."""
    return np.sin(x)


def cos(x: np.ndarray) -> np.ndarray:
    """Cos."""
    return np.cos(x)


def tan(x: np.ndarray) -> np.ndarray:
    """Tan."""
    return np.tan(x)


def asin(x: np.ndarray) -> np.ndarray:
    """Arcsine."""
    with np.errstate(invalid="ignore"):
        return np.arcsin(x)


def acos(x: np.ndarray) -> np.ndarray:
    """Arccosine."""
    with np.errstate(invalid="ignore"):
        return np.arccos(x)


def atan(x: np.ndarray) -> np.ndarray:
    """Arctangent."""
    return np.arctan(x)


def sinh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic sine."""
    with np.errstate(over="ignore"):
        return np.sinh(x)


def cosh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic cosine."""
    with np.errstate(over="ignore"):
        return np.cosh(x)


def asinh(x: np.ndarray) -> np.ndarray:
    """Inverse hyperbolic sine."""
    return np.arcsinh(x)


def acosh(x: np.ndarray) -> np.ndarray:
    """Inverse hyperbolic cosine."""
    with np.errstate(invalid="ignore"):
        return np.arccosh(x)


def atanh(x: np.ndarray) -> np.ndarray:
    """Inverse hyperbolic tangent."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arctanh(x)


def is_nan(x: np.ndarray) -> np.ndarray:
    """IsNaN -> bool."""
    return np.isnan(x)


def is_inf(x: np.ndarray, *, detect_negative: int, detect_positive: int) -> np.ndarray:
    """IsInf -> bool, optionally only one sign."""
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


def not_(x: np.ndarray) -> np.ndarray:
    """Logical Not."""
    return np.logical_not(x)


def bitwise_not(x: np.ndarray) -> np.ndarray:
    """BitwiseNot."""
    return np.invert(x)


def relu(x: np.ndarray) -> np.ndarray:
    """Relu."""
    return activation.relu(x)


def leaky_relu(x: np.ndarray, *, alpha: float) -> np.ndarray:
    """LeakyRelu."""
    return activation.leaky_relu(x, alpha)


def prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """PRelu: slope broadcasts unidirectionally to x."""
    return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)


def clip(x: np.ndarray, min: np.ndarray | float | None = None, max: np.ndarray | float | None = None):
    """Clip; bounds are attributes before opset 11 and optional inputs after. min > max gives max."""
    out = x
    if min is not None:
        out = np.maximum(out, np.asarray(min).astype(x.dtype))
    if max is not None:
        out = np.minimum(out, np.asarray(max).astype(x.dtype))
    return out.astype(x.dtype, copy=out is x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Sigmoid."""
    return activation.sigmoid(x)


def hard_sigmoid(x: np.ndarray, *, alpha: float, beta: float) -> np.ndarray:
    """HardSigmoid: clip(alpha * x + beta, 0, 1)."""
    return activation.hard_sigmoid(x, alpha, beta)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """HardSwish."""
    return activation.hard_swish(x)


def swish(x: np.ndarray, *, alpha: float) -> np.ndarray:
    """Swish: x * sigmoid(alpha * x)."""
    return (x * activation.sigmoid(x * x.dtype.type(alpha))).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    """Tanh."""
    return activation.tanh(x)


def gelu(x: np.ndarray, *, approximate: str) -> np.ndarray:
    """Gelu, exact (erf) or the tanh approximation; computed in float64."""
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        out = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    elif approximate == "none":
        out = 0.5 * x64 * (1 + _erf64(x64 / math.sqrt(2)))
    else:
        raise ModelError(f"Gelu: attribute approximate must be 'none' or 'tanh', got {approximate!r}")
    return out.astype(x.dtype)


def elu(x: np.ndarray, *, alpha: float) -> np.ndarray:
    """Elu."""
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * np.expm1(x)).astype(x.dtype, copy=False)


def selu(
    x: np.ndarray, *, alpha: float, gamma: float
) -> np.ndarray:
    """Selu."""
    with np.errstate(over="ignore"):
        return (gamma * np.where(x > 0, x, alpha * np.expm1(x))).astype(x.dtype, copy=False)


def celu(x: np.ndarray, *, alpha: float) -> np.ndarray:
    """Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    with np.errstate(over="ignore"):
        neg_part = np.minimum(0, alpha * np.expm1(x.astype(np.float64) / alpha))
    return (np.maximum(0, x) + neg_part).astype(x.dtype, copy=False)


def softplus(x: np.ndarray) -> np.ndarray:
    """Softplus: log(1 + exp(x)), overflow-free."""
    return np.logaddexp(np.zeros((), x.dtype), x)


def softsign(x: np.ndarray) -> np.ndarray:
    """Softsign: x / (1 + |x|)."""
    return x / (x.dtype.type(1) + np.abs(x))


def mish(x: np.ndarray) -> np.ndarray:
    """Mish: x * tanh(softplus(x))."""
    return (x * np.tanh(softplus(x))).astype(x.dtype, copy=False)


def thresholded_relu(x: np.ndarray, *, alpha: float) -> np.ndarray:
    """ThresholdedRelu: x where x > alpha, else 0."""
    return np.where(x > alpha, x, np.zeros((), x.dtype))


def shrink(x: np.ndarray, *, bias: float, lambd: float) -> np.ndarray:
    """Shrink: x + bias below -lambd, x - bias above lambd, 0 between."""
    out = np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))
    return out.astype(x.dtype, copy=False)


def _cast_dtype(to: int | str, op: str) -> np.dtype:
    """NumPy dtype of a TensorProto element type, or UnsupportedOpError when out of scope."""
    if isinstance(to, str):  # Cast-1 named the type as a string
        to = dtypes.onnx_type_value(to)
    if not castable(to):
        name = dtypes.onnx_type_name(to)
        raise UnsupportedOpError(f"{op}: target type {name} is not supported (strings, float8, int4 etc.)")
    return dtypes.to_numpy(to)


def _convert(x: np.ndarray, dtype: np.dtype, op: str) -> np.ndarray:
    """Convert x to dtype as Cast does (float -> int truncates toward zero)."""
    if not _castable_dtype(x.dtype):
        raise UnsupportedOpError(f"{op}: input type {x.dtype} is not supported (strings, float8, int4 etc.)")
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)


def cast(x: np.ndarray, *, to: int | str, saturate: int = 1, round_mode: str = "up") -> np.ndarray:
    """Cast to the TensorProto type `to`; saturate and round_mode only concern float8/float4."""
    return _convert(x, _cast_dtype(to, "Cast"), "Cast")


def cast_like(x: np.ndarray, target_type: np.ndarray, *, saturate: int = 1, round_mode: str = "up"):
    """CastLike: Cast to the element type of target_type."""
    if not _castable_dtype(target_type.dtype):
        raise UnsupportedOpError(
            f"CastLike: target type {target_type.dtype} is not supported (strings, float8, int4 etc.)"
        )
    return _convert(x, target_type.dtype, "CastLike")


OPS = {
    "Abs": {6: abs_},
    "Neg": {6: neg},
    "Reciprocal": {6: reciprocal},
    "Floor": {6: floor},
    "Ceil": {6: ceil},
    "Round": round_,
    "Sign": sign,
    "Exp": {6: exp},
    "Log": {6: log},
    "Sqrt": {6: sqrt},
    "Erf": erf,
    "Sin": sin,
    "Cos": cos,
    "Tan": tan,
    "Asin": asin,
    "Acos": acos,
    "Atan": atan,
    "Sinh": sinh,
    "Cosh": cosh,
    "Asinh": asinh,
    "Acosh": acosh,
    "Atanh": atanh,
    "IsNaN": is_nan,
    "IsInf": is_inf,
    "Not": not_,
    "BitwiseNot": bitwise_not,
    "Relu": {6: relu},
    "LeakyRelu": {6: leaky_relu},
    "PRelu": {6: prelu},
    "Clip": {6: clip},
    "Sigmoid": {6: sigmoid},
    "HardSigmoid": {6: hard_sigmoid},
    "HardSwish": hard_swish,
    "Swish": swish,
    "Tanh": {6: tanh},
    "Gelu": gelu,
    "Elu": {6: elu},
    "Selu": {6: selu},
    "Celu": celu,
    "Softplus": softplus,
    "Softsign": softsign,
    "Mish": mish,
    "ThresholdedRelu": thresholded_relu,
    "Shrink": shrink,
    "Cast": cast,
    "CastLike": cast_like,
}
