"""An attacker's compiled-program file: a driver blob that is a shared object whose constructor writes a marker.

From a private directory (positive control: the attack is real) PoCL loads it and the marker appears. From a
world-writable directory the file is refused: the marker never appears, neither in that run nor in a later run
without the file, and a file signed afterwards carries none of the planted bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

from clmace.store import signing
from clmace.store.capture import pocl
from clmace.store.format import ProgramEntry, dumps, loads

KERNEL = "__kernel void scale2(__global float *a) { int i = get_global_id(0); a[i] *= 2.0f; }"
EVIL_C = textwrap.dedent("""
    #include <stdio.h>
    #include <stdlib.h>
    __attribute__((constructor)) static void planted(void) {
        const char *path = getenv("CLMACE_TEST_MARKER");
        FILE *f = path ? fopen(path, "w") : NULL;
        if (f) { fputs("planted code ran", f); fclose(f); }
    }
""")
CHILD = textwrap.dedent("""
    import json, os, sys
    import numpy as np, pyopencl as cl
    from clmace.backends.opencl.discovery import select_device
    from clmace.backends.opencl.device import build_program
    from clmace.store import ProgramStore
    search, lws, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = ProgramStore(search_paths=[search] if search else [], engine_version_="planted-1",
                         sign_key=key or None)
    dev = select_device("opencl")
    ctx = cl.Context([dev]); queue = cl.CommandQueue(ctx)
    program = build_program(ctx, dev, "scale2", sys.argv[4], ["-DPLANTED=1"], store)
    a = np.arange(64, dtype=np.float32)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
    program.scale2(queue, (64,), (lws,), buf)
    cl.enqueue_copy(queue, a, buf); queue.finish()
    saved = store.save()
    print(json.dumps({"ok": bool((a == 2 * np.arange(64)).all()), "hits": store.hits, "saved": saved}))
""")


def _child(env: dict[str, str], search: str, lws: int, sign_key: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, search, str(lws), sign_key, KERNEL], env=env,
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


@pytest.fixture()
def setup(tmp_path, device):
    """(env maker, a valid private file, the planted .so bytes)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the planted shared object")
    src = tmp_path / "evil.c"
    src.write_text(EVIL_C)
    so = tmp_path / "evil.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    marker = tmp_path / "MARKER"

    def env(name: str) -> dict[str, str]:
        cache = tmp_path / name
        cache.mkdir(mode=0o700, exist_ok=True)
        e = {k: v for k, v in os.environ.items() if k not in ("POCL_CACHE_DIR", "CLMACE_TRUSTED_KEYS")}
        e.update(CLMACE_CACHE_DIR=str(cache), CLMACE_TEST_MARKER=str(marker),
                 PYTHONPATH=os.pathsep.join([REPO_ROOT, *sys.path]))
        return e

    first = env("maker")
    proc = _child(first, "", 8)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return env, os.path.join(first["CLMACE_CACHE_DIR"], "compiled_programs.clmace"), so.read_bytes(), marker


def _craft(good: str, planted: bytes, dest: str) -> None:
    """The good file with, per program, a driver blob at the .so path of work-group size 16 (not yet compiled)."""
    pf = loads(open(good, "rb").read())
    for sec in pf.sections.values():
        for key, e in list(sec.entries.items()):
            own = pocl.program_dir(e.binary)
            assert own, "not a PoCL binary"
            blobs = {**e.driver_blobs, f"{own}/scale2/16-1-1-goffs0-smallgrid/scale2.so": planted}
            sec.entries[key] = ProgramEntry(e.name, e.build_options, e.source_hash, e.binary, blobs)
    with open(dest, "wb") as f:
        f.write(dumps(pf))
    os.chmod(dest, 0o600)


@pytest.mark.slow
def test_planted_code_runs_only_from_a_trusted_place(setup, tmp_path) -> None:
    env, good, planted, marker = setup
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    for folder in (private, shared):
        _craft(good, planted, str(folder / "p.clmace"))

    # From a world-writable directory: refused, compiled from source, right output, no marker.
    before = (shared / "p.clmace").read_bytes()
    victim = env("victim")
    proc = _child(victim, str(shared / "p.clmace"), 16)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["hits"] == 0, result
    assert "not trusted" in proc.stderr and str(shared / "p.clmace") in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()
    assert (shared / "p.clmace").read_bytes() == before
    # A later run on the same caches without the file: still no marker.
    proc = _child(victim, "", 16)
    assert proc.returncode == 0 and not marker.exists(), proc.stderr[-2000:]
    # A file signed now, from the same caches, carries none of the planted bytes.
    keys = tmp_path / "keys"
    keys.mkdir()
    signing.generate_keypair(keys / "k.pem", keys / "k.pub")
    signed_env = dict(victim, CLMACE_CACHE_DIR=str(tmp_path / "victim"))
    proc = _child(signed_env, "", 16, str(keys / "k.pem"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    signed = (tmp_path / "victim" / "compiled_programs.clmace").read_bytes()
    assert signed and planted not in signed and not marker.exists()

    # Positive control: the same crafted file from a private directory is trusted, and its blob is loaded.
    proc = _child(env("control"), str(private / "p.clmace"), 16)
    assert marker.exists(), ("the crafted blob was not loaded from a trusted file, so this test proves nothing",
                             proc.returncode, proc.stderr[-2000:])
