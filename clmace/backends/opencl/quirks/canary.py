"""The device canary: build and run kernels/canary.cl on one device and check every result against NumPy.

Run it in a child process (`python -m clmace.backends.opencl.quirks.canary`, as health.py does): a driver that aborts
or crashes while compiling it takes only the child down. The child prints one JSON line with the verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

CANARY_FILE = "canary.cl"
WIDTHS = (4, 8, 16)  # vector_W kernels; scalar_math is width 1
N = 1024  # elements per input: a multiple of every width
Fn = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]
# The functions of canary.cl's scalar_math, in its order; `t` is the value OpenCL gives "true" at this width
# (1 for scalars, -1 for vectors).
FUNCTIONS: tuple[tuple[str, Fn], ...] = (
    ("fma", lambda x, y, z, t: x * y + z),
    ("mad", lambda x, y, z, t: x * y + z),
    ("exp", lambda x, y, z, t: np.exp(z)),
    ("log", lambda x, y, z, t: np.log(x)),
    ("log1p", lambda x, y, z, t: np.log1p(x)),
    ("sqrt", lambda x, y, z, t: np.sqrt(x)),
    ("pow", lambda x, y, z, t: np.power(x, y)),
    ("tanh", lambda x, y, z, t: np.tanh(z)),
    ("erf", lambda x, y, z, t: _erf(z)),
    ("fabs", lambda x, y, z, t: np.abs(z)),
    ("fmax", lambda x, y, z, t: np.maximum(x, z)),
    ("fmin", lambda x, y, z, t: np.minimum(x, z)),
    ("max", lambda x, y, z, t: np.maximum(x, z)),
    ("min", lambda x, y, z, t: np.minimum(x, z)),
    ("clamp", lambda x, y, z, t: np.clip(z, -x, y)),
    ("select", lambda x, y, z, t: np.where(z < 0, y, x)),
    ("ceil", lambda x, y, z, t: np.ceil(z)),
    ("floor", lambda x, y, z, t: np.floor(z)),
    ("rint", lambda x, y, z, t: np.rint(z)),
    ("fmod", lambda x, y, z, t: np.fmod(z, y)),
    ("sin", lambda x, y, z, t: np.sin(z)),
    ("cos", lambda x, y, z, t: np.cos(z)),
    ("tan", lambda x, y, z, t: np.tan(x)),
    ("sinh", lambda x, y, z, t: np.sinh(z)),
    ("cosh", lambda x, y, z, t: np.cosh(z)),
    ("asin", lambda x, y, z, t: np.arcsin(x)),
    ("acos", lambda x, y, z, t: np.arccos(x)),
    ("atan", lambda x, y, z, t: np.arctan(z)),
    ("atanh", lambda x, y, z, t: np.arctanh(x)),
    ("asinh", lambda x, y, z, t: np.arcsinh(z)),
    ("acosh", lambda x, y, z, t: np.arccosh(x + 1.0)),
    ("isnan+isinf", lambda x, y, z, t: np.full_like(z, t)),
    ("isless", lambda x, y, z, t: np.where(z < 0, t, 0.0) + z * 0.5),
    ("copysign", lambda x, y, z, t: np.copysign(x, z)),
)
# The functions of canary.cl's vector_W kernels, in their order (isinf stands where scalar_math has isnan+isinf).
VECTOR_FUNCTIONS = ("fma", "mad", "exp", "log", "sqrt", "tanh", "fabs", "fmax", "fmin", "max", "min", "clamp",
                    "select", "ceil", "isnan+isinf", "isless")


def _erf(z: np.ndarray) -> np.ndarray:
    from math import erf

    return np.vectorize(erf)(z)


def _round(a: np.ndarray, half: bool) -> np.ndarray:
    """The float64 values the kernel sees after storage in float32 or half."""
    return a.astype(np.float16 if half else np.float32).astype(np.float64)


def _close(got: np.ndarray, want: np.ndarray, half: bool) -> bool:
    """Equal within what float32 (or half storage, 11 bits) leaves of a short float sum."""
    tol = 4e-3 if half else 1e-5
    return bool(np.allclose(got.astype(np.float64), want, rtol=tol, atol=tol))


def check_math(got: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, width: int, half: bool) -> list[str]:
    """Mismatches of one math kernel's outputs (one row per function, in the kernel's order) against NumPy."""
    failures = []
    true = 1.0 if width == 1 else -1.0
    tol = 4e-3 if half else 2e-5  # half storage rounds the result to 11 bits
    table = dict(FUNCTIONS)
    functions = FUNCTIONS if width == 1 else [(name, table[name]) for name in VECTOR_FUNCTIONS]
    for k, (name, fn) in enumerate(functions):
        want = _round(fn(x, y, z, true), half)
        row = got[k].astype(np.float64)
        bad = ~np.isclose(row, want, rtol=tol, atol=tol)
        if bad.any():
            i = int(np.argmax(bad))
            failures.append(f"{name} at width {width}{' (half)' if half else ''}: got {row[i]!r}, "
                            f"expected {want[i]!r} (element {i}, {int(bad.sum())} wrong)")
    return failures


def run(context: Any, queue: Any, device: Any, half: bool) -> list[str]:
    """Build and run the canary kernels (fp32, or half storage); the list of what failed (empty: healthy).

    Half storage changes only loads and stores (the math stays float), so it skips scalar_math.
    """
    import pyopencl as cl

    from clmace.backends.opencl.programs import BASE_OPTIONS, kernel_source

    options = list(BASE_OPTIONS) + (["-DHALF"] if half else [])
    program = cl.Program(context, kernel_source(CANARY_FILE, common=False)).build(options=options, devices=[device])
    failures = _run_math(context, queue, program, half)
    failures += _run_stencil(context, queue, program, half)
    return failures + _run_group_sum(context, queue, program, half, device)


def _buffers(context: Any, arrays: list[np.ndarray], out_bytes: int) -> tuple[list[Any], Any]:
    import pyopencl as cl

    mf = cl.mem_flags
    ins = [cl.Buffer(context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a) for a in arrays]
    return ins, cl.Buffer(context, mf.WRITE_ONLY, out_bytes)


def _run_math(context: Any, queue: Any, program: Any, half: bool) -> list[str]:
    import pyopencl as cl

    dtype = np.float16 if half else np.float32
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(0.1, 0.9, N).astype(dtype) for _ in range(2))
    z = rng.uniform(-2.0, 2.0, N).astype(dtype)
    failures = []
    # Widest first: 16-wide vectors are where broken targets fail (the field crash was fma on float16).
    for width in tuple(sorted(WIDTHS, reverse=True)) + ((1,) if not half else ()):
        rows = len(FUNCTIONS) if width == 1 else len(VECTOR_FUNCTIONS)
        ins, out = _buffers(context, [x, y, z], rows * N * np.dtype(dtype).itemsize)
        kernel = cl.Kernel(program, "scalar_math" if width == 1 else f"vector_{width}")
        kernel(queue, (N // width,), None, *ins, out, np.int32(N))
        got = np.empty((rows, N), dtype)
        cl.enqueue_copy(queue, got, out)
        failures += check_math(got, *(a.astype(np.float64) for a in (x, y, z)), width, half)
    return failures


def _run_stencil(context: Any, queue: Any, program: Any, half: bool) -> list[str]:
    import pyopencl as cl

    dtype = np.float16 if half else np.float32
    h, w = 13, 17
    a = np.random.default_rng(1).standard_normal((h, w)).astype(dtype)
    padded = np.pad(a.astype(np.float64), 1, mode="edge")
    want = _round(sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0, half)
    failures = []
    for local in ((1, 1), (4, 4), (16, 1)):
        ins, out = _buffers(context, [a], a.nbytes)
        glob = tuple(-(-n // l) * l for n, l in zip((w, h), local))
        program.stencil(queue, glob, local, ins[0], out, np.int32(h), np.int32(w))
        got = np.empty_like(a)
        cl.enqueue_copy(queue, got, out)
        if not _close(got, want, half):
            failures.append(f"3x3 stencil with local size {local}{' (half)' if half else ''}: wrong values")
    return failures


def _run_group_sum(context: Any, queue: Any, program: Any, half: bool, device: Any) -> list[str]:
    import pyopencl as cl

    dtype = np.float16 if half else np.float32
    a = np.random.default_rng(2).uniform(-1, 1, 256).astype(dtype)
    failures = []
    for local in (16, min(64, int(device.max_work_group_size))):
        ins, out = _buffers(context, [a], (256 // local) * np.dtype(dtype).itemsize)
        program.group_sum(queue, (256,), (local,), ins[0], out, cl.LocalMemory(4 * local))
        got = np.empty(256 // local, dtype)
        cl.enqueue_copy(queue, got, out)
        want = _round(a.astype(np.float64).reshape(-1, local).sum(axis=1), half)
        if not _close(got, want, half):
            failures.append(f"local-memory sum with work-group size {local}{' (half)' if half else ''}: wrong")
    return failures


def main(argv: list[str] | None = None) -> int:
    """Child entry point: check one device with one PoCL target; print a JSON verdict."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", required=True, help="the platform's version string")
    parser.add_argument("--name", required=True, help="the device's name")
    parser.add_argument("--target", default="", help="PoCL LLVM CPU name to compile for")
    parser.add_argument("--half", action="store_true", help="check half storage instead of fp32")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    from clmace.backends.opencl.quirks import pocl_target

    if args.target:
        pocl_target.prepare_environment(args.target)
    import pyopencl as cl

    warnings.simplefilter("ignore", cl.CompilerWarning)  # the verdict is the JSON line; stderr keeps errors only
    devices = [d for p in cl.get_platforms() if p.version.strip() == args.platform for d in p.get_devices()
               if d.name.strip() == args.name]
    if not devices:
        print(json.dumps({"ok": False, "failures": [f"no device {args.name!r} on {args.platform!r} in the child"]}))
        return 0
    device = devices[0]
    st = pocl_target.apply(device, args.target or None)
    context = cl.Context([device])
    queue = cl.CommandQueue(context, device)
    failures = run(context, queue, device, args.half)
    print(json.dumps({"ok": not failures, "failures": failures, "target": st.target if st else "",
                      "seconds": round(time.perf_counter() - start, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
