"""Device health: before clmace compiles a real program on a device, prove in a child process that its
driver compiles and runs the canary (canary.py); remember the verdict per device fingerprint in the cache dir.

A driver bug that aborts or segfaults in codegen then kills only the child. On PoCL a failing target is
replaced by the next one that passes (pocl_target.py); when none does, or the device is not PoCL, the caller
gets a DeviceError that says what failed and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from clmace.backends.opencl.quirks import pocl_target
from clmace.core.atomic import atomic_write_bytes
from clmace.core.errors import DeviceError

log = logging.getLogger("clmace.opencl")

CHECK_FILE = "device-checks.json"
TIMEOUT_ENV = "CLMACE_CANARY_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # PoCL took 17 s to crash on the canary and minutes on whole models (measured)
_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    """The outcome of one canary run on one device and target."""

    ok: bool
    target: str
    reason: str  # '' when ok; else what failed, in one line
    seconds: float
    checked_at: float
    cached: bool = False


def _cache_dir() -> str:
    from clmace.core.paths import default_cache_dir

    return default_cache_dir()


@functools.cache
def _canary_hash() -> str:
    from clmace.backends.opencl.programs import kernel_source
    from clmace.backends.opencl.quirks.canary import CANARY_FILE

    with open(sys.modules["clmace.backends.opencl.quirks.canary"].__file__ or "", "rb") as f:
        host = f.read()
    return hashlib.sha256(kernel_source(CANARY_FILE, common=False).encode() + host).hexdigest()[:16]


def device_label(device: Any) -> str:
    """'<platform version>|<device name>': the key of per-device records that hold across targets."""
    return f"{device.platform.version.strip()}|{device.name.strip()}"


def verdict_key(device: Any, target: str) -> str:
    """The fingerprint a verdict is stored under: platform, device, driver, target and the canary itself."""
    parts = (device.platform.version, device.name, device.vendor, device.version, device.driver_version,
             target, _canary_hash())
    return hashlib.sha256("\0".join(p.strip() for p in parts).encode()).hexdigest()[:32]


class CheckFile:
    """The verdicts file in the cache dir: {"verdicts": {key: Verdict}, "failed_targets": {device: {name: why}}}."""

    def __init__(self, cache_dir: str | None = None) -> None:
        self.path = os.path.join(cache_dir or _cache_dir(), CHECK_FILE)

    def read(self) -> dict[str, Any]:
        """The file's content (empty records when it is missing or unreadable)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("version") == _VERSION:
                return data
            log.info("%s: unknown layout; starting afresh", self.path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("device checks %s unreadable (%s); checking again", self.path, e)
        return {"version": _VERSION, "verdicts": {}, "failed_targets": {}}

    def get(self, key: str) -> Verdict | None:
        """The stored verdict under key, or None."""
        raw = self.read()["verdicts"].get(key)
        try:
            return Verdict(**{**raw, "cached": True}) if raw else None
        except TypeError:
            return None

    def failed_targets(self, label: str | None = None) -> dict[str, str]:
        """Targets that failed on a device (label), or on any device when label is None: name -> reason."""
        records = self.read()["failed_targets"]
        if label is not None:
            return dict(records.get(label, {}))
        return {name: why for rec in records.values() for name, why in rec.items()}

    def put(self, key: str, verdict: Verdict, label: str) -> None:
        """Store a verdict (atomically, merged with what other processes stored meanwhile)."""
        from filelock import FileLock

        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with FileLock(self.path + ".lock", timeout=30):
                data = self.read()
                data["verdicts"][key] = {k: v for k, v in asdict(verdict).items() if k != "cached"}
                failed = data["failed_targets"].setdefault(label, {})
                if verdict.target and not verdict.ok:
                    failed[verdict.target] = verdict.reason
                elif verdict.target:
                    failed.pop(verdict.target, None)
                atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        except (OSError, TimeoutError) as e:
            log.warning("could not record the device check in %s (%s); it will run again next time", self.path, e)


def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


_ERROR_MARKS = ("LLVM ERROR", "error:", "Assertion", "Cannot select", "Segmentation", "terminate called")


def _exit_reason(returncode: int, stderr: str) -> str:
    """One line on how a canary child died: the signal or status, and the driver's own error line if any."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = next((line for line in lines if any(mark in line for mark in _ERROR_MARKS)), "")
    if returncode < 0:
        try:
            what = f"crashed with {signal.Signals(-returncode).name}"
        except ValueError:
            what = f"was killed by signal {-returncode}"
    elif returncode == 134:  # abort() under a shell-less exec still shows as -6; 134 comes through wrappers
        what = "aborted"
    else:
        what = f"exited with status {returncode}"
    return f"the driver {what} while compiling or running the canary" + (f" ({said[:300]})" if said else "")


def run_child(device: Any, target: str) -> Verdict:
    """Run the canary on `device` (compiling for `target` on PoCL) in child processes: fp32 and half storage
    side by side, each with a PoCL cache of its own that is deleted afterwards. The first failure ends both."""
    start = time.perf_counter()
    scratch = tempfile.mkdtemp(prefix="clmace-canary-")
    # PYOPENCL_NO_CACHE: a child must not read pyopencl's shared binary cache.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYOPENCL_NO_CACHE="1")
    if pocl_target.environment_set_by_clmace():
        env.pop(pocl_target.KERNELLIB_ENV, None)  # the child chooses for its own target
    cmd = [sys.executable, "-m", "clmace.backends.opencl.quirks.canary", "--platform", device.platform.version.strip(),
           "--name", device.name.strip(), "--target", target]
    children = []
    reasons: list[str] = []
    try:
        for i, extra in enumerate(([], ["--half"])):
            cache = os.path.join(scratch, f"pocl{i}")
            os.mkdir(cache, 0o700)
            out, err = (open(os.path.join(scratch, f"{i}.{kind}"), "w+") for kind in ("out", "err"))
            children.append((subprocess.Popen(cmd + extra, env=dict(env, POCL_CACHE_DIR=cache),
                                              stdin=subprocess.DEVNULL, stdout=out, stderr=err), out, err))
        pending = list(children)
        while pending and not reasons:
            if time.perf_counter() - start > _timeout():
                reasons.append(f"the canary did not finish within {_timeout():.0f} s (raise {TIMEOUT_ENV} on a "
                               "slow machine)")
                break
            for child in [c for c in pending if c[0].poll() is not None]:
                pending.remove(child)
                proc, out, err = child
                out.seek(0)
                err.seek(0)
                reasons += _child_failures(proc.returncode, out.read(), err.read(), target)
            time.sleep(0.02)
    finally:
        for proc, out, err in children:
            if proc.poll() is None:
                proc.kill()  # a failure (or the time limit) already decided the verdict
                proc.wait()
            out.close()
            err.close()
        shutil.rmtree(scratch, ignore_errors=True)
    reason = "; ".join(dict.fromkeys(reasons))[:600]
    return Verdict(not reasons, target, reason, time.perf_counter() - start, time.time())


def _child_failures(returncode: int, out: str, err: str, target: str) -> list[str]:
    """What one canary child reports as failed (empty when it passed)."""
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        return [_exit_reason(returncode, err)]
    result = json.loads(lines[-1])
    if target and result.get("target", target) != target:
        return [f"PoCL compiles for {result.get('target')!r}, not {target!r}, in the child"]
    if result.get("ok"):
        return []
    return ["wrong results: " + "; ".join(result.get("failures", []))]


def check(device: Any, target: str) -> Verdict:
    """The verdict for device and target: from the cache dir, else from a child run (then stored)."""
    checks = CheckFile()
    key = verdict_key(device, target)
    cached = checks.get(key)
    if cached is not None:
        return cached
    st = pocl_target.state(device)
    # The flags rule holds where clmace sets the name itself; a distro build derives it from its builtins variant.
    static = bool(target and st is not None and st.switchable)
    problem = pocl_target.static_problem(target, pocl_target.host_features()) if static else None
    if problem:
        verdict = Verdict(False, target, problem, 0.0, time.time())
    else:
        log.info("checking %s%s with the canary (once per driver and device)", device.name.strip(),
                 f" for target {target}" if target else "")
        verdict = run_child(device, target)
        log.info("canary on %s: %s (%.1f s)", device.name.strip(), "passed" if verdict.ok else verdict.reason,
                 verdict.seconds)
    checks.put(key, verdict, device_label(device))
    return verdict


_CHECKED: dict[int, Verdict] = {}
_LOCK = threading.RLock()


def ensure_compilable(device: Any) -> None:
    """Raise DeviceError unless the device passed the canary (switching PoCL's target when one works)."""
    ptr = int(device.int_ptr)
    with _LOCK:
        verdict = _CHECKED.get(ptr)
        if verdict is None:
            verdict = _CHECKED[ptr] = _establish(device)
    if not verdict.ok:
        raise DeviceError(verdict.reason)


def _establish(device: Any) -> Verdict:
    st = pocl_target.state(device)
    target = st.target if st else ""
    first = check(device, target)
    if first.ok:
        return first
    name = device.name.strip()
    if st is None:
        return Verdict(False, "", f"OpenCL device {name!r} fails clmace's driver check: {first.reason}. Update "
                       "its driver, or run on the CPU runtime (device='cpu', or allow_cpu_fallback=True)",
                       first.seconds, first.checked_at)
    if not st.switchable:  # a distro build: its target follows POCL_KERNELLIB_NAME, set before it starts
        return Verdict(False, target, f"PoCL on {name!r} compiles for {target}, which fails clmace's driver check "
                       f"({first.reason}); this PoCL build derives its target from its builtins variant: set "
                       f"{pocl_target.KERNELLIB_ENV} to a lower one (e.g. avx2) or unset {pocl_target.ENV_OVERRIDE}, "
                       "or run on the CPU runtime (device='cpu', or allow_cpu_fallback=True)",
                       first.seconds, first.checked_at)
    tried = {target: first.reason}
    features = pocl_target.host_features() or frozenset()
    for cand in pocl_target.candidates(features, pocl_target.llvm_major(device) or 12):
        if cand in tried:
            continue
        verdict = check(device, cand)
        tried[cand] = verdict.reason
        if not verdict.ok:
            continue
        pocl_target.apply(device, cand)
        log.warning("PoCL target %s does not work on this host (%s); compiling for %s instead",
                    target, first.reason, cand)
        return verdict
    listing = "; ".join(f"{t or 'default'}: {why}" for t, why in tried.items())
    return Verdict(False, target, f"no LLVM target works for PoCL on {name!r} on this host (tried {listing}). "
                   "Install another PoCL build (e.g. Debian's pocl-opencl-icd), or run on the CPU runtime "
                   "(device='cpu', or allow_cpu_fallback=True)", first.seconds, first.checked_at)


def initial_target(device: Any) -> str | None:
    """The target to apply when a PoCL device is first listed: clmace's choice minus targets known to fail."""
    failed = frozenset(CheckFile().failed_targets(device_label(device)))
    name = pocl_target.wanted(pocl_target.llvm_major(device) or 12, exclude=failed)
    asked = pocl_target.override()
    if asked and asked in failed and name != asked:
        log.warning("%s=%s failed clmace's driver check on this host earlier; compiling for %s instead",
                    pocl_target.ENV_OVERRIDE, asked, name)
    return name


def prepare() -> None:
    """Before the driver starts: let PoCL distro builds pick a builtins variant clmace's target needs."""
    pocl_target.prepare_environment(pocl_target.wanted(exclude=frozenset(CheckFile().failed_targets())))


def status(device: Any) -> Verdict | None:
    """The verdict known for a device now (this process, else the cache dir), without running anything."""
    ptr = int(device.int_ptr)
    if ptr in _CHECKED:
        return _CHECKED[ptr]
    st = pocl_target.state(device)
    return CheckFile().get(verdict_key(device, st.target if st else ""))


def describe(device: Any) -> str:
    """The device's driver-check verdict in a few words, for `clmace devices`."""
    verdict = status(device)
    if verdict is None:
        return "not run yet (it runs before the first compile from source; `clmace devices --check` runs it now)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(verdict.checked_at))
    return f"passed ({when})" if verdict.ok else f"failed ({when}): {verdict.reason}"
