"""Shared fixtures for the hardening tests: the fuzz tool as a module, a PoCL device, tiny kernels."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

import numpy as np
import pytest

from clmace.backends.opencl.device import build_program

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = "hardening-1"
# Three tiny programs: each scales a buffer by its own factor, so a wrong program shows in the numbers.
SOURCES = {f"scale{k}": f"__kernel void scale{k}(__global float *a) {{ int i = get_global_id(0); a[i] *= {k}.0f; }}"
           for k in (2, 3, 5)}
OPTIONS = ["-DHARDENING=1"]


def load_fuzz_tool() -> ModuleType:
    """tools/fuzz_readers.py imported as a module (tools/ is not a package)."""
    name = "fuzz_readers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "tools", "fuzz_readers.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fuzz_tool() -> ModuleType:
    return load_fuzz_tool()


@pytest.fixture(scope="session")
def device():
    from tests.opencl_probe import require_device

    return require_device("pocl")


@pytest.fixture()
def ctx(device):
    import pyopencl as cl

    return cl.Context([device])


def run_scale(ctx, program, name: str) -> np.ndarray:
    """Run scale<k> over 0..15 and return the result."""
    import pyopencl as cl

    queue = cl.CommandQueue(ctx)
    a = np.arange(16, dtype=np.float32)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
    getattr(program, name)(queue, a.shape, None, buf)
    cl.enqueue_copy(queue, a, buf)
    queue.finish()
    return a


def build_and_check(store, ctx, device) -> None:
    """Build every program through `store` and check each one's numbers."""
    for name, src in SOURCES.items():
        program = build_program(ctx, device, name, src, OPTIONS, store)
        np.testing.assert_array_equal(run_scale(ctx, program, name), np.arange(16) * float(name[-1]))
