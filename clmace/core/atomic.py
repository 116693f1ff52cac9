"""File I/O helpers: atomic writes (temp file in the same directory, fsync, rename, fsync of the
directory) and hashing a file in chunks."""

from __future__ import annotations

import hashlib
import os
import tempfile


def atomic_write_bytes(path: str, data: bytes, prefix: str = ".tmp-", suffix: str = "", durable: bool = True) -> None:
    """Write data to path so that readers see the old file or the new one, never a partial one.

    durable=False skips the fsyncs: for scratch files that can be written again from elsewhere (a driver's
    cache restored from the compiled-program file), where a crash may lose them but never expose half a file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:
        # Make the rename itself durable; not every filesystem lets a directory be opened for this.
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
