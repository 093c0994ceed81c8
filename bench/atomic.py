"""Atomic file writes: every output of the harness and the report goes through here.

A file is written to a temporary file in its own directory, flushed to disk (``fsync``), then
renamed over the target with ``os.replace``. A reader, or the next run after a crash, a kill, a
full disk or a quota, sees either the previous file whole or the new one whole, never a cut one;
the temporary file is removed when the write fails. The new file is created with the mode the
umask gives any new file (``0o666 & ~umask``), not ``mkstemp``'s 0600, so a colleague or a
collect run by another user on a shared file system can read it.

Torch-free and dependency-free: the job, collect, the report and the speed summary all use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "ignore_file_size_signal", "write_bytes", "write_text"]


def _reserve(path: Path) -> Path:
    """A new, empty temporary file beside ``path`` (its name ends like ``path``'s, so a writer
    that reads the format or the compression from the suffix, ``.png`` or ``.csv.gz``, still
    does), created with the umask's mode."""
    for _ in range(100):
        temp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return temp
    raise FileExistsError(f"{path.parent}: no free temporary file name")  # pragma: no cover


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: some file systems refuse a directory's fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write the file there (``df.to_parquet(temp)``,
    ``fig.savefig(temp, format="png")``). When the block ends normally the temporary file is
    synced and renamed over ``path``; when it raises (or is interrupted) it is removed and
    ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _reserve(path)
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temp, open(temp, "wb") as file:
        file.write(data)
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def ignore_file_size_signal() -> None:
    """Ignore SIGXFSZ, so that a write past the file-size limit (``ulimit -f``, a quota that
    sends it) raises ``OSError`` (EFBIG), which the atomic write cleans up after and the command
    reports in one line, instead of the signal killing the process mid-write."""
    if hasattr(signal, "SIGXFSZ"):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave it
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
