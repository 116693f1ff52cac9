"""The one OpenCL availability probe of the test suite: a skip that says why, or, under
CLMACE_REQUIRE_OPENCL=1 (what .ci/run sets), a failure that says why."""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

REQUIRE_ENV = "CLMACE_REQUIRE_OPENCL"
POCL = "Portable Computing Language"


def required() -> bool:
    """True when a missing or broken OpenCL device must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV) == "1"


@functools.cache
def _probe(spec: str) -> tuple[Any, str | None]:
    """(device, None) when `spec` names a device that passes clmace's driver check, else (None, reason)."""
    try:
        import pyopencl  # noqa: F401
    except ImportError as exc:
        return None, f"pyopencl cannot be imported ({exc})"
    from clmace.backends.opencl.discovery import select_device
    from clmace.backends.opencl.quirks.health import ensure_compilable

    try:
        device = _pocl_device() if spec == "pocl" else select_device(spec)
        ensure_compilable(device)
    except Exception as exc:  # noqa: BLE001 - the reason is reported by the skip or failure, never swallowed
        return None, f"{type(exc).__name__}: {exc}"
    return device, None


def _pocl_device() -> Any:
    from clmace.backends.opencl.discovery import list_devices, select_device
    from clmace.core.errors import DeviceError

    for info in list_devices():
        if info.platform == POCL:
            return select_device(f"opencl:{info.index}")
    raise DeviceError("no PoCL device is listed (install pocl-binary-distribution)")


def unavailable_reason(spec: str = "opencl") -> str | None:
    """Why the OpenCL device `spec` ('opencl' or 'pocl') cannot run tests here (None: it can)."""
    return _probe(spec)[1]


def require_device(spec: str = "opencl") -> Any:
    """The pyopencl device for `spec`; skips the calling test with the reason, or fails under the requirement."""
    device, reason = _probe(spec)
    if reason is None:
        return device
    skip_or_fail(f"no usable OpenCL {'PoCL ' if spec == 'pocl' else ''}device: {reason}")


def skip_or_fail(message: str) -> None:
    """Skip the calling test with `message`, or fail it when CLMACE_REQUIRE_OPENCL=1."""
    if required():
        pytest.fail(f"{REQUIRE_ENV}=1 and {message}", pytrace=False)
    pytest.skip(message)
