"""Writing report files: atomically, whatever the verdict, with errors as tofu3 errors."""

from __future__ import annotations

from pathlib import Path

from tofu3.atomic import write_atomic
from tofu3.errors import ConfigurationError


def write_report_file(path: Path, data: bytes) -> None:
    """Write a report to ``path`` atomically; an unwritable path is a configuration error."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from None
