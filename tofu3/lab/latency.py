"""The lab's latency switch: a delay the lab registry adds before every response it sends (the
registry, its token service and its CDN alike), so that anyone can watch what a slow network
does to a verification (``tofu3 lab latency 100ms``; docs/lab.md, docs/performance.md).

The delay lives in ``latency.json`` in the lab directory, read on every request like the
tamper switches, so it takes effect at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

LATENCY_FILE = "latency.json"
MAX_DELAY_MS = 10_000
_DELAY_RE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?")


def parse_delay(text: str) -> int:
    """``100ms``, ``0.25s``, ``100`` (milliseconds) or ``off`` -> whole milliseconds.

    Raises ValueError for anything else, or over MAX_DELAY_MS."""
    cleaned = text.strip().lower()
    if cleaned in ("off", "none"):
        return 0
    match = _DELAY_RE.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"{text!r} is not a delay: write it as 100ms, 0.25s or off")
    value = float(match["number"]) * (1000 if match["unit"] == "s" else 1)
    if value > MAX_DELAY_MS:
        raise ValueError(f"{text!r} is over the lab's limit of {MAX_DELAY_MS} ms")
    return round(value)


def render(delay_ms: int) -> bytes:
    """What ``latency.json`` holds for ``delay_ms``."""
    return (json.dumps({"delay_ms": delay_ms}) + "\n").encode()


def read_delay_ms(path: Path) -> int:
    """The delay in ``path``; 0 when there is no file. Raises OSError or ValueError for a
    file that is not a delay."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    delay = data.get("delay_ms") if isinstance(data, dict) else None
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_MS:
        raise ValueError(f"{path} does not hold a delay")
    return delay
