"""PoCL's LLVM CPU target: chosen from the host's CPU features and the loaded LLVM, and applied safely.

Why this exists: PoCL compiles kernels with LLVM for a CPU name (its "llvm_cpu") and links a builtins library
built for the host's widest vector ISA (a "distro" build picks the AVX-512 variant on any CPU with avx512f).
When the name does not enable that ISA, codegen aborts the process ("LLVM ERROR: Cannot select ...") or the
code crashes at launch. PoCL 3.0 takes the name from LLVM 14's host detection, which does not know Zen 4/5:
it reports `znver3` (no AVX-512) or `generic` on them. So clmace decides the name itself:

- from the host's CPU feature flags (/proc/cpuinfo lists the cpuid bits), never from PoCL's guess;
- only names the loaded LLVM knows, and only names that enable the builtins library PoCL will link;
- on distro builds that take `POCL_KERNELLIB_NAME` (Debian's 3.1: the target follows the builtins variant, so
  it is always consistent), through that variable before PoCL starts, and only to lower the variant;
- on the one build known to pick a wrong name and read no override (3.0-rc2 with LLVM 14.0.6, which pyopencl's
  wheel bundles), by replacing its llvm_cpu string, only after reading back there the name PoCL reported.
  No other build is ever written to.

`health.py` then proves the choice with a canary in a child process before the first real compile.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from clmace.core import drivers

log = logging.getLogger("clmace.opencl")

PLATFORM_NAME = "Portable Computing Language"
ENV_OVERRIDE = "CLMACE_POCL_CPU"  # the user's choice; checked by the canary like any other
KERNELLIB_ENV = "POCL_KERNELLIB_NAME"  # distro builds (Debian's 3.1) pick builtins and target by it

_SSE = frozenset({"sse2"})
_SSE41 = _SSE | {"ssse3", "sse4_1"}
_SSE42 = _SSE41 | {"sse4_2", "popcnt"}
_AVX = _SSE42 | {"avx"}
_HASWELL = _AVX | {"avx2", "fma", "bmi1", "bmi2", "movbe", "f16c", "abm"}
_SKX = _HASWELL | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
_ICX = _SKX | {"avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq",
               "gfni", "vaes", "vpclmulqdq"}
_ZEN2 = _HASWELL | {"adx", "sha_ni", "clzero", "clwb"}
_ZEN3 = _ZEN2 | {"vaes", "vpclmulqdq"}
_ZEN4 = _ZEN3 | (_ICX - _HASWELL) | {"avx512_bf16"}


@dataclass(frozen=True)
class Target:
    """One LLVM CPU name: the cpuinfo flags it enables (the host must have them all) and the oldest LLVM
    that knows it."""

    name: str
    needs: frozenset[str]
    min_llvm: int


# Best first. Named CPUs before the generic x86-64-vN levels: on Zen 5 the levels compile but run ~6x slower
# (measured with PoCL 3.0), and icelake-server is the fastest LLVM 14 name there.
TARGETS = (
    Target("znver5", _ZEN4 | {"avx512_vp2intersect", "movdiri", "movdir64b"}, 19),
    Target("znver4", _ZEN4, 16),
    Target("sapphirerapids", _ICX | {"avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}, 12),
    Target("icelake-server", _ICX, 7),
    Target("cascadelake", _SKX | {"avx512_vnni"}, 8),
    Target("skylake-avx512", _SKX, 4),
    Target("x86-64-v4", _SKX, 12),
    Target("knl", _HASWELL | {"avx512f", "avx512cd", "avx512er", "avx512pf"}, 4),
    Target("znver3", _ZEN3, 12),
    Target("znver2", _ZEN2, 9),
    Target("haswell", _HASWELL, 4),
    Target("x86-64-v3", _HASWELL, 12),
    Target("ivybridge", _AVX | {"f16c"}, 4),
    Target("sandybridge", _AVX, 4),
    Target("nehalem", _SSE42, 4),
    Target("penryn", _SSE41, 4),
    Target("x86-64-v2", _SSE42 | {"cx16", "lahf_lm"}, 12),
    Target("core2", _SSE | {"ssse3"}, 4),
    Target("x86-64", _SSE, 4),
)
# PoCL's distro builtins variants, best last (PoCL takes the last whose flags the host has), with the flags
# a target must enable to link it.
KERNELLIB_VARIANTS = (
    ("sse2", frozenset({"sse2"})),
    ("ssse3", frozenset({"sse2", "ssse3"})),
    ("sse41", frozenset({"sse2", "sse4_1"})),
    ("avx", frozenset({"sse2", "avx"})),
    ("avx_f16c", frozenset({"sse2", "avx", "f16c"})),
    ("avx_fma4", frozenset({"sse2", "avx", "fma4"})),
    ("avx2", frozenset({"sse2", "avx", "avx2"})),
    ("avx512", frozenset({"sse2", "avx512f"})),
)
# PoCL builds whose cl_device_id layout is known: (platform version must contain all of these) -> offset of
# the `char *llvm_cpu` field. Any other build is never written to.
_PATCHABLE = ((("PoCL 3.0-rc2 ", "Release", "LLVM 14.0.6"), 0x280),)
_HSTR = re.compile(r"HSTR: \w+-x86_64-\w+-linux-gnu-(\S+)$")
_LLVM = re.compile(r"LLVM (\d+)\.")


@functools.cache
def host_features() -> frozenset[str] | None:
    """The CPU feature flags of this host (cpuid bits as Linux names them), or None where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def kernellib_variant(features: frozenset[str]) -> tuple[str, frozenset[str]]:
    """The builtins variant a PoCL distro build links on a host with these features, and its flags."""
    best = KERNELLIB_VARIANTS[0]
    for variant in KERNELLIB_VARIANTS:
        if variant[1] <= features:
            best = variant
    return best


def candidates(features: frozenset[str], llvm_major: int = 12) -> list[str]:
    """LLVM CPU names that suit this host, best first: known to the LLVM, every flag present on the host,
    and enabling the builtins variant PoCL links. The last is a generic x86-64 level (the safe baseline)."""
    _, lib_flags = kernellib_variant(features)
    return [t.name for t in TARGETS
            if t.min_llvm <= llvm_major and t.needs <= features and lib_flags <= t.needs]


def is_pocl(device: Any) -> bool:
    """True for a PoCL device."""
    return device.platform.name.strip() == PLATFORM_NAME


def llvm_major(device: Any) -> int:
    """The major version of the LLVM a PoCL platform reports (0 when it does not say)."""
    match = _LLVM.search(device.platform.version)
    return int(match.group(1)) if match else 0


def reported_target(device: Any) -> str:
    """The CPU name PoCL put in its device version string at start-up ('' when it has none)."""
    match = _HSTR.search(device.version.strip())
    return match.group(1) if match else ""


@dataclass(frozen=True)
class TargetState:
    """What PoCL compiles for on one device after clmace's choice."""

    target: str  # the LLVM CPU name PoCL now compiles for
    reported: str  # the name PoCL chose itself (its device version string)
    switchable: bool  # clmace can change the target in this process (the one patchable build)


_STATES: dict[int, TargetState] = {}
_WRITTEN: dict[int, bytes] = {}  # device pointer -> the name clmace last wrote into it
_LOCK = threading.Lock()
_env_set = False


def target_info(name: str) -> Target | None:
    """The Target of an LLVM CPU name clmace knows (None for others)."""
    return next((t for t in TARGETS if t.name == name), None)


def variant_for(name: str) -> str | None:
    """The best builtins variant a target enables (None for a name clmace does not know)."""
    info = target_info(name)
    if info is None:
        return None
    return [v for v, flags in KERNELLIB_VARIANTS if flags <= info.needs][-1]


def static_problem(name: str, features: frozenset[str] | None) -> str | None:
    """Why `name` cannot work on this host, when that follows from the CPU flags alone (None: maybe it can)."""
    info = target_info(name)
    if info is None or not features:
        return None
    missing = sorted(info.needs - features)
    if missing:
        return f"this CPU lacks {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}, which {name} uses"
    variant, lib_flags = kernellib_variant(features)
    if not lib_flags <= info.needs:
        return (f"{name} does not enable {', '.join(sorted(lib_flags - info.needs))}, which PoCL's {variant} "
                f"builtins library (the one it links on this CPU) is compiled for")
    return None


def override() -> str | None:
    """The target the user asked for with CLMACE_POCL_CPU, if any."""
    return os.environ.get(ENV_OVERRIDE) or None


def wanted(llvm: int = 12, exclude: frozenset[str] = frozenset()) -> str | None:
    """The target clmace wants: the user's override unless excluded, else the best candidate for the host."""
    name = override()
    if name and name not in exclude:
        return name
    features = host_features()
    if not features:
        return None
    return next((n for n in candidates(features, llvm) if n not in exclude), None)


def prepare_environment(name: str | None) -> None:
    """Before PoCL starts: on distro builds (which derive the target from the builtins variant and honour
    POCL_KERNELLIB_NAME), ask for the variant `name` needs when it is not the one PoCL would pick itself."""
    features = host_features()
    variant = variant_for(name) if name else None
    global _env_set
    if variant and features and os.environ.get(KERNELLIB_ENV) is None:
        if variant != kernellib_variant(features)[0]:
            drivers.set_driver_variable(KERNELLIB_ENV, variant)
            _env_set = True


def environment_set_by_clmace() -> bool:
    """True when prepare_environment set POCL_KERNELLIB_NAME (not the user)."""
    return _env_set


def _patch_offset(device: Any) -> int | None:
    version = device.platform.version
    for needles, offset in _PATCHABLE:
        if all(n in version for n in needles):
            return offset
    return None


def _read_llvm_cpu(device: Any, offset: int) -> bytes | None:
    """The llvm_cpu string of a known PoCL build, or None when it is not the one PoCL reported (or we wrote)."""
    slot = ctypes.c_void_p.from_address(int(device.int_ptr) + offset)
    if not slot.value:
        return None
    current = ctypes.string_at(slot.value, 64).split(b"\0")[0]
    expected = _WRITTEN.get(int(device.int_ptr)) or reported_target(device).encode()
    return current if current and current == expected else None


def _write_llvm_cpu(device: Any, offset: int, name: str) -> None:
    raw = name.encode()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    buf = libc.malloc(len(raw) + 1)  # PoCL frees this string at shutdown: it must come from malloc
    if not buf:
        raise MemoryError("malloc failed")
    ctypes.memmove(buf, raw + b"\0", len(raw) + 1)
    ctypes.c_void_p.from_address(int(device.int_ptr) + offset).value = buf
    _WRITTEN[int(device.int_ptr)] = raw


def apply(device: Any, name: str | None) -> TargetState | None:
    """Make a PoCL device compile for `name` where this PoCL allows it; returns what holds now (None: not PoCL)."""
    if not is_pocl(device):
        return None
    with _LOCK:
        ptr = int(device.int_ptr)
        reported = reported_target(device)
        current = _WRITTEN.get(ptr, b"").decode() or reported
        offset = _patch_offset(device)
        if name and name != current and offset is not None:
            if _read_llvm_cpu(device, offset) is None:
                log.warning("PoCL's device struct does not hold the CPU name it reported (%r): this build is not "
                            "the one clmace knows; leaving its target alone", current)
                offset = None
            else:
                _write_llvm_cpu(device, offset, name)
                log.info("PoCL compiles for %s (it chose %s)", name, reported)
                current = name
        st = TargetState(current, reported, offset is not None)
        _STATES[ptr] = st
        drivers.set_compile_target(ptr, current)
        return st


def state(device: Any) -> TargetState | None:
    """What PoCL compiles for on this device, as set by `apply` (None: not applied, or not PoCL)."""
    return _STATES.get(int(device.int_ptr))
