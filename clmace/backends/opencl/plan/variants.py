"""Tunable launches: kernel variants, the record key of a launch, and default work-group sizes per device type."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from clmace.backends.opencl.programs import BASE_OPTIONS, define_options, kernel_source

log = logging.getLogger("clmace.opencl")

# Part of every record key: bump it when the meaning of a record (variants, launch shapes) changes.
TUNE_VERSION = 1
LwsChoice = tuple[int, ...] | None  # None: the driver picks (a NULL local size)
AUTO = "auto"  # "use the heuristic local size of the device type"


@dataclass(frozen=True)
class Variant:
    """One way to compute a tunable op: a kernel function, its extra -D options, and its fixed work-group size."""

    name: str
    file: str
    kernel: str
    defines: tuple[tuple[str, Any], ...] = ()
    lws: tuple[int, ...] | None = None  # set for kernels compiled with reqd_work_group_size
    gpu: bool = False  # shaped for GPUs (many small work-items, coalesced along dimension 0)
    params: tuple[tuple[str, Any], ...] = ()  # run-time arguments that differ between variants of one program

    def options(self, base: dict[str, Any]) -> dict[str, Any]:
        """The full -D mapping of this variant's program."""
        return {**base, **dict(self.defines)}


@dataclass
class Bound:
    """A kernel with its arguments, and the global range the variant needs (before rounding to a local size)."""

    kernel: Any
    args: list[Any]
    gws: tuple[int, ...]


@dataclass
class TuneSpec:
    """What the tuner may change about one launch, and the key its record is stored under."""

    family: str
    key: str
    shape: str
    variants: list[Variant]
    build: Callable[[Variant], Bound]
    default: Variant
    default_lws: LwsChoice | str = AUTO
    exact: bool = False  # lws must divide the global range (kernels without bounds checks in every dimension)
    notes: dict[str, Any] = field(default_factory=dict)

    def variant(self, name: str) -> Variant | None:
        """The variant called name, or None."""
        return next((v for v in self.variants if v.name == name), None)


@cache
def sources_hash(files: tuple[str, ...]) -> str:
    """Short hash of the kernel sources a record depends on: an edited kernel makes old records stale."""
    h = hashlib.sha256()
    for f in files:
        h.update(kernel_source(f).encode("utf-8"))
    return h.hexdigest()[:12]


def options_text(base: dict[str, Any]) -> str:
    """The build options every variant shares, as one string."""
    return " ".join([*BASE_OPTIONS, *define_options(base)])


def record_key(family: str, files: Sequence[str], options: str, shape: str, dtype: str) -> str:
    """Record key: version, family, storage dtype, op shapes, build options common to all variants, sources."""
    return f"tune{TUNE_VERSION} {family} {dtype} {shape} {options} src={sources_hash(tuple(files))}"


def pow2ceil(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def gpu_lws(gws: Sequence[int], limit: int = 128, first: int = 64) -> tuple[int, ...]:
    """A 2-D/3-D work-group of up to `limit` items, widest along dimension 0, no wider than the range."""
    out, left = [], limit
    for d, g in enumerate(gws):
        cap = left if d == len(gws) - 1 or d > 0 else min(first, left)
        size = max(1, min(pow2ceil(g), cap))
        out.append(size)
        left = max(1, left // size)
    return tuple(out)


def default_lws(gws: Sequence[int], is_gpu: bool, every_bound: bool = True) -> tuple[int, ...]:
    """The default local size, the one rule: one work-item per group on CPUs (PoCL loops work-groups across
    cores); on GPUs a group of up to 128 items, 64 along dimension 0, spread over the other dimensions only for
    kernels that check every bound (every_bound=False: 64 x 1 x 1, as the plain launches need)."""
    if not is_gpu:
        return (1,) * len(gws)
    return gpu_lws(gws) if every_bound else (64,) + (1,) * (len(gws) - 1)


def heuristic_lws(variant: Variant, gws: Sequence[int], is_gpu: bool) -> LwsChoice:
    """A variant's local size: its fixed one, else the default rule (default_lws)."""
    if variant.lws is not None:
        return fixed_lws(variant, len(gws))
    return default_lws(gws, is_gpu)


def fixed_lws(variant: Variant, dims: int) -> tuple[int, ...]:
    """A variant's fixed work-group size for a range of `dims` dimensions (trailing 1s added or dropped)."""
    lws = tuple(variant.lws or ())
    return (lws + (1,) * dims)[:dims]


def pick_tile(variants: Sequence[Variant], rows: int, cols: int, batches: int, units: int) -> Variant:
    """The largest tiled variant that still gives every compute unit two work-groups (else the smallest)."""
    tiled = sorted((v for v in variants if dict(v.defines).get("WM")),
                   key=lambda v: -dict(v.defines)["WM"] * dict(v.defines)["WN"])
    for v in tiled:
        d = dict(v.defines)
        groups = -(-rows // (16 * d["WM"])) * -(-cols // (16 * d["WN"])) * batches
        if groups >= 2 * units:
            return v
    return tiled[-1]


# The tiled variants every tiled kernel offers (WM x WN outputs per work-item, 16x16 work-groups).
TILES = ((4, 4), (2, 4), (2, 2), (1, 1))


def tiled_variants(file: str, kernel: str, extra: tuple[tuple[str, Any], ...] = ()) -> list[Variant]:
    """tiled_<TM>x<TN> variants of a __local-memory tiled kernel."""
    return [Variant(f"tiled_{16 * wm}x{16 * wn}", file, kernel, (("WM", wm), ("WN", wn), *extra), (16, 16, 1), True)
            for wm, wn in TILES]


def recorded_choice(record: dict | None, spec: TuneSpec) -> tuple[Variant, LwsChoice | str] | None:
    """(variant, lws) of a tuned record for spec, when it names a variant that still exists (AUTO when its
    local size no longer fits the variant)."""
    if not record:
        return None
    variant = spec.variant(str(record.get("variant", "")))
    if variant is None or variant.kernel != record.get("kernel"):
        log.info("tuned record for %s names an unknown variant %r; using the default", spec.key, record.get("variant"))
        return None
    lws = record.get("lws")
    if lws is None:
        return variant, None
    lws = tuple(int(x) for x in lws)
    if variant.lws is not None and lws[:len(variant.lws)] != variant.lws[:len(lws)]:
        return variant, AUTO
    return variant, lws


def fits(device: Any, lws: Sequence[int], kernel: Any = None) -> bool:
    """True when a local size fits the device's limits (and the kernel's work-group size, when given)."""
    import pyopencl as cl

    sizes = list(device.max_work_item_sizes)
    if math.prod(lws) > int(device.max_work_group_size) or any(x < 1 for x in lws):
        return False
    if any(x > sizes[d] for d, x in enumerate(lws) if d < len(sizes)):
        return False
    if kernel is not None:
        return math.prod(lws) <= int(kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device))
    return True
