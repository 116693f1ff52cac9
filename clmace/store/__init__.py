"""The compiled-program store: file format, device fingerprints, locked atomic I/O and ProgramStore."""

from clmace.core.fingerprint import DeviceFingerprint
from clmace.core.paths import default_cache_dir
from clmace.store.format import ProgramEntry, ProgramFile, Section, dumps, loads
from clmace.store.io import read_file, write_file
from clmace.store.store import ProgramStore, default_program_path

__all__ = [
    "DeviceFingerprint", "ProgramEntry", "ProgramFile", "ProgramStore", "Section",
    "default_cache_dir", "default_program_path", "dumps", "loads", "read_file", "write_file",
]
