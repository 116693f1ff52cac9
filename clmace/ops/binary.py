"""Broadcasting binary and variadic element-wise ops, comparisons, logic, bit ops, Where."""

from __future__ import annotations

from functools import reduce

import numpy as np

from clmace.core.errors import ModelError


def _same(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Result in the dtype of `like`; NumPy promotion must not leak (int8 + int8 stays int8)."""
    return np.asarray(out).astype(like.dtype, copy=False)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Add."""
    return _same(np.add(a, b), a)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sub."""
    return _same(np.subtract(a, b), a)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mul."""
    return _same(np.multiply(a, b), a)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Div; integer division truncates toward zero, as in C."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not np.issubdtype(a.dtype, np.integer):
            return _same(np.divide(a, b), a)
        quot = np.floor_divide(a, b)
        if np.issubdtype(a.dtype, np.signedinteger):
            # floor_divide rounds toward -inf; step back toward zero where the division was inexact
            # and the operands' signs differ.
            inexact = (quot * b != a) & ((a < 0) != (b < 0))
            quot = quot + inexact.astype(quot.dtype)
    return _same(quot, a)


def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pow; the result has the base's dtype whatever the exponent's dtype."""
    with np.errstate(all="ignore"):
        if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer) and np.all(y >= 0):
            return _same(np.power(x.astype(np.int64), y.astype(np.int64)), x)
        if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize >= y.dtype.itemsize:
            return _same(np.power(x, y.astype(x.dtype)), x)
        return _same(np.power(x.astype(np.float64), y.astype(np.float64)), x)


def mod(a: np.ndarray, b: np.ndarray, *, fmod: int) -> np.ndarray:
    """Mod: fmod=0 takes the divisor's sign (Python %), fmod=1 the dividend's (C fmod)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _same(np.fmod(a, b) if fmod else np.mod(a, b), a)


def _variadic(op: str, inputs: tuple[np.ndarray, ...], fn: np.ufunc) -> np.ndarray:
    """Fold a broadcasting ufunc over one or more inputs."""
    if not inputs:
        raise ModelError(f"{op}: expected at least one input, got none")
    return _same(reduce(fn, inputs[1:], inputs[0].copy()), inputs[0])


def max_(*inputs: np.ndarray) -> np.ndarray:
    """Element-wise Max of one or more inputs; NaN propagates."""
    return _variadic("Max", inputs, np.maximum)


def min_(*inputs: np.ndarray) -> np.ndarray:
    """Element-wise Min of one or more inputs; NaN propagates."""
    return _variadic("Min", inputs, np.minimum)


def sum_(*inputs: np.ndarray) -> np.ndarray:
    """Element-wise Sum of one or more inputs."""
    return _variadic("Sum", inputs, np.add)


def mean(*inputs: np.ndarray) -> np.ndarray:
    """Element-wise Mean of one or more inputs."""
    total = _variadic("Mean", inputs, np.add)
    return _same(total / total.dtype.type(len(inputs)), inputs[0])


def equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal -> bool."""
    return np.asarray(np.equal(a, b), dtype=bool)


def less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Less -> bool."""
    return np.less(a, b)


def greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Greater -> bool."""
    return np.greater(a, b)


def less_or_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LessOrEqual -> bool."""
    return np.less_equal(a, b)


def greater_or_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GreaterOrEqual -> bool."""
    return np.greater_equal(a, b)


def and_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logical And."""
    return np.logical_and(a, b)


def or_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logical Or."""
    return np.logical_or(a, b)


def xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logical Xor."""
    return np.logical_xor(a, b)


def bit_shift(x: np.ndarray, y: np.ndarray, *, direction: str) -> np.ndarray:
    """BitShift of unsigned integers, direction LEFT or RIGHT."""
    if direction == "LEFT":
        return _same(np.left_shift(x, y), x)
    if direction == "RIGHT":
        return _same(np.right_shift(x, y), x)
    raise ModelError(f"BitShift: attribute direction must be 'LEFT' or 'RIGHT', got {direction!r}")


def bitwise_and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BitwiseAnd."""
    return _same(np.bitwise_and(a, b), a)


def bitwise_or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BitwiseOr."""
    return _same(np.bitwise_or(a, b), a)


def bitwise_xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BitwiseXor."""
    return _same(np.bitwise_xor(a, b), a)


def where(condition: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where: x where condition, else y (three-way broadcast)."""
    return _same(np.where(condition, x, y), x)


# Before opset 7 these ops broadcast only with the legacy broadcast/axis attributes: not supported.
OPS = {
    "Add": {7: add},
    "Sub": {7: sub},
    "Mul": {7: mul},
    "Div": {7: div},
    "Pow": {7: pow_},
    "Mod": mod,
    "Max": {6: max_},
    "Min": {6: min_},
    "Sum": {6: sum_},
    "Mean": {6: mean},
    "Equal": {7: equal},
    "Less": {7: less},
    "Greater": {7: greater},
    "LessOrEqual": less_or_equal,
    "GreaterOrEqual": greater_or_equal,
    "And": {7: and_},
    "Or": {7: or_},
    "Xor": {7: xor},
    "BitShift": bit_shift,
    "BitwiseAnd": bitwise_and,
    "BitwiseOr": bitwise_or,
    "BitwiseXor": bitwise_xor,
    "Where": where,
}
