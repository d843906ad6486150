"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Used for everything that records a decision or a state: reports, lab state, keys, and for
what ``tofu3 fetch`` downloads: the download goes to a temporary name in the target's
directory and takes its name only once every byte has been checked."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    mkstemp creates the file 0600, so a key is never readable by others, not even briefly;
    the final ``mode`` is set before the file takes its name.
    """
    with atomic_file(path, mode) as handle:
        handle.write(data)


@contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Stream into a temporary file beside ``path``; when the block ends without an exception
    the file is synced and renamed to ``path`` (replacing any file there). Any exception
    deletes the temporary file, so nothing unchecked is ever left under either name."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: Path, mode: int = 0o755) -> Iterator[Path]:
    """Fill a temporary directory beside ``path``; when the block ends without an exception
    it is renamed to ``path``, which must not exist or be an empty directory. Any exception
    removes the temporary directory and everything in it."""
    temp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield temp
        _sync_tree(temp)
        os.chmod(temp, mode)
        os.rename(temp, path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _sync_tree(root: Path) -> None:
    """fsync every file and directory under ``root``, so the rename publishes whole files."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
