"""Who may have written a file or directory: the ownership rule of the compiled-program trust policy.

A compiled-program file is code (PoCL loads the shared objects inside its binaries; GPU drivers parse their
machine code), and so are the driver-cache directories clmace restores into. Modelled on ssh's StrictModes:
a path is trusted when no user other than the current one (or root) can have written it:

- the file (or directory) itself is owned by the current user or root and is not writable by group or others;
- so is the directory holding it;
- every directory above is owned by the current user or root, and writable by others only with the sticky bit
  (as /tmp is: others cannot rename or replace what they do not own there);
- every symlink on the way is owned by the current user or root and sits in such a directory, so nobody else
  can point it elsewhere.

On Windows ownership and modes are not checked this way: files there are trusted only when signed.
"""

from __future__ import annotations

import logging
import os
import stat

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
MAX_SYMLINKS = 40
log = logging.getLogger("clmace.store")


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (os.getuid(), 0)


def _who(st: os.stat_result) -> str:
    return f"uid {st.st_uid}"


def _mode_problem(path: str, st: os.stat_result, kind: str, sticky_ok: bool) -> str | None:
    if not _owner_ok(st):
        return f"{kind} {path} is owned by {_who(st)}, not by you (uid {os.getuid()}) or root"
    if st.st_mode & _WRITABLE_BY_OTHERS and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        who = "others" if st.st_mode & stat.S_IWOTH else "its group"
        return f"{kind} {path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _ancestors_problem(real_dir: str) -> str | None:
    """Check every directory above real_dir (itself excluded) up to the root."""
    parent = os.path.dirname(real_dir)
    while True:
        try:
            st = os.stat(parent)
        except OSError as e:
            return f"cannot check directory {parent}: {e.strerror}"
        problem = _mode_problem(parent, st, "directory", sticky_ok=True)
        if problem:
            return problem
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up


def _symlinks_problem(path: str) -> str | None:
    """Every symlink met while resolving path must be ours (or root's) in a directory only we can change."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    current = os.sep
    seen = 0
    while parts:
        part = parts.pop(0)
        candidate = os.path.join(current, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return None  # the rest does not exist: nothing to follow (the caller checks existence)
        except OSError as e:
            return f"cannot check {candidate}: {e.strerror}"
        if not stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        seen += 1
        if seen > MAX_SYMLINKS:
            return f"too many symlinks resolving {path}"
        if not _owner_ok(st):
            return f"symlink {candidate} is owned by {_who(st)}, not by you or root"
        real_parent = os.path.realpath(current)
        problem = _mode_problem(real_parent, os.stat(real_parent), "directory", sticky_ok=False)
        if problem:
            return f"symlink {candidate} can be changed by others: {problem}"
        target = os.readlink(candidate)
        parts = target.split(os.sep)[1:] + parts if os.path.isabs(target) else target.split(os.sep) + parts
        current = os.sep if os.path.isabs(target) else current
    return None


def path_problem(path: str, is_dir: bool = False) -> str | None:
    """Why a user other than you or root could have written `path` (None: nobody else could)."""
    if os.name == "nt":
        return "file ownership is not checked on Windows: only signed files are trusted there"
    problem = _symlinks_problem(path)
    if problem:
        return problem
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as e:
        return f"cannot check {real}: {e.strerror}"
    kind = "directory" if is_dir else "file"
    if is_dir != stat.S_ISDIR(st.st_mode) or (not is_dir and not stat.S_ISREG(st.st_mode)):
        return f"{real} is not a {'directory' if is_dir else 'regular file'}"
    problem = _mode_problem(real, st, kind, sticky_ok=False)
    if problem:
        return problem
    if not is_dir:
        directory = os.path.dirname(real)
        problem = _mode_problem(directory, os.stat(directory), "directory", sticky_ok=False)
        if problem:
            return problem
        return _ancestors_problem(directory)
    return _ancestors_problem(real)


def private_dir_problem(path: str) -> str | None:
    """Create `path` (mode 0700) if missing; why others could write into it (None: a private directory).

    Drivers load the code they find in their caches (PoCL the .so files of its kernel cache), so a cache
    directory someone else can write is a way into this process."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        return f"cannot create {path}: {e.strerror or e}"
    return path_problem(path, is_dir=True)


def users_cache_dir(variable: str) -> str | None:
    """The driver cache directory the user named in `variable`, when it is private; None when unset, or (with a
    warning) when others could write it: drivers load the code they find in their caches."""
    path = os.environ.get(variable)
    if not path:
        return None
    problem = private_dir_problem(path)
    if problem is None:
        return path
    log.warning(
        "%s=%s not used: %s; the driver loads the code it finds in its cache, so clmace gives it a private "
        "directory instead", variable, path, problem)
    return None


def read_trusted(path: str) -> tuple[bytes, str | None]:
    """The bytes of a file and why others could have written it (None: only you or root could).

    The checks and the read concern the same file: it is opened first, and the descriptor's identity must be
    the one the checks saw, so a file swapped in between is noticed.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        problem = path_problem(path)
        if problem is None:
            now = os.stat(os.path.realpath(path))
            if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
                problem = f"file {path} was replaced while it was being checked"
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), problem
    finally:
        os.close(fd)


def write_under(root: str, rel: str, data: bytes) -> bool:
    """Write `data` to root/rel unless the file exists; False when it did.

    Nothing on the way is followed if it is a symlink: each directory below root is created (mode 0700) or
    opened with O_NOFOLLOW and must be a directory we own; the file is written to a temp name with
    O_CREAT|O_EXCL|O_NOFOLLOW and renamed into place, so a planted link cannot redirect the write. Raises
    OSError when something on the way is not ours or not a directory.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    parts = rel.split("/")
    fd = os.open(root, flags)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            sub = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = sub
            st = os.fstat(fd)
            if st.st_uid != os.getuid() or st.st_mode & _WRITABLE_BY_OTHERS:
                raise PermissionError(f"{part} under {root} is not a private directory of ours")
        name = parts[-1]
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            return False  # already there (a symlink counts as there: it is never written through)
        except FileNotFoundError:
            pass
        tmp = f".clmace-{os.getpid()}-{name}"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as f:
                f.write(data)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)  # PoCL elsewhere never sees half a .so
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            raise
        return True
    finally:
        os.close(fd)
