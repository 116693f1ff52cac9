"""The one seam between a backend and the program store: a program cache, bytes in and bytes out.

A backend's device handle asks the cache for a program binary before compiling from source, and hands it the
binary of what it compiled, as a function that reads it off the driver (which may compile to hand it out);
tuned launch parameters (small JSON-able records) travel the same way. Both are keyed by the device's
fingerprint, so one cache serves every device. `clmace.store.ProgramStore` implements it (a compiled-program
file on disk); tests and apps may pass any object with these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from clmace.core.fingerprint import DeviceFingerprint


@dataclass(frozen=True)
class ProgramKey:
    """What identifies one program: the kernel file's name, its full source and the build options."""

    name: str
    source: str
    options: tuple[str, ...]


@runtime_checkable
class ProgramCache(Protocol):
    """Compiled programs and tuned records per device; what a backend's device handle owns."""

    def get_program(self, device: DeviceFingerprint, key: ProgramKey) -> bytes | None:
        """The stored binary of this program for this device, or None (then the backend compiles it)."""

    def put_program(self, device: DeviceFingerprint, key: ProgramKey, binary: Callable[[], bytes]) -> None:
        """Keep the binary the backend compiled from source, handed over as a function that reads it off the
        driver (b'' when it gives none): reading may compile again, so call it when saving, not before."""

    def refuse_program(self, device: DeviceFingerprint, key: ProgramKey, reason: str) -> None:
        """The driver refused the binary get_program gave; the backend compiles the source instead."""

    def get_tuned(self, device: DeviceFingerprint, key: str) -> dict | None:
        """The tuned-parameter record stored under key for this device, or None."""

    def put_tuned(self, device: DeviceFingerprint, key: str, record: dict) -> None:
        """Keep a tuned-parameter record for this device."""
