"""The private directories that level commands make in a vantage's /tmp
(tofu3/remote/batch.py). The lab's vantages share this machine's /tmp, so tests can check that
none is left behind, and clean up after a test that SIGKILLs a vantage on purpose."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

_NAME = re.compile(r"tofu3-[0-9a-f]{32}")


def level_directories() -> set[Path]:
    """Every level directory now in /tmp."""
    return {p for p in Path("/tmp").glob("tofu3-*") if _NAME.fullmatch(p.name)}


def new_level_directories(before: set[Path], wait: float = 15.0) -> set[Path]:
    """Level directories made since ``before`` that are still there after up to ``wait``
    seconds (a vantage removes its own as its command ends)."""
    deadline = time.monotonic() + wait
    while level_directories() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    return level_directories() - before


def remove_new_level_directories(before: set[Path]) -> None:
    """After a test killed a vantage with SIGKILL (nothing there could clean up)."""
    for path in level_directories() - before:
        shutil.rmtree(path, ignore_errors=True)
