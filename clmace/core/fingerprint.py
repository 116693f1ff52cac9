"""Device fingerprint: the facts that decide whether a compiled program binary fits a device (the backend
reads them from its driver, the store keys its sections by them)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import astuple, dataclass, fields

# Fields compared when explaining why a section does not fit; the device's identity comes first.
_IDENTITY = ("platform_name", "platform_vendor", "device_name", "device_vendor")


@dataclass(frozen=True)
class DeviceFingerprint:
    """Platform, device and driver identity of one OpenCL device."""

    platform_name: str
    platform_vendor: str
    platform_version: str
    device_name: str
    device_vendor: str
    device_version: str
    driver_version: str
    opencl_c_version: str
    address_bits: int

    def key(self) -> str:
        """Stable hex digest of all fields; names the section of a compiled-program file."""
        return _key(self)

    def describe(self) -> str:
        """One human-readable line: device, platform and driver."""
        return (
            f"{self.device_name} ({self.device_vendor}) on {self.platform_name}, "
            f"driver {self.driver_version}, {self.device_version}, {self.address_bits}-bit"
        )

    def is_same_device(self, other: DeviceFingerprint) -> bool:
        """True when both name the same platform and device, whatever the driver."""
        return all(getattr(self, f) == getattr(other, f) for f in _IDENTITY)

    def mismatch(self, other: DeviceFingerprint) -> str:
        """Describe every field where `other` differs from this fingerprint ('' when equal)."""
        diffs = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                diffs.append(f"{f.name} {theirs!r} != {mine!r}")
        return "; ".join(diffs)


@functools.lru_cache(maxsize=64)
def _key(fp: DeviceFingerprint) -> str:
    """The section key of a fingerprint, computed once (a plan asks for it at every launch it records)."""
    h = hashlib.sha256()
    for value in astuple(fp):
        # Length-prefix every field so ("ab", "c") and ("a", "bc") never collide.
        raw = str(value).encode("utf-8")
        h.update(len(raw).to_bytes(4, "little"))
        h.update(raw)
    return h.hexdigest()[:32]
