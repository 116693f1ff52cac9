"""The MACE-style deploy config (YAML): which model, its checksum, tensors, shapes, runtime, data type."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from clmace.core.atomic import sha256_file
from clmace.core.errors import ConfigError

RUNTIMES = ("cpu", "gpu")
# MACE spells data types as storage_compute; plain fp32/fp16 are accepted too.
DATA_TYPES = {"fp32": "fp32", "fp32_fp32": "fp32", "fp16": "fp16", "fp16_fp32": "fp16"}
DEFAULT_THRESHOLDS = {"cpu": 0.999, "gpu": 0.995}


@dataclass
class TensorSpec:
    """One input or output tensor named in the deploy config."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    value_range: tuple[float, float] = (-1.0, 1.0)


@dataclass
class ModelConfig:
    """One entry of the config's `models:` mapping."""

    name: str
    model_file_path: str
    model_sha256_checksum: str | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runtime: str = "cpu"
    data_type: str = "fp32"
    validation_threshold: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the inputs that the config fixes."""
        return {t.name: t.shape for t in self.inputs if t.shape is not None}

    def device(self) -> str:
        """The InferenceSession device for this runtime."""
        return "opencl" if self.runtime == "gpu" else "cpu"

    def verify_checksum(self) -> None:
        """Raise ConfigError when the model file's SHA-256 differs from the configured one."""
        if not self.model_sha256_checksum:
            return
        got = sha256_file(self.model_file_path)
        if got != self.model_sha256_checksum.lower():
            raise ConfigError(f"model {self.name!r}: {self.model_file_path} has sha256 {got}, "
                              f"the config expects {self.model_sha256_checksum}")


def _list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _shape(value: Any, where: str) -> tuple[int, ...]:
    """Parse '1,3,224,224' or [1, 3, 224, 224]."""
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        return tuple(int(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: shape {value!r} is not a list of integers") from exc


def _tensors(sub: dict, kind: str, where: str) -> list[TensorSpec]:
    names = _list(sub.get(f"{kind}_tensors"))
    shapes = _list(sub.get(f"{kind}_shapes"))
    dtypes = _list(sub.get(f"{kind}_data_types"))
    ranges = _list(sub.get(f"{kind}_ranges"))
    for label, items in ((f"{kind}_shapes", shapes), (f"{kind}_data_types", dtypes), (f"{kind}_ranges", ranges)):
        if items and len(items) != len(names):
            raise ConfigError(f"{where}: {len(names)} {kind}_tensors but {len(items)} {label}")
    specs = []
    for i, name in enumerate(names):
        spec = TensorSpec(str(name))
        if shapes:
            spec.shape = _shape(shapes[i], f"{where}: {kind} {name!r}")
        if dtypes:
            spec.dtype = str(dtypes[i])
        if ranges:
            lo, hi = _shape(ranges[i], f"{where}: {kind} {name!r} range") if isinstance(ranges[i], str) \
                else ranges[i]
            spec.value_range = (float(lo), float(hi))
        specs.append(spec)
    return specs


def _model(name: str, body: dict, base_dir: str) -> ModelConfig:
    where = f"model {name!r}"
    if not isinstance(body, dict) or "model_file_path" not in body:
        raise ConfigError(f"{where}: missing key model_file_path")
    path = str(body["model_file_path"])
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    subs = body.get("subgraphs") or [body]
    if len(subs) != 1:
        raise ConfigError(f"{where}: exactly one subgraph is supported, got {len(subs)}")
    sub = subs[0]
    runtime = str(body.get("runtime", "cpu")).lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"{where}: runtime {runtime!r}; expected one of {RUNTIMES}")
    data_type = str(body.get("data_type", "fp32")).lower()
    if data_type not in DATA_TYPES:
        raise ConfigError(f"{where}: data_type {data_type!r}; expected one of {sorted(DATA_TYPES)}")
    thresholds = dict(DEFAULT_THRESHOLDS)
    given = sub.get("validation_threshold", body.get("validation_threshold"))
    if isinstance(given, dict):
        thresholds.update({str(k).lower(): float(v) for k, v in given.items()})
    elif given is not None:
        thresholds = {k: float(given) for k in thresholds}
    checksum = body.get("model_sha256_checksum")
    if checksum is not None and not (isinstance(checksum, str) and len(checksum) == 64
                                     and all(c in "0123456789abcdefABCDEF" for c in checksum)):
        raise ConfigError(f"{where}: model_sha256_checksum must be 64 hex digits in quotes, got {checksum!r}")
    return ModelConfig(name, path, checksum, _tensors(sub, "input", where),
                       _tensors(sub, "output", where), runtime, DATA_TYPES[data_type], thresholds)


def load_config(path: str) -> list[ModelConfig]:
    """Parse a deploy YAML file into its model entries (paths resolved beside the file)."""
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read deploy config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict) or not doc["models"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'models:' section")
    base = os.path.dirname(os.path.abspath(path))
    return [_model(str(name), body, base) for name, body in doc["models"].items()]
