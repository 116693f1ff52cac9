"""Candidate local sizes: MACE's set, device limits, exact division, NULL last, deterministic order."""

from __future__ import annotations

import math

from clmace.backends.opencl.plan.variants import gpu_lws, heuristic_lws, tiled_variants
from clmace.backends.opencl.tuning.space import lws_candidates, mace_options


def test_mace_options() -> None:
    """{g, g/4, g/8, 4, 1} along the first dimension, {g, g/8, g/4, 8, 4, 1} along the third."""
    assert mace_options(64, 0) == [64, 16, 8, 4, 1]
    assert mace_options(3, 0) == [3, 4, 1]
    assert mace_options(64, 2) == [64, 8, 16, 4, 1]


def test_candidates_respect_limits() -> None:
    """Every candidate fits the work-group limit and item sizes, wastes at most 2x, and NULL comes last."""
    for gws, is_gpu in [((784, 2, 1), False), ((56, 56, 96), True), ((1000, 1), True), ((7,), False)]:
        cands = lws_candidates(gws, 256, [256, 256, 64], is_gpu)
        assert cands[-1] is None and len(cands) == len(set(cands))
        for lws in cands[:-1]:
            assert math.prod(lws) <= 256 and all(x <= s for x, s in zip(lws, [256, 256, 64]))
            assert math.prod(-(-g // x) * x for g, x in zip(gws, lws)) <= 2 * math.prod(gws)
        assert cands == lws_candidates(gws, 256, [256, 256, 64], is_gpu)


def test_exact_candidates_divide_the_range() -> None:
    """Launches whose kernels check only some bounds get local sizes that divide their range."""
    for lws in lws_candidates((64, 56, 64), 1024, [1024, 1024, 64], True, exact=True)[:-1]:
        assert all(g % x == 0 for g, x in zip((64, 56, 64), lws))


def test_first_candidate_and_heuristics() -> None:
    """The default leads; GPUs get 2-D groups of up to 128 items, CPUs one item, tiled kernels their own."""
    assert lws_candidates((100, 8), 1024, [1024, 1024], True, first=(64, 2))[0] == (64, 2)
    assert gpu_lws((12544, 2, 1)) == (64, 2, 1) and gpu_lws((7, 7, 960)) == (8, 8, 2)
    tiled = tiled_variants("conv_gpu.cl", "conv_tiled")[0]
    assert heuristic_lws(tiled, (64, 32), True) == (16, 16)
    assert heuristic_lws(tiled_variants("x", "y")[1], (10, 10, 10), False) == (16, 16, 1)
