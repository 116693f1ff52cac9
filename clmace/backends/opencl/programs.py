"""Kernel sources (kernels/*.cl) and the build options programs are keyed by."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from clmace.ops.activation import FUSED

COMMON = "common.cl"  # macros every program starts with (storage type, activations)
# Options every program gets: the kernels are written for IEEE float math (1e-4 against onnxruntime).
BASE_OPTIONS = ("-cl-mad-enable",)


# Kernel codes of the fused activations, from the one table of them (ops.activation.FUSED); 0: none.
ACT_CODES: dict[str | None, int] = {None: 0, "": 0, **{name: i + 1 for i, name in enumerate(FUSED)}}


def activation_defines() -> str:
    """`#define ACT_LEAKY_RELU 2` style lines for every fused activation (ACT_NONE 0 too)."""
    names = {"NONE": 0, **{re.sub(r"(?<!^)(?=[A-Z])", "_", n).upper(): c for n, c in ACT_CODES.items() if n}}
    return "".join(f"#define ACT_{name} {code}\n" for name, code in names.items())


@cache
def kernel_source(file: str, common: bool = True) -> str:
    """The full source of one kernel file, with the activation codes and the common header in front unless
    common=False."""
    folder = resources.files("clmace.backends.opencl") / "kernels"
    head = activation_defines() + (folder / COMMON).read_text(encoding="utf-8") + "\n" if common else ""
    return head + (folder / file).read_text(encoding="utf-8")


def define_options(defines: dict[str, Any]) -> list[str]:
    """Sorted -D options from a mapping (values None mean a bare -DNAME)."""
    opts = []
    for key in sorted(defines):
        value = defines[key]
        opts.append(f"-D{key}" if value is None else f"-D{key}={value}")
    return opts


def describe_key(key: tuple[str, tuple[str, ...]]) -> str:
    """'file -Dopt ...' for a program key."""
    return f"{key[0]} {' '.join(key[1])}"
