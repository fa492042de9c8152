"""Replace a file so that readers and crashes see the old content or the new, never a part.

One home for the state files (base, journal header, retry requests) and the secret files (the
refresh token ``auth`` writes, the token cache): a temporary file beside the target, created
exclusively with its final mode (a link planted under its name is not followed; the mode is set
again whatever the umask did), fsynced, renamed over the target, then the directory fsynced so
the rename survives a crash too. A temporary file left by a killed run of the same pid is
removed first; on any error the new one is removed and the error raised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def write_atomically(path: Path, payload: bytes | Iterable[bytes], *, mode: int = 0o600) -> int:
    """Replace ``path`` with ``payload`` (bytes, or chunks of them). Returns the bytes written;
    raises OSError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    size = 0
    try:
        try:
            os.fchmod(fd, mode)
            for chunk in [payload] if isinstance(payload, bytes) else payload:
                write_all(fd, chunk, size)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass   # the original error is the one to report
        raise
    fsync_dir(path.parent)
    return size


def write_all(fd: int, data: bytes, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset`` (a short write is continued, not lost)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
