"""PoCL's LLVM target choice from CPU flags, and the guarded write into a known PoCL build (no device needed)."""

from __future__ import annotations

import ctypes
import re
from importlib import resources

import pytest

from clmace.backends.opencl.quirks import canary, pocl_target
from clmace.backends.opencl.quirks.pocl_target import candidates, kernellib_variant, static_problem
from clmace.core import drivers

BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm"
HASWELL = BASE + " avx avx2 fma bmi1 bmi2 movbe f16c abm"
SKX = HASWELL + " adx rdseed clflushopt clwb avx512f avx512dq avx512cd avx512bw avx512vl"
ICX = SKX + " avx512ifma avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_vpopcntdq gfni vaes vpclmulqdq sha_ni"
SPR = ICX + " avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8 avx_vnni movdiri movdir64b serialize"
ZEN2 = HASWELL + " adx sha_ni clzero clwb sse4a misalignsse"
ZEN3 = ZEN2 + " vaes vpclmulqdq invpcid pku"
ZEN4 = ZEN3 + " avx512f avx512dq avx512cd avx512bw avx512vl avx512ifma avx512vbmi avx512_vbmi2 avx512_vnni " \
              "avx512_bitalg avx512_vpopcntdq avx512_bf16 gfni"
# The development machines (Zen 5 under a hypervisor, cpu family 25 as the VM reports it): /proc/cpuinfo's flags.
ZEN5_VM = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
           "ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
           "cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
           "popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm "
           "sse4a misalignsse 3dnowprefetch osvw topoext vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms "
           "invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw "
           "avx512vl xsaveopt xsavec xgetbv1 xsaves avx512_bf16 clzero xsaveerptr arat avx512vbmi umip "
           "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid fsrm")
KNL = BASE + " avx avx2 fma bmi1 bmi2 movbe f16c abm avx512f avx512cd avx512er avx512pf"


def flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


@pytest.mark.parametrize(("host", "llvm", "best"), [
    (ZEN5_VM, 14, "icelake-server"), (ZEN5_VM, 16, "znver4"), (ZEN4, 14, "icelake-server"), (ZEN4, 17, "znver4"),
    (ZEN3, 14, "znver3"), (ZEN2, 14, "znver2"), (ZEN3, 11, "znver2"),
    (SKX, 14, "skylake-avx512"), (ICX, 14, "icelake-server"), (SPR, 14, "sapphirerapids"), (SPR, 11, "icelake-server"),
    (HASWELL, 14, "haswell"), (BASE + " avx", 14, "sandybridge"), (BASE, 14, "nehalem"), ("fpu sse sse2", 14, "x86-64"),
    (KNL, 14, "knl"),
])
def test_best_target_per_host(host: str, llvm: int, best: str) -> None:
    found = candidates(flags(host), llvm)
    assert found and found[0] == best, found


@pytest.mark.parametrize("host", [ZEN5_VM, ZEN4, ZEN3, ZEN2, SKX, ICX, SPR, HASWELL, BASE, KNL])
def test_every_candidate_enables_the_builtins_pocl_links(host: str) -> None:
    """The crash in the field: znver3 (no AVX-512) with PoCL's AVX-512 builtins. No candidate may do that."""
    host_flags = flags(host)
    _, lib_flags = kernellib_variant(host_flags)
    for name in candidates(host_flags, 19):
        info = pocl_target.target_info(name)
        assert info is not None and lib_flags <= info.needs <= host_flags, name
        assert static_problem(name, host_flags) is None


def test_zen5_never_gets_the_name_llvm14_guesses() -> None:
    assert kernellib_variant(flags(ZEN5_VM))[0] == "avx512"
    assert "znver3" not in candidates(flags(ZEN5_VM), 14)
    assert "avx512f" in static_problem("znver3", flags(ZEN5_VM))
    assert "lacks" in static_problem("sapphirerapids", flags(ZEN5_VM))
    assert static_problem("some-future-cpu", flags(ZEN5_VM)) is None  # unknown names: the canary decides


@pytest.mark.parametrize(("host", "level"), [(ZEN5_VM, "x86-64-v4"), (SKX, "x86-64-v4"), (ZEN3, "x86-64-v3"),
                                              (HASWELL, "x86-64-v3"), (BASE, "x86-64-v2")])
def test_the_generic_level_of_the_builtins_variant_is_the_last_resort(host: str, level: str) -> None:
    """When every named CPU fails the canary, the x86-64-vN level that still enables PoCL's builtins is left."""
    found = candidates(flags(host), 14)
    assert found[-1] == level, found
    assert candidates(frozenset(), 14) == []  # nothing known about the CPU: PoCL's own choice stands


def test_user_override_comes_first_unless_it_failed(monkeypatch) -> None:
    monkeypatch.setattr(pocl_target, "host_features", lambda: flags(ZEN5_VM))
    monkeypatch.setenv(pocl_target.ENV_OVERRIDE, "znver3")
    assert pocl_target.wanted(14) == "znver3"
    assert pocl_target.wanted(14, exclude=frozenset({"znver3"})) == "icelake-server"
    monkeypatch.delenv(pocl_target.ENV_OVERRIDE)
    assert pocl_target.wanted(14, exclude=frozenset({"icelake-server"})) == "cascadelake"


class _FakePlatform:
    name = pocl_target.PLATFORM_NAME

    def __init__(self, version: str) -> None:
        self.version = version


_ALIVE: list[object] = []


class _FakeDevice:
    """A stand-in cl_device_id: a private buffer whose llvm_cpu slot points at a malloc'ed string."""

    def __init__(self, platform_version: str, reported: str, stored: bytes) -> None:
        self.platform = _FakePlatform(platform_version)
        self.version = f"OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-{reported}"
        self._struct = ctypes.create_string_buffer(0x400)
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        self._name = libc.malloc(64)
        ctypes.memmove(self._name, stored + b"\0", len(stored) + 1)
        ctypes.c_void_p.from_address(ctypes.addressof(self._struct) + 0x280).value = self._name
        self.int_ptr = ctypes.addressof(self._struct)
        _ALIVE.append(self)  # PoCL devices live as long as the process: no address is reused for another


    def llvm_cpu(self) -> bytes:
        slot = ctypes.c_void_p.from_address(self.int_ptr + 0x280).value
        return ctypes.string_at(slot)


KNOWN = "OpenCL 3.0 PoCL 3.0-rc2  Linux, Release, RELOC, LLVM 14.0.6, SLEEF, DISTRO, POCL_DEBUG"


def test_known_build_is_written_only_after_its_own_name_reads_back() -> None:
    dev = _FakeDevice(KNOWN, "znver3", b"znver3")
    st = pocl_target.apply(dev, "icelake-server")
    assert st is not None and (st.target, st.reported, st.switchable) == ("icelake-server", "znver3", True)
    assert dev.llvm_cpu() == b"icelake-server"
    assert drivers.compile_target(dev.int_ptr) == "icelake-server"
    assert pocl_target.apply(dev, "skylake-avx512").target == "skylake-avx512"  # switching again reads ours back
    assert dev.llvm_cpu() == b"skylake-avx512"


def test_a_struct_that_does_not_hold_the_reported_name_is_never_written() -> None:
    dev = _FakeDevice(KNOWN, "znver3", b"something-else")
    st = pocl_target.apply(dev, "icelake-server")
    assert st is not None and (st.target, st.switchable) == ("znver3", False)
    assert dev.llvm_cpu() == b"something-else"


def test_an_unknown_pocl_build_is_never_written() -> None:
    dev = _FakeDevice("OpenCL 3.0 PoCL 6.0  Linux, Release, LLVM 18.1.8", "znver3", b"znver3")
    st = pocl_target.apply(dev, "icelake-server")
    assert st is not None and (st.target, st.switchable) == ("znver3", False)
    assert dev.llvm_cpu() == b"znver3"


def _kernel_builtins() -> set[str]:
    """OpenCL builtin functions called in clmace's kernels (canary.cl excepted)."""
    folder = resources.files("clmace.backends.opencl") / "kernels"
    calls: set[str] = set()
    for item in folder.iterdir():
        if item.name.endswith(".cl") and item.name != canary.CANARY_FILE:
            text = re.sub(r"//[^\n]*", "", item.read_text(encoding="utf-8"))
            calls |= set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", text))
    return calls & OPENCL_BUILTINS


OPENCL_BUILTINS = {
    *"acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 expm1 fabs fdim floor fma "
     "fmax fmin fmod hypot ldexp lgamma log log10 log1p log2 logb mad max min mix pow pown powr remainder rint round "
     "rsqrt sign sin sinh sqrt tan tanh trunc clamp select isnan isinf isfinite isless isgreater abs dot "
     "get_global_id get_local_id get_group_id get_local_size get_global_size get_num_groups barrier "
     "vload2 vload4 vload8 vload16 vstore2 vstore4 vstore8 vstore16 vload_half vload_half2 vload_half4 vload_half8 "
     "vload_half16 vstore_half vstore_half2 vstore_half4 vstore_half8 vstore_half16 convert_float convert_int "
     "native_exp native_log native_sqrt native_recip native_divide half_exp".split(),
}


def test_the_canary_calls_every_builtin_the_kernels_call() -> None:
    folder = resources.files("clmace.backends.opencl") / "kernels"
    text = (folder / canary.CANARY_FILE).read_text(encoding="utf-8")
    covered = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", text))
    # vloadN/vstoreN/vload_halfN are reached through canary.cl's LOAD_N/STORE_N macros
    covered |= set(re.findall(r"\b(v(?:load|store)(?:_half)?\d*)\b", text))
    used = _kernel_builtins()
    assert used, "no builtin found in the kernels: the scan is broken"
    assert used <= covered, f"builtins the kernels call but the canary does not: {sorted(used - covered)}"
