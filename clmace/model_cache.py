"""Converted models kept beside the compiled programs, keyed by the ONNX file's hash: a warm start from an
`.onnx` path reads the converted model instead of parsing ONNX (importing `onnx` alone costs ~0.5 s).

An entry is `$CLMACE_CACHE_DIR/models/<key>.clmace`; the key covers the ONNX file's bytes, the options that
shape the conversion (input shapes, graph passes) and this clmace's version. The files a model keeps its
weights in (ONNX external data) are recorded in the entry with their hashes and checked on every use. Entries
are read only from a directory only you (or root) can write, as the program files are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from clmace.core.atomic import sha256_file
from clmace.core.ir import Graph
from clmace.core.paths import default_cache_dir
from clmace.frontend import modelfile

log = logging.getLogger("clmace.session")

ENV_OFF = "CLMACE_MODEL_CACHE"  # "0": parse ONNX every time, keep nothing


def enabled() -> bool:
    """False when $CLMACE_MODEL_CACHE is 0."""
    return os.environ.get(ENV_OFF, "1") != "0"


# Raised whenever the graph passes change what a conversion produces (a new pass, a pass that does more), so
# that an entry converted by an older pipeline of the same version is converted again.
PASSES_REVISION = 4


def entry_path(model_path: str, input_shapes: Mapping[str, Sequence[int]] | None, run_passes: bool) -> str:
    """Where the converted model of this ONNX file and these options lives."""
    from clmace import __version__

    h = hashlib.sha256(sha256_file(model_path).encode())
    h.update(json.dumps([sorted((k, [int(d) for d in v]) for k, v in (input_shapes or {}).items()), run_passes,
                         __version__, modelfile.FORMAT_VERSION, PASSES_REVISION]).encode())
    return os.path.join(default_cache_dir(), "models", h.hexdigest()[:40] + ".clmace")


def _external_files(model_path: str) -> dict[str, str]:
    """{path relative to the model: sha256} of the external-data files the model reads its weights from."""
    import onnx

    proto = onnx.load(model_path, load_external_data=False)  # onnx.load would have read them in already
    base = os.path.dirname(os.path.abspath(model_path))
    files: dict[str, str] = {}

    def walk(graph: Any) -> None:
        tensors = list(graph.initializer)
        for node in graph.node:
            for attr in node.attribute:
                tensors += [attr.t] if attr.HasField("t") else []
                tensors += list(attr.tensors)
                for body in [attr.g] if attr.HasField("g") else []:
                    walk(body)
        for tensor in tensors:
            for entry in tensor.external_data:
                if entry.key == "location" and entry.value not in files:
                    files[entry.value] = sha256_file(os.path.join(base, entry.value))

    walk(proto.graph)
    return files


def get(model_path: str, input_shapes: Mapping[str, Sequence[int]] | None, run_passes: bool
        ) -> tuple[Graph, dict] | None:
    """The cached converted model (graph, pass report), or None on a miss or an entry that no longer fits."""
    from clmace.store import trust

    path = entry_path(model_path, input_shapes, run_passes)
    if not os.path.exists(path):
        return None
    problem = trust.path_problem(path)
    if problem:
        log.warning("cached converted model not used: %s", problem)
        return None
    try:
        graph, extra = modelfile.load(path)
    except Exception as exc:  # noqa: BLE001 - a damaged entry is a miss; it is replaced below
        log.info("cached converted model %s unreadable (%s); converting again", path, exc)
        return None
    base = os.path.dirname(os.path.abspath(model_path))
    for rel, digest in extra.get("external_data", {}).items():
        full = os.path.join(base, rel)
        if not os.path.exists(full) or sha256_file(full) != digest:
            return None
    return graph, extra.get("passes", {})


def put(model_path: str, input_shapes: Mapping[str, Sequence[int]] | None, run_passes: bool, graph: Graph,
        report: dict) -> None:
    """Keep a converted model for the next start (best effort: a cache that cannot be written is skipped)."""
    from clmace.store import trust

    path = entry_path(model_path, input_shapes, run_passes)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        problem = trust.private_dir_problem(folder)
        if problem:
            log.info("converted model not cached: %s", problem)
            return
        modelfile.save(graph, path, extra={"passes": report, "external_data": _external_files(model_path)})
    except (OSError, ValueError) as exc:
        log.info("converted model not cached (%s)", exc)
