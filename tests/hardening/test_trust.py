"""The trust policy: a compiled-program file is used only when signed by a trusted key or when nobody but you or
root can have written it; a refused file is left alone; driver caches are never written through others' hands."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from conftest import ENGINE, SOURCES, build_and_check

from clmace.store import ProgramStore, signing, trust
from clmace.store.capture import pocl

OTHER_UID = 54321


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch) -> None:
    monkeypatch.delenv("CLMACE_TRUSTED_KEYS", raising=False)


def new_store(path, **kw) -> ProgramStore:
    return ProgramStore(path=str(path), engine_version_=ENGINE, manage_pocl_cache=False, **kw)


def private_dir(path) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return str(path)


@pytest.fixture()
def good_file(tmp_path, ctx, device) -> str:
    """A valid file with SOURCES' programs, in a private directory."""
    path = os.path.join(private_dir(tmp_path / "mine"), "p.clmace")
    store = new_store(path)
    build_and_check(store, ctx, device)
    assert store.save()
    return path


def place(src: str, folder, mode: int, name: str = "p.clmace") -> str:
    """Copy src into folder (created, then given mode)."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, mode)
    dest = os.path.join(str(folder), name)
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o600)
    return dest


def use(path: str, ctx, device, caplog, **kw) -> ProgramStore:
    """A store reading `path` read-only from the search path, every program built and checked through it."""
    store = new_store(os.path.join(os.path.dirname(path), "unused-default.clmace"), search_paths=[path],
                      read_only=True, **kw)
    with caplog.at_level(logging.WARNING, logger="clmace.store"):
        build_and_check(store, ctx, device)
    return store


def refused(store: ProgramStore, caplog, path: str, why: str) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and path in r.getMessage()]
    assert len(warnings) == 1 and "not trusted" in warnings[0] and why in warnings[0], warnings
    assert (store.hits, store.misses) == (0, len(SOURCES))  # compiled from source, numbers checked


def test_private_file_is_used_without_a_warning(good_file, ctx, device, caplog) -> None:
    store = use(good_file, ctx, device, caplog)
    assert (store.hits, store.misses) == (len(SOURCES), 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_world_writable_directory_is_refused_and_the_file_left_alone(good_file, tmp_path, ctx, device,
                                                                     caplog) -> None:
    path = place(good_file, tmp_path / "shared", 0o777)
    before = open(path, "rb").read()
    store = use(path, ctx, device, caplog)
    refused(store, caplog, path, "is writable by others")
    # Even as the store's own writable file it is neither written nor replaced.
    writer = new_store(path)
    build_and_check(writer, ctx, device)
    assert writer.save() is False
    assert open(path, "rb").read() == before and os.listdir(os.path.dirname(path)) == ["p.clmace"]


def test_group_writable_file_is_refused(good_file, tmp_path, ctx, device, caplog) -> None:
    path = place(good_file, tmp_path / "grp", 0o700)
    os.chmod(path, 0o620)
    store = use(path, ctx, device, caplog)
    refused(store, caplog, path, "writable by its group")


def test_file_owned_by_another_user_is_refused(good_file, tmp_path, ctx, device, caplog, monkeypatch) -> None:
    path = place(good_file, tmp_path / "theirs", 0o700)
    if os.getuid() == 0:
        os.chown(path, OTHER_UID, -1)
    else:  # a non-root test run cannot give a file away: make os.stat say so
        real_stat = os.stat

        def fake_stat(p, *a, **kw):
            st = real_stat(p, *a, **kw)
            if os.path.realpath(p) == os.path.realpath(path):
                return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, OTHER_UID, *st[5:]))
            return st
        monkeypatch.setattr(os, "stat", fake_stat)
    store = use(path, ctx, device, caplog)
    refused(store, caplog, path, f"owned by uid {OTHER_UID}")


def test_symlink_into_a_world_writable_directory_is_refused(good_file, tmp_path, ctx, device, caplog) -> None:
    target = place(good_file, tmp_path / "open", 0o777)
    link = os.path.join(private_dir(tmp_path / "links"), "p.clmace")
    os.symlink(target, link)
    store = use(link, ctx, device, caplog)
    refused(store, caplog, link, "is writable by others")


def test_symlink_owned_by_another_user_is_refused(good_file, tmp_path, ctx, device, caplog) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can create a symlink owned by another user")
    link = os.path.join(private_dir(tmp_path / "links2"), "p.clmace")
    os.symlink(good_file, link)
    os.lchown(link, OTHER_UID, -1)
    store = use(link, ctx, device, caplog)
    refused(store, caplog, link, f"symlink {link} is owned by uid {OTHER_UID}")


def test_signed_file_in_a_world_writable_directory_is_accepted(tmp_path, ctx, device, caplog) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    signing.generate_keypair(keys / "k.pem", keys / "k.pub")
    path = os.path.join(private_dir(tmp_path / "signer"), "p.clmace")
    store = new_store(path, sign_key=str(keys / "k.pem"))
    build_and_check(store, ctx, device)
    assert store.save()
    shared = place(path, tmp_path / "pub", 0o777)
    store = use(shared, ctx, device, caplog, trusted_keys=[str(keys / "k.pub")])
    assert (store.hits, store.misses) == (len(SOURCES), 0)
    # With trusted keys set, an unsigned file is refused even in a private directory.
    unsigned = os.path.join(private_dir(tmp_path / "mine2"), "u.clmace")
    writer = new_store(unsigned)
    build_and_check(writer, ctx, device)
    assert writer.save()
    caplog.clear()
    store = use(unsigned, ctx, device, caplog, trusted_keys=[str(keys / "k.pub")])
    assert (store.hits, store.misses) == (0, len(SOURCES))


def empty_file(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    open(path, "wb").close()
    os.chmod(path, 0o600)
    return path


def test_path_rules_without_a_device(tmp_path) -> None:
    d = private_dir(tmp_path / "d")
    f = empty_file(d, "f")
    assert trust.path_problem(f) is None
    os.chmod(f, 0o606)
    assert "writable by others" in trust.path_problem(f)
    os.chmod(f, 0o600)
    os.chmod(d, 0o770)
    assert "writable by its group" in trust.path_problem(f)
    os.chmod(d, 0o700)
    assert trust.path_problem(d, is_dir=True) is None
    assert "not a directory" in trust.path_problem(f, is_dir=True)
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)  # like /tmp: others cannot replace what is ours inside it
    g = empty_file(private_dir(sticky / "mine"), "g")
    assert trust.path_problem(g) is None
    os.chmod(sticky, 0o777)
    assert "writable by others" in trust.path_problem(g)


def test_restore_stays_in_its_program_directory_and_never_follows_links(tmp_path) -> None:
    root = private_dir(tmp_path / "cache")
    own, other = "AB/" + "C" * 37, "XY/" + "Z" * 37
    binary = pocl.POCLBIN_MAGIC + b"\0" * 8 + own.encode() + b"\0"
    assert pocl.program_dir(binary) == own
    outside = private_dir(tmp_path / "outside")
    os.makedirs(os.path.join(root, own, "k"), mode=0o700)
    os.symlink(outside, os.path.join(root, own, "k", "link"))  # a planted link inside our own directory
    blobs = {f"{own}/k/a.so": b"mine", f"{other}/k/b.so": b"someone else's program",
             f"{own}/k/link/c.so": b"through the link"}
    assert pocl.restore(blobs, binary, root) == 1
    assert open(os.path.join(root, own, "k", "a.so"), "rb").read() == b"mine"
    assert not os.path.exists(os.path.join(root, other)) and os.listdir(outside) == []


def test_a_shared_pocl_cache_dir_is_replaced_by_a_private_one(tmp_path) -> None:
    import subprocess
    import sys

    shared = tmp_path / "shared-pocl"
    shared.mkdir()
    os.chmod(shared, 0o777)
    code = ("import os; from clmace.store.capture import pocl; "
            "s = pocl.configure_cache_dir(os.environ['CLMACE_CACHE_DIR']); print(s.path, s.managed)")
    env = dict(os.environ, POCL_CACHE_DIR=str(shared), CLMACE_CACHE_DIR=private_dir(tmp_path / "cc"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, managed = proc.stdout.split()
    assert path != str(shared) and managed == "True"
    assert f"POCL_CACHE_DIR={shared} not used" in proc.stderr and "writable by others" in proc.stderr
    assert trust.path_problem(path, is_dir=True) is None
