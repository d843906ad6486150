"""Frames: how a vantage's session sends results back among whatever else its shell prints.

Every result is one frame on the session's stdout::

    TOFU3:<NONCE>:<JOB>:<PART>:<LENGTH>:<EXTRA>\\n<exactly LENGTH bytes>\\n

NONCE is 128 random bits drawn by the coordinator for this session and sent on stdin only:
no registry, CDN or rc file can know it, so nothing they print can pass for a frame. EXTRA is
the vantage's own sha256 of a part's bytes (a body, curl's report, the digests: so bytes that
another process's output broke into are caught as a garbled frame, not taken for a different
manifest), or ``-``. LENGTH ``-1`` says a part has no body (curl wrote no file). A job ends
with the part ``end``, LENGTH 0 and EXTRA its status. Bytes outside frames are noise: kept
for ``-v``, never read as evidence.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

_HEADER_RE = re.compile(rb"^(\d+):([a-z0-9]+):(-1|\d{1,12}):([A-Za-z0-9_.-]{1,128})$")
_HEADER_LINE_MAX = 256
_NOISE_KEPT = 4096
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Part:
    """One part of a job's output."""

    name: str
    body: bytes | None  # None: no body (LENGTH -1)
    extra: str
    intact: bool = True  # False: the bytes did not end where the frame said, or hash otherwise


@dataclass
class Job:
    """The parts of one job received so far; ``status`` once it ended."""

    parts: dict[str, Part] = field(default_factory=dict)
    status: str | None = None
    oversized: str | None = None  # the first part that was over the cap (its bytes dropped)


class FrameReader:
    """Reads frames out of a session's stdout as it arrives, chunk by chunk."""

    def __init__(self, nonce: str, *, max_part: int) -> None:
        self._marker = f"TOFU3:{nonce}:".encode()
        self._max_part = max_part
        self._buffer = bytearray()
        self._pending: tuple[int, str, int, str] | None = None  # a header whose body is due
        self._skip = 0  # bytes of an oversized body still to throw away
        self.jobs: dict[int, Job] = {}
        self.noise = bytearray()
        self.noise_total = 0
        self.noise_withheld = 0  # noise not kept: it may be a broken frame's bytes
        self._broken = False

    def job(self, number: int) -> Job:
        """The job's parts so far (an empty Job if nothing came yet)."""
        return self.jobs.setdefault(number, Job())

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of stdout."""
        self._buffer += chunk
        while self._step():
            pass

    def take_noise(self) -> bytes:
        """The noise seen since the last call (at most a few KiB of it)."""
        noise = bytes(self.noise)
        self.noise.clear()
        return noise

    def _add_noise(self, data: bytes) -> None:
        if data:
            self.noise_total += len(data)
            if self._broken:
                # After a frame whose header was broken into, what follows may be that
                # frame's body (a token response, say): counted, never kept for the log.
                self.noise_withheld += len(data)
                return
            room = _NOISE_KEPT - len(self.noise)
            if room > 0:
                self.noise += data[:room]

    def _step(self) -> bool:
        if self._skip:
            taken = min(self._skip, len(self._buffer))
            del self._buffer[:taken]
            self._skip -= taken
            return bool(self._buffer) and not self._skip
        if self._pending is not None:
            return self._body()
        start = self._buffer.find(self._marker)
        if start < 0:
            # Keep a tail that may be the start of a marker cut in two.
            keep = len(self._marker) - 1
            if len(self._buffer) > keep:
                self._add_noise(bytes(self._buffer[:-keep]))
                del self._buffer[:-keep]
            return False
        self._add_noise(bytes(self._buffer[:start]))
        del self._buffer[:start]
        end = self._buffer.find(b"\n", len(self._marker))
        if end < 0 or end > _HEADER_LINE_MAX:
            # No header is that long: the marker was noise, whether or not its line has
            # ended in the bytes read so far (else the reading would depend on the chunks).
            if len(self._buffer) > _HEADER_LINE_MAX:
                self._broken = True
                self._add_noise(bytes(self._buffer[: len(self._marker)]))
                del self._buffer[: len(self._marker)]
                return True
            return False
        header = bytes(self._buffer[len(self._marker) : end])
        del self._buffer[: end + 1]
        match = _HEADER_RE.match(header)
        if match is None:
            self._broken = True
            self._add_noise(header)
            return True
        self._broken = False
        number = int(match.group(1))
        name = match.group(2).decode()
        length = int(match.group(3))
        extra = match.group(4).decode()
        if name == "end":
            self.job(number).status = extra
            return True
        if length < 0:
            self.job(number).parts[name] = Part(name, None, extra)
            return True
        if length > self._max_part:
            job = self.job(number)
            job.oversized = job.oversized or name
            self._skip = length + 1
            return True
        self._pending = (number, name, length, extra)
        return True

    def _body(self) -> bool:
        if self._pending is None:
            return False
        number, name, length, extra = self._pending
        if len(self._buffer) < length + 1:
            return False
        body = bytes(self._buffer[:length])
        terminated = self._buffer[length : length + 1] == b"\n"
        del self._buffer[: length + 1]
        self._pending = None
        intact = terminated and (
            not _HEX_RE.match(extra) or hashlib.sha256(body).hexdigest() == extra
        )
        self.job(number).parts[name] = Part(name, body, extra, intact)
        return True
