"""Kernel sources (kernels/*.cl) and the one place programs are built, deduplicated per runtime."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from functools import cache
from importlib import resources
from typing import Any

from clmace.backends.opencl.quirks.health import ensure_compilable

log = logging.getLogger("clmace.opencl")

COMMON = "common.cl"  # macros every program starts with (storage type, activations)
# Options every program gets: the kernels are written for IEEE float math (1e-4 against onnxruntime).
BASE_OPTIONS = ("-cl-mad-enable",)


@cache
def kernel_source(file: str, common: bool = True) -> str:
    """The full source of one kernel file, with the common header in front unless common=False."""
    folder = resources.files("clmace.backends.opencl") / "kernels"
    head = (folder / COMMON).read_text(encoding="utf-8") + "\n" if common else ""
    return head + (folder / file).read_text(encoding="utf-8")


def define_options(defines: dict[str, Any]) -> list[str]:
    """Sorted -D options from a mapping (values None mean a bare -DNAME)."""
    opts = []
    for key in sorted(defines):
        value = defines[key]
        opts.append(f"-D{key}" if value is None else f"-D{key}={value}")
    return opts


# Builders shared by the plans of one (program store, context): a session that re-plans for a new shape reuses
# its programs. Keyed weakly by the store, so a dropped session's store, builder and programs go with it.
_BUILDERS: weakref.WeakKeyDictionary[Any, dict[int, ProgramBuilder]] = weakref.WeakKeyDictionary()
_STORELESS: dict[int, ProgramBuilder] = {}  # per context: sessions without a store share its programs


def shared_builder(context: Any, device: Any, program_store: Any = None) -> ProgramBuilder:
    """The builder of one (context, program store): plans on one device reuse each other's programs."""
    ctx = int(context.int_ptr)
    per_context = _STORELESS if program_store is None else _BUILDERS.setdefault(program_store, {})
    if ctx not in per_context:
        per_context[ctx] = ProgramBuilder(context, device, program_store)
    return per_context[ctx]


def drop_builders(context: Any) -> None:
    """Forget the builders of a context that is being abandoned."""
    ctx = int(context.int_ptr)
    _STORELESS.pop(ctx, None)
    for per_context in list(_BUILDERS.values()):
        per_context.pop(ctx, None)


class ProgramBuilder:
    """Builds each distinct (kernel file, options) program once, through the program store when given."""

    def __init__(self, context: Any, device: Any, program_store: Any = None) -> None:
        self.context, self.device = context, device
        # Weak: the shared-builder table is keyed by the store, and a strong reference would keep it alive.
        self._store = weakref.ref(program_store) if program_store is not None else None
        self._programs: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.build_seconds = 0.0
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The program store programs are built through (None: none, or its session is gone)."""
        return self._store() if self._store is not None else None

    def program(self, file: str, defines: dict[str, Any]) -> Any:
        """The built program for this kernel file and -D set."""
        return self.program_by_key(self.key(file, defines))

    @staticmethod
    def key(file: str, defines: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The dedup key of a program: kernel file and full option list."""
        return file, tuple(list(BASE_OPTIONS) + define_options(defines))

    def program_by_key(self, key: tuple[str, tuple[str, ...]]) -> Any:
        """The built program for a key made by `key()`."""
        with self._lock:
            prog = self._programs.get(key)
            if prog is None:
                file, options = key
                start = time.perf_counter()
                prog = build_program(self.context, self.device, file, kernel_source(file), list(options), self.store)
                self.build_seconds += time.perf_counter() - start
                self._programs[key] = prog
        return prog

    def kernel(self, file: str, name: str, defines: dict[str, Any]) -> Any:
        """A fresh kernel object (its arguments are bound once, by the caller)."""
        import pyopencl as cl

        return cl.Kernel(self.program(file, defines), name)

    def child(self) -> ProgramBuilder:
        """A builder without a program store that starts with this one's programs (the tuner's trial
        variants are built through it, so only the variants a plan uses reach the compiled-program file)."""
        child = ProgramBuilder(self.context, self.device, None)
        with self._lock:
            child._programs.update(self._programs)
        return child

    @property
    def count(self) -> int:
        """Number of distinct programs built."""
        return len(self._programs)

    def keys(self) -> list[str]:
        """Readable 'file options' keys of the programs built."""
        return [describe_key(k) for k in self._programs]


def describe_key(key: tuple[str, tuple[str, ...]]) -> str:
    """'file -Dopt ...' for a program key."""
    return f"{key[0]} {' '.join(key[1])}"


def build_program(context: Any, device: Any, name: str, source: str, options: list[str],
                  program_store: Any = None) -> Any:
    """Build one program: through program_store.build when a store is given, else from source.

    Before the first compile from source on a device, health.ensure_compilable proves (in a child process)
    that its driver survives our kernels; a build from a stored binary needs no such check.
    """
    if program_store is not None:
        return program_store.build(context, device, name, source, list(options),
                                   before_compile=lambda: ensure_compilable(device))
    import pyopencl as cl

    ensure_compilable(device)
    log.debug("building %s %s", name, " ".join(options))
    return cl.Program(context, source).build(options=list(options), devices=[device])
