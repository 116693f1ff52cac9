"""The tuner's search space: candidate local work-group sizes per launch, MACE's set extended per device type."""

from __future__ import annotations

import math
from collections.abc import Sequence

from clmace.backends.opencl.plan.variants import LwsChoice, pow2ceil

# At most this many local sizes per variant: PoCL compiles a kernel again for every new local size
# (about 0.1 s each), NVIDIA does not, so GPUs can afford a wider search.
MAX_CANDIDATES = {"cpu": 10, "gpu": 48}
GPU_GROUP = 128  # GPUs: candidates are ranked by their distance from a group of this many items
MAX_WASTE = 2.0  # skip local sizes that round the range up to more than this many times its volume


def mace_options(g: int, dim: int) -> list[int]:
    """MACE's per-dimension candidates: {g, g/4, g/8, 4, 1} (first dimension), {g, 1} (second),
    {g, g/8, g/4, 8, 4, 1} (third)."""
    if dim == 0:
        raw = [g, g // 4, g // 8, 4, 1]
    elif dim == 1:
        raw = [g, 1]
    else:
        raw = [g, g // 8, g // 4, 8, 4, 1]
    return [x for x in dict.fromkeys(raw) if x >= 1]


def gpu_options(dims: int) -> list[tuple[int, ...]]:
    """Warp-friendly shapes: 16-256 wide along dimension 0, up to 16 along dimension 1 (and 4 along 2)."""
    shapes = []
    for d0 in (16, 32, 64, 128, 256):
        for d1 in ((1, 2, 4, 8, 16) if dims > 1 else (1,)):
            for d2 in ((1, 2, 4) if dims > 2 else (1,)):
                if 32 <= d0 * d1 * d2 <= 1024:
                    shapes.append((d0, d1, d2)[:dims])
    return shapes


def _product(values: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for options in values:
        out = [prefix + (x,) for prefix in out for x in options]
    return out


def lws_candidates(gws: Sequence[int], limit: int, item_sizes: Sequence[int], is_gpu: bool,
                   exact: bool = False, first: LwsChoice | None = None) -> list[LwsChoice]:
    """Local sizes to try for a range: MACE's set (plus warp-friendly shapes on GPUs) that fit the limits,
    waste little, and (exact) divide the range; `first` leads, NULL (None: the driver picks) ends the list."""
    dims = len(gws)
    raw = _product([mace_options(int(g), d) for d, g in enumerate(gws)])
    if is_gpu:
        raw += gpu_options(dims)
    volume = math.prod(gws)
    kept = []
    for lws in dict.fromkeys(raw):
        if math.prod(lws) > limit or any(x > item_sizes[d] for d, x in enumerate(lws) if d < len(item_sizes)):
            continue
        if any(x > pow2ceil(g) for x, g in zip(lws, gws)):
            continue  # a group wider than the whole range only adds empty work-items
        if exact and any(g % x for g, x in zip(gws, lws)):
            continue
        if math.prod(-(-g // x) * x for g, x in zip(gws, lws)) > MAX_WASTE * volume:
            continue
        kept.append(lws)
    if is_gpu:
        kept.sort(key=lambda lws: (abs(math.log2(math.prod(lws)) - math.log2(GPU_GROUP)), lws))
    else:
        kept.sort(key=lambda lws: (math.prod(lws), lws))
    kept = kept[:MAX_CANDIDATES["gpu" if is_gpu else "cpu"]]
    out: list[LwsChoice] = [first] if first is not None else []
    out += [lws for lws in kept if lws != first]
    return out + [None]
