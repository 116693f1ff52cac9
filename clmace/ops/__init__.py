"""NumPy reference ops, one module per op family, registered explicitly below."""

from clmace.ops import (
    binary,
    control,
    conv,
    elementwise,
    gather,
    gemm,
    norm,
    pool,
    recurrent,
    reduce,
    resize,
    shape,
    tensor,
)
from clmace.ops.registry import OpFn, Registry

REGISTRY = Registry()
for _module in (binary, control, conv, elementwise, gather, gemm, norm, pool, recurrent, reduce, resize, shape, tensor):
    REGISTRY.add_table(_module.OPS)

__all__ = ["REGISTRY", "OpFn", "Registry"]
