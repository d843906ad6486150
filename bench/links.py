"""The far case's SSH links: one delaying forwarder (bench/latency_proxy.py) per vantage in
front of its sshd, where tofu3 and the bare baseline both connect, and what the forwarders'
logs say about one run: how many connections each vantage got and how many turns (times the
client spoke again after the server had; every round trip it waited for is one).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.latency_proxy import Connection, connections
from tofu3.lab.state import LabState

SETTLE_TIMEOUT = 5.0
"""Seconds a run's connections have to close in the forwarders' logs after the run ended
(sshd closes, then the forwarder passes the end of stream on, one delay later)."""


@dataclass(frozen=True)
class FarLink:
    """One vantage's forwarder: where it listens and where it logs."""

    vantage: str
    host: str
    port: int
    log: Path


@dataclass(frozen=True)
class LinkUse:
    """What one run did on one vantage's link."""

    vantage: str
    connections: int
    turns: int


@dataclass(frozen=True)
class FarLinks:
    """Every vantage's forwarder."""

    links: tuple[FarLink, ...]

    def through(self, lab: LabState) -> LabState:
        """``lab`` with each vantage's sshd address and port replaced by its forwarder's (the
        host key, source address and everything else kept), for write_inventory."""
        by_name = {link.vantage: link for link in self.links}
        return dataclasses.replace(
            lab,
            vantages=tuple(
                dataclasses.replace(v, address=by_name[v.name].host, port=by_name[v.name].port)
                for v in lab.vantages
            ),
        )

    def used_since(self, started: float) -> list[LinkUse]:
        """Per vantage, the connections opened at or after ``started`` (a
        ``time.perf_counter()``, the same clock as the logs' on Linux) and their turns,
        waiting up to SETTLE_TIMEOUT for them to close."""
        deadline = time.perf_counter() + SETTLE_TIMEOUT
        while True:
            found = {link.vantage: _opened_since(link.log, started) for link in self.links}
            still_open = any(c.closed is None for used in found.values() for c in used)
            if not still_open or time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        return [
            LinkUse(name, len(used), sum(c.turns for c in used)) for name, used in found.items()
        ]


def _opened_since(log: Path, started: float) -> Sequence[Connection]:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [c for c in connections(text.splitlines()) if c.opened >= started]
