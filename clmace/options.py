"""SessionOptions: every InferenceSession option, typed and validated once, the same on every device."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clmace.core.errors import ConfigError

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class SessionOptions:
    """What a session runs on and how; options a device does not use are accepted and ignored there."""

    device: str = "cpu"  # 'cpu', 'opencl', 'gpu' or 'opencl:N'
    precision: str = "fp32"  # OpenCL storage precision: 'fp32' or 'fp16'
    input_shapes: Mapping[str, Sequence[int]] | None = None  # fixes dynamic input dimensions
    strict: bool = False  # OpenCL: refuse a model with nodes that would run on the host
    allow_cpu_fallback: bool = False  # OpenCL device unusable: run on the CPU runtime (with a warning)
    compiled_program: str | os.PathLike | bool | None = None  # the program file; False: none
    program_paths: Sequence[str | os.PathLike] | None = None  # read-only program files searched too
    trusted_keys: Sequence[str | os.PathLike] | None = None  # public keys a program file must be signed by
    sign_key: str | os.PathLike | None = None  # private key that signs what the session saves
    fp16_without_extension: bool = False  # half storage without cl_khr_fp16 (vload_half/vstore_half)
    tuned: bool = True  # use the tuned records of the program file
    enable_profiling: bool = False  # OpenCL: keep per-launch timings of every run (profile_table); costs host time
    variants: Mapping[str, str] | None = None  # {kernel family: variant} forced (tests, experiments)

    def __post_init__(self) -> None:
        device = str(self.device)
        if device != "cpu" and not device.startswith(("opencl", "gpu")):
            hint = " (CUDA GPUs run through NVIDIA's OpenCL driver: device='gpu')" if "cuda" in device.lower() else ""
            raise ConfigError(f"unknown device {device!r}; expected 'cpu', 'opencl', 'gpu' or 'opencl:N'{hint}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: expected one of {list(PRECISIONS)}")
        for name in ("strict", "allow_cpu_fallback", "fp16_without_extension", "tuned", "enable_profiling"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"option {name}={getattr(self, name)!r}: expected True or False")
        if self.variants is not None and not isinstance(self.variants, Mapping):
            raise ConfigError(f"option variants={self.variants!r}: expected a mapping of family to variant name")

    @classmethod
    def names(cls) -> list[str]:
        """Every option name, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SessionOptions:
        """Options from keyword arguments; an unknown name raises, listing the valid ones."""
        valid = cls.names()
        unknown = [k for k in kwargs if k not in valid]
        if unknown:
            near = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
            hints = "".join(f" ({k!r}: did you mean {m[0]!r}?)" for k, m in near.items() if m)
            raise ConfigError(f"unknown InferenceSession option(s) {sorted(unknown)}{hints}; valid options: {valid}")
        return cls(**kwargs)

    def runtime_options(self) -> dict[str, Any]:
        """The options the OpenCL runtime takes."""
        return {"precision": self.precision, "strict": self.strict, "tuned": self.tuned,
                "profiling": self.enable_profiling,
                "fp16_without_extension": self.fp16_without_extension,
                "variants": dict(self.variants) if self.variants else None}
