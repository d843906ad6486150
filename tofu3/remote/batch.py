"""One level of the tree for ONE curl on the vantage: every manifest of an index, or every
blob of a walk, in curl's parallel mode (at most ``jobs`` transfers at once, connections
reused), instead of one curl (and one TLS handshake) per request.

The whole config, secrets included, reaches curl on stdin only. Each transfer is one ``next``
group with its own write-out, tagged with its index, and its own output file (or FIFO) in the
session's working directory. This module renders that config and reads curl's reports: the
write-outs (which come back framed, session.py) and the parallel progress meter on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tofu3.errors import ConfigurationError, TransportError
from tofu3.limits import Limits
from tofu3.remote.curl import (
    facts_from,
    meter_size,
    quote,
    render_config,
)
from tofu3.remote.port import Connection, Request

# At the start of a line only: a response header may carry any text, but curl's header_json
# escapes newlines, so a marker a server wrote can never start a line.
_WO_RE = re.compile(r"^TOFU3-WO-(\d+) ", re.MULTILINE)
# curl's parallel meter: DL% UL% Dled Uled Xfers Live ...; Dled is every transfer's bytes.
_PARALLEL_METER_RE = re.compile(
    r"^\s*(?:\d{1,3}|--)\s+(?:\d{1,3}|--)\s+([\d.]+)([kMGTP]?)\s+[\d.]+[kMGTP]?\s+\d+\s+\d+\s"
)
FACTS_BYTES_PER_TRANSFER = 64 * 1024
"""Room in the kept stderr for each transfer's write-out (its facts and response headers)."""


def parallel_meter_bytes(update: str) -> int | None:
    """Bytes received by all transfers so far, from one update of curl's parallel meter."""
    match = _PARALLEL_METER_RE.match(update)
    if match is None:
        return None
    return meter_size(match.group(1), match.group(2))


_SHORT_OPTIONS = {"-4": "ipv4", "-6": "ipv6", "-x": "proxy", "-A": "user-agent"}


def config_lines(extra_args: Sequence[str]) -> str:
    """A vantage's ``curl_args`` (already checked against the inventory's allowlist) as curl
    config lines: options given before ``-K -`` on a command line would apply to the first
    transfer only, so each ``next`` group carries them itself."""
    lines: list[str] = []
    index = 0
    while index < len(extra_args):
        option = extra_args[index]
        name = _SHORT_OPTIONS.get(option, option.removeprefix("--"))
        if not option.startswith("-") or not name or name.startswith("-"):
            raise ConfigurationError(f"curl_args: cannot pass {option[:60]!r} to a batch")
        value = extra_args[index + 1] if index + 1 < len(extra_args) else None
        if value is not None and not value.startswith("-"):
            lines.append(f"{name} = {quote(value)}")
            index += 2
        else:
            lines.append(name)
            index += 1
    return "".join(f"{line}\n" for line in lines)


def batch_config(
    requests: Sequence[Request],
    *,
    extra_args: Sequence[str],
    limits: Limits,
    jobs: int,
    blob: bool,
    cap: int,
    prefix: str,
    start: int = 0,
) -> str:
    """The curl config for one level: parallel mode, then one ``next`` group per request,
    each writing its body to ``PREFIX INDEX`` (relative to the session's working directory)
    and its write-out, tagged INDEX, to curl's stdout; INDEX counts from ``start``.

    ``parallel-immediate``: up to ``jobs`` connections at once, as ``--jobs`` promises, rather
    than every transfer multiplexed on one HTTP/2 connection (one TCP connection's window is
    what limits a long path); idle connections are still reused."""
    extra = config_lines(extra_args)
    groups = [
        render_config(
            request,
            limits=limits,
            max_time=limits.blob_timeout if blob else limits.request_timeout,
            blob=blob,
            max_bytes=cap,
            tag=index,
        )
        + extra
        + f'output = "{prefix}{index}"\n'
        for index, request in enumerate(requests, start)
    ]
    return f"parallel\nparallel-immediate\nparallel-max = {jobs}\n" + "next\n".join(groups)


@dataclass(frozen=True)
class TransferFacts:
    connection: Connection
    exit_code: int
    message: str


class StderrSplitter:
    """Turns curl's parallel meter on stderr into progress, and keeps (capped) the other
    lines: curl's own error lines, and whatever an rc file prints, which is only noise."""

    def __init__(self, cap: int, on_progress: Callable[[int], None] | None) -> None:
        self.kept = bytearray()
        self._pending = b""
        self._line_start = True
        self._cap = cap
        self._on_progress = on_progress

    def feed(self, chunk: bytes) -> None:
        *pieces, pending = re.split(rb"([\r\n])", self._pending + chunk)
        # A line that never ends is kept only up to the cap.
        self._pending = pending[: self._cap]
        # re.split with a group puts each separator right after its piece.
        for piece, separator in zip(pieces[::2], pieces[1::2], strict=True):
            seen = parallel_meter_bytes(piece.decode("ascii", "replace"))
            keep = piece
            if seen is not None:
                if self._on_progress is not None:
                    self._on_progress(seen)
                # curl may end a meter update with its error message, on the same line.
                error = piece.find(b"curl: (")
                keep = piece[error:] if error >= 0 else b""
            elif not self._line_start:
                # Text after a carriage return does not start a line: a write-out marker
                # there is not curl's.
                keep = b" " + piece
            self._line_start = separator == b"\n"
            if keep and len(self.kept) < self._cap:
                self.kept += (keep + b"\n")[: self._cap - len(self.kept)]

    def text(self) -> str:
        return (bytes(self.kept) + self._pending).decode("utf-8", "replace")


def facts_by_index(text: str, count: int, vantage: str) -> dict[int, TransferFacts]:
    """Each transfer's facts, from the write-outs tagged with its index."""
    found: dict[int, TransferFacts] = {}
    marks = list(_WO_RE.finditer(text))
    for position, mark in enumerate(marks):
        index = int(mark.group(1))
        end = marks[position + 1].start() if position + 1 < len(marks) else len(text)
        connection, exit_code, message = facts_from(text[mark.end() : end])
        if index >= count or index in found or connection is None or exit_code is None:
            raise TransportError(f"vantage {vantage!r}: curl's report of a transfer is garbled")
        found[index] = TransferFacts(connection, exit_code, message)
    return found
