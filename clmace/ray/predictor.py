"""Predictor: a callable class for `ray.data.Dataset.map_batches` holding one InferenceSession per actor.

The compiled-program file reaches every worker read-only, as a path the workers can read or as bytes (through
Ray's object store); a worker on a device the file has no section for compiles once and saves to its own
cache, or merges into the shared file under the store's lock when asked (`merge_programs=True`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clmace.core.atomic import atomic_write_bytes
from clmace.core.errors import ConfigError
from clmace.ray.loading import RowLoader

Batch = Mapping[str, Any]


def _session_options(compiled_program: str | os.PathLike | bytes | bool | None, merge_programs: bool,
                     scratch: str) -> dict[str, Any]:
    """Where the session finds programs: the shared file read-only (bytes land in a private file first), or
    the shared file itself, written back under its lock, with merge_programs."""
    if compiled_program is None:
        return {}  # the session's default cache
    if compiled_program is False:
        return {"compiled_program": False}  # no program file at all: compile from source
    if isinstance(compiled_program, (bytes, bytearray, memoryview)):
        path = os.path.join(scratch, "shared.clmace")
        atomic_write_bytes(path, bytes(compiled_program))
        return {"program_paths": [path]}
    if merge_programs:
        return {"compiled_program": os.fspath(compiled_program)}
    return {"program_paths": [os.fspath(compiled_program)]}


class Predictor:
    """Runs a model over Ray Data batches (dicts of NumPy arrays or pandas frames); outputs become new columns.

    model: an ONNX or converted-model path, or its bytes. compiled_program: a path or bytes (read-only), None
    (the worker's default cache) or False (none: compile from source). columns: {model input: batch column} where they
    differ. outputs: the outputs to return (a list, or {output: column}); all by default. loader: decode a
    column of file paths (images, .npy) into the model's input first. Other keywords are InferenceSession
    options (device, precision, trusted_keys, ...).
    """

    def __init__(self, model: str | os.PathLike | bytes,
                 compiled_program: str | os.PathLike | bytes | bool | None = None,
                 *, device: str = "cpu", precision: str = "fp32", columns: Mapping[str, str] | None = None,
                 outputs: Sequence[str] | Mapping[str, str] | None = None, loader: RowLoader | None = None,
                 merge_programs: bool = False, **options: Any) -> None:
        from clmace.session import InferenceSession

        start = time.perf_counter()
        self._scratch = tempfile.TemporaryDirectory(prefix="clmace-ray-")  # private (0700): trusted by its owner
        opts = {**_session_options(compiled_program, merge_programs, self._scratch.name), **options}
        self.session = InferenceSession(bytes(model) if isinstance(model, (bytearray, memoryview)) else model,
                                        device=device, precision=precision, **opts)
        self.inputs = self.session.graph.inputs  # ValueInfo: name, dtype, shape
        self.columns = {arg.name: (columns or {}).get(arg.name, arg.name) for arg in self.inputs}
        if loader is not None and loader.column not in self.columns.values():
            self.columns[self.inputs[0].name] = loader.column  # the paths feed the first input, unless mapped
        names = [o.name for o in self.session.get_outputs()]
        wanted = outputs if isinstance(outputs, Mapping) else {n: n for n in (outputs or names)}
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ConfigError(f"outputs {unknown} are not outputs of the model; it has {names}")
        self.outputs = dict(wanted)
        self.loader = loader
        self.rows = 0
        self.batches = 0
        self.startup_seconds = time.perf_counter() - start
        self.first_batch_seconds: float | None = None

    def __call__(self, batch: Any) -> Any:
        """The batch with one new column per output (rows in the same order)."""
        start = time.perf_counter()
        frame = batch if hasattr(batch, "to_dict") and hasattr(batch, "columns") else None
        data = {c: frame[c].to_numpy() for c in frame.columns} if frame is not None else dict(batch)
        feeds = self._feeds(data)
        rows = len(next(iter(feeds.values()))) if feeds else 0
        results = self._run(feeds, rows)
        clash = sorted(set(self.outputs.values()) & set(data))
        if clash:
            raise ConfigError(f"output column(s) {clash} already exist in the batch; name them otherwise with "
                              "outputs={output: column}")
        self.rows += rows
        self.batches += 1
        if self.first_batch_seconds is None:
            self.first_batch_seconds = time.perf_counter() - start
        if frame is not None:
            out = frame.copy()
            for name, column in self.outputs.items():
                out[column] = list(results[name])
            return out
        return {**data, **{column: results[name] for name, column in self.outputs.items()}}

    def _feeds(self, data: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One stacked array per model input, from its column (decoded by the loader when there is one)."""
        feeds = {}
        for arg in self.inputs:
            column = self.columns[arg.name]
            if self.loader is not None and column == self.loader.column:
                if column not in data:
                    raise ConfigError(f"batch has no column {column!r} of paths to load; columns: {sorted(data)}")
                feeds[arg.name] = self.loader.load(data[column], arg)
                continue
            if column not in data:
                raise ConfigError(f"batch has no column {column!r} for model input {arg.name!r}; columns: "
                                  f"{sorted(data)} (map them with columns={{input: column}})")
            values = data[column]
            stacked = np.stack(list(values)) if np.asarray(values).dtype == object else np.asarray(values)
            feeds[arg.name] = stacked.astype(arg.dtype, copy=False)
        return feeds

    def _run(self, feeds: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run the rows in chunks the model takes: all at once when its batch axis is dynamic, else in pieces
        of its fixed batch size (the last one padded, the padding dropped)."""
        names = list(self.outputs)
        fixed = {arg.shape[0] for arg in self.inputs if arg.shape and isinstance(arg.shape[0], int)}
        step = min(fixed) if fixed else rows
        if rows == 0:
            return {n: np.empty((0,)) for n in names}
        parts: list[list[np.ndarray]] = []
        for lo in range(0, rows, max(step, 1)):
            chunk = {k: v[lo: lo + step] for k, v in feeds.items()}
            got = len(next(iter(chunk.values())))
            if got < step:  # pad the last chunk to the model's fixed batch size
                chunk = {k: np.concatenate([v, np.zeros((step - got, *v.shape[1:]), v.dtype)])
                         for k, v in chunk.items()}
            outs = self.session.run(names, chunk)
            parts.append([o[:got] for o in outs])
        return {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)}

    def stats(self) -> dict[str, Any]:
        """This worker's start-up and work so far, and where its programs came from (program-file hits)."""
        store = self.session.program_store
        status = store.status() if store is not None else {}
        return {"pid": os.getpid(), "device": self.session.device, "startup_seconds": self.startup_seconds,
                "first_batch_seconds": self.first_batch_seconds, "rows": self.rows, "batches": self.batches,
                "program_hits": status.get("hits", 0), "program_misses": status.get("misses", 0)}
