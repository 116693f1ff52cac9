"""run_batch: a model over a directory of files or a Parquet table on Ray, written as a Parquet dataset
(a directory of part files), resumable.

Exactly-once rows: only the driver writes, each part file atomically (a temporary name, then a rename), and a
row id already written is never written again; a restarted run skips the ids its output already holds. A
worker that dies is restarted by Ray and its batch run again (actor restarts and task retries).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clmace.core.errors import ConfigError, ModelError
from clmace.ray.loading import FILE_SUFFIXES, RowLoader
from clmace.ray.predictor import Predictor

ID = "id"
PART_PREFIX = "part-"


@dataclass
class BatchReport:
    """What a run did."""

    rows: int  # rows written by this run
    skipped: int  # rows the output already held
    parts: int  # part files written by this run
    seconds: float
    workers: int
    output: str
    columns: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def list_directory(path: str) -> list[str]:
    """Files under path that a RowLoader reads (images, .npy), relative, sorted."""
    found = []
    for root, _, files in os.walk(path):
        for name in files:
            if name.lower().endswith(FILE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), path).replace(os.sep, "/"))
    return sorted(found)


def written_ids(output: str) -> set[str]:
    """Row ids the part files of output already hold (half-written temporary files are not parts)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    if not os.path.isdir(output):
        return done
    for name in sorted(os.listdir(output)):
        if name.startswith(PART_PREFIX) and name.endswith(".parquet"):
            done.update(str(v) for v in pq.read_table(os.path.join(output, name), columns=[ID]).column(ID).to_pylist())
    return done


def read_output(output: str) -> dict[str, Any]:
    """The whole output as {id: [...], output column: array (rows, ...)}, rows sorted by id."""
    import pyarrow.parquet as pq

    parts = [pq.read_table(os.path.join(output, n)) for n in sorted(os.listdir(output))
             if n.startswith(PART_PREFIX) and n.endswith(".parquet")]
    if not parts:
        return {ID: []}
    ids = [str(v) for t in parts for v in t.column(ID).to_pylist()]
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    out: dict[str, Any] = {ID: [ids[i] for i in order]}
    for name in parts[0].column_names:
        if name != ID:
            arrays = [_column_array(t.column(name)) for t in parts]
            out[name] = np.concatenate(arrays)[order]
    return out


def _column_array(column: Any) -> np.ndarray:
    chunk = column.combine_chunks()
    return chunk.to_numpy_ndarray() if hasattr(chunk, "to_numpy_ndarray") else np.asarray(chunk.to_pylist())


def _write_part(output: str, ids: Sequence[str], columns: Mapping[str, np.ndarray]) -> str:
    """One part file, written under a temporary name and renamed: readers never see half of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {ID: pa.array(list(ids), pa.string())}
    for name, value in columns.items():
        value = np.ascontiguousarray(value)
        arrays[name] = (pa.FixedShapeTensorArray.from_numpy_ndarray(value) if value.ndim > 1
                        else pa.array(value))
    name = f"{PART_PREFIX}{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = os.path.join(output, f".tmp-{name}")
    pq.write_table(pa.table(arrays), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(output, name))
    return name


def _source(source: str, id_column: str | None) -> tuple[list[str], Any, str]:
    """(ids, rows as a pyarrow table with an id column, root for relative paths) of a directory or a
    Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.isdir(source):
        files = list_directory(source)
        if not files:
            raise ConfigError(f"{source}: no images or .npy files in it")
        return files, pa.table({ID: files, "path": files}), source
    if not os.path.isfile(source):
        raise ConfigError(f"--input {source}: no such directory or Parquet file")
    try:
        table = pq.read_table(source)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
        raise ConfigError(f"{source}: not a Parquet file ({exc})") from exc
    key = id_column or (ID if ID in table.column_names else None)
    if key is None:
        ids = [str(i) for i in range(table.num_rows)]
    else:
        if key not in table.column_names:
            raise ConfigError(f"{source}: no id column {key!r}; columns: {table.column_names}")
        ids = [str(v) for v in table.column(key).to_pylist()]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: the ids in {key or 'the row numbers'!r} are not unique")
    if ID in table.column_names:
        table = table.drop_columns([ID])
    return ids, table.append_column(ID, pa.array(ids, pa.string())), os.path.dirname(os.path.abspath(source))


def _init_ray(address: str | None, workers: int) -> bool:
    """Connect to a cluster at address, or start a local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    return True


def _shipped(model: str, compiled_program: str | None, remote: bool) -> tuple[Any, Any]:
    """What the workers get: absolute paths on this machine; the files' bytes (through the object store) on a
    cluster, whose nodes may not see our disk."""
    if not remote:
        return os.path.abspath(model), compiled_program and os.path.abspath(compiled_program)
    with open(model, "rb") as f:
        model_bytes = f.read()
    if compiled_program is None:
        return model_bytes, None
    with open(compiled_program, "rb") as f:
        return model_bytes, f.read()


def _batches(dataset: Any) -> Iterator[dict[str, np.ndarray]]:
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


def run_batch(model: str, source: str, output: str, *, workers: int = 2, address: str | None = None,
              device: str = "cpu", precision: str = "fp32", compiled_program: str | None = None,
              batch_size: int = 16, loader: RowLoader | None = None, id_column: str | None = None,
              cpus_per_worker: float = 1, progress: bool = True, predictor: type = Predictor,
              session_options: Mapping[str, Any] | None = None) -> BatchReport:
    """Run model over every row of source not yet in output, on `workers` Ray actors; see the module doc."""
    import ray

    start = time.perf_counter()
    ids, table, root = _source(source, id_column)
    os.makedirs(output, exist_ok=True)
    done = written_ids(output)
    todo = [i for i in ids if i not in done]
    skipped = len(ids) - len(todo)
    if not todo:
        return BatchReport(0, skipped, 0, time.perf_counter() - start, workers, output)
    if os.path.isdir(source):
        loader = loader or RowLoader()
        loader = RowLoader(**{**loader.__dict__, "column": "path", "root": os.path.abspath(source)})
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.filter(pc.is_in(table.column(ID), value_set=pa.array(todo, pa.string())))
    started = _init_ray(address, workers)
    try:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # ours counts written rows
        context.execution_options.preserve_order = True
        kwargs = {"device": device, "precision": precision, "loader": loader, **(session_options or {})}
        # One block per batch: blocks are what Ray spreads over the workers and hands back as they finish
        # (one part file each, so a resumed run loses at most the batches in flight).
        blocks = [table.slice(lo, batch_size) for lo in range(0, table.num_rows, batch_size)]
        dataset = ray.data.from_arrow(blocks).map_batches(
            predictor, fn_constructor_args=_shipped(model, compiled_program, remote=bool(address)),
            fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="numpy", num_cpus=cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(size=workers))  # Ray Data restarts dead actors, retries their batches
        rows, parts, columns = _drain(dataset, output, set(todo), set(table.column_names), progress)
    finally:
        if started:
            ray.shutdown()
    missing = len(todo) - rows
    if missing:
        raise ModelError(f"{missing} of {len(todo)} rows came back from no worker; run again to resume")
    return BatchReport(rows, skipped, parts, time.perf_counter() - start, workers, output, columns)


def _drain(dataset: Any, output: str, todo: set[str], inputs: set[str], progress: bool
           ) -> tuple[int, int, list[str]]:
    """Write every batch coming back as a part file (the id and the model's outputs, not the input columns),
    each id once; (rows, parts, output columns)."""
    from rich.progress import Progress

    written: set[str] = set()
    parts = 0
    columns: list[str] = []
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("rows", total=len(todo))
        for batch in _batches(dataset):
            ids = [str(v) for v in batch[ID]]
            keep = [k for k, i in enumerate(ids) if i in todo and i not in written]  # a retried batch: once
            if not keep:
                continue
            columns = [c for c in batch if c not in inputs]
            index = np.asarray(keep)
            _write_part(output, [ids[k] for k in keep], {c: np.asarray(batch[c])[index] for c in columns})
            written.update(ids[k] for k in keep)
            parts += 1
            bar.update(task, advance=len(keep))
    return len(written), parts, columns

