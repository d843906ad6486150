"""One framed session per vantage: the coordinator's side.

``exec sh -s`` on one SSH exec channel, opened once after the host-key and login checks; the
session's program (session_script.py) and then every job go down its stdin; every result
comes back in frames (frames.py) that only this session's nonce opens. What a login shell,
its rc files or a banner print around them is noise: logged with ``-v``, never evidence.

One job at a time per session; a job is one level of the tree (every request of it to one
curl). The first exchange carries the program, the probe and any requests known up front
(the registry's ``GET /v2/``), so a verification costs one round trip per level: the first
exchange, the token, the root manifest, the child manifests, the blobs.

Errors are typed here: a broken frame is the link's fault (SessionGarbled, inconclusive),
never the registry's.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tofu3.errors import (
    RemoteTimeout,
    ResponseTooLarge,
    SessionGarbled,
    Tofu3Error,
    TransportError,
    WorkingDirectoryUnavailable,
)
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote import session_script
from tofu3.remote.batch import (
    FACTS_BYTES_PER_TRANSFER,
    StderrSplitter,
    TransferFacts,
    batch_config,
    facts_by_index,
)
from tofu3.remote.curl import hashed_digest, raise_for_exit
from tofu3.remote.frames import FrameReader, Job
from tofu3.remote.port import (
    BlobDownload,
    BlobRequest,
    Chained,
    FetchRequest,
    FirstRequest,
    Request,
    Response,
)
from tofu3.remote.probe import VantageFacts, parse_probe
from tofu3.remote.stream import ByteStream

log = logging.getLogger(__name__)

BLOBS_PER_JOB = 64
"""Blobs in one job at most: each has a hasher process waiting on its FIFO, and a vantage user
may be allowed only so many processes."""
_PROBE_JOB = 0
_ATTEMPTS = 3  # a job whose frames came back garbled is run at most this many times
_T = TypeVar("_T")
_NOISE_SHOWN = 300


def _request_key(request: Request) -> tuple[str, tuple[tuple[str, str], ...], bool]:
    return request.url, tuple(request.headers), request.follow_redirects


@dataclass(frozen=True)
class _Prefetched:
    response: Response | None
    error: Tofu3Error | None


class VantageSession:
    """The open session to one vantage; a Transport (port.py) for the registry protocol."""

    def __init__(
        self,
        stream: ByteStream,
        vantage: str,
        *,
        curl_args: Sequence[str] = (),
        limits: Limits = DEFAULT_LIMITS,
        host_key_fingerprint: str = "",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._name = vantage
        self._curl_args = tuple(curl_args)
        self._limits = limits
        self._fingerprint = host_key_fingerprint
        self._on_close = on_close
        self._nonce = secrets.token_hex(16)
        # Bodies up to the largest level a job may bring back; a frame over it is refused.
        self._reader = FrameReader(self._nonce, max_part=limits.level_manifest_bytes + (1 << 20))
        self._lock = threading.Lock()
        self._next_job = _PROBE_JOB + 1
        self._facts: VantageFacts | None = None
        self._prefetched: dict[tuple[str, tuple[tuple[str, str], ...], bool], _Prefetched] = {}
        self.round_trips = 0
        self._noise_lines = 0

    @property
    def vantage(self) -> str:
        """The vantage's name."""
        return self._name

    @property
    def host_key_fingerprint(self) -> str:
        """The SSH host key the vantage presented."""
        return self._fingerprint

    @property
    def facts(self) -> VantageFacts:
        """What the probe found (after ``open``)."""
        if self._facts is None:
            raise TransportError(f"vantage {self._name!r}: the session is not open")
        return self._facts

    def open(self, prefetch: Sequence[FirstRequest] = ()) -> VantageFacts:
        """Send the program, the probe and ``prefetch`` in one write; read the probe's answer
        (raises VantageRefused, WorkingDirectoryUnavailable) and keep the prefetched
        responses for the first ``fetch`` that asks for them."""
        with self._lock:
            started = time.monotonic()
            jobs = [(self._take_job(), item) for item in prefetch]
            payload = session_script.program(self._nonce, secrets.token_hex(16))
            payload += b"".join(self._first_line(number, item) for number, item in jobs)
            self._stream.send(payload)
            self.round_trips += 1
            timeout = self._limits.ssh_connect_timeout + self._limits.request_timeout
            probe = self._await(_PROBE_JOB, timeout=timeout, what="the probe")
            part = probe.parts.get("probe")
            if part is None or part.body is None or not part.intact:
                raise SessionGarbled(f"vantage {self._name!r}: the probe came back garbled")
            facts = parse_probe(part.body.decode("utf-8", "replace"), self._name)
            self._facts = facts
            log.info(
                "vantage %s: session open: curl %s, hash %s, working in %s, %s (%.0f ms)",
                self._name,
                facts.curl_version,
                facts.hash_tool,
                facts.directory,
                facts.system or "unknown system",
                (time.monotonic() - started) * 1000,
            )
            for number, first in jobs:
                item, then = first.item, first.then_if_ok
                try:
                    job = self._await(number, timeout=timeout, what=item.what)
                    if then is None:
                        (response,) = self._fetch_result(job, [item])
                    else:
                        found = self._facts_of(job, 2, item.what)
                        (response,) = self._responses(job, found, [item])
                        if 1 in found:
                            (chained,) = self._responses(job, found, [then], first=1)
                            kept = _Prefetched(chained, None)
                            self._prefetched[_request_key(then.request)] = kept
                    outcome = _Prefetched(response, None)
                except Tofu3Error as exc:
                    # Kept for the walk, which raises it as its own: an integrity error here
                    # is this vantage's evidence, not a reason to stop every vantage.
                    outcome = _Prefetched(None, exc)
                self._prefetched[_request_key(item.request)] = outcome
            return facts

    def _first_line(self, number: int, first: FirstRequest) -> bytes:
        if first.then_if_ok is None:
            return self._fetch_line(number, [first.item])
        item, then = first.item, first.then_if_ok
        headers = f'dump-header = "{number}.h"\n'
        return session_script.chain_job(
            number,
            max(item.cap, then.cap),
            self._config(number, [item]) + headers,
            self._config(number, [then], start=1),
            if_ok=True,
        )

    def _config(
        self, number: int, items: Sequence[FetchRequest], *, jobs: int = 1, start: int = 0
    ) -> str:
        """The curl config of small responses for job ``number``, transfers from ``start``."""
        return batch_config(
            [item.request for item in items],
            extra_args=self._curl_args,
            limits=self._limits,
            jobs=max(1, jobs),
            blob=False,
            cap=max(item.cap for item in items),
            prefix=f"{number}.",
            start=start,
        )

    def fetch(self, items: Sequence[FetchRequest], *, jobs: int) -> list[Response]:
        """Every item in one job; each body exactly as received (see Transport.fetch)."""
        if not items:
            return []
        if len(items) == 1:
            kept = self._prefetched.pop(_request_key(items[0].request), None)
            if kept is not None and not isinstance(kept.error, SessionGarbled):
                if kept.response is None:
                    raise kept.error or TransportError(f"vantage {self._name!r}: no answer")
                return [kept.response]
        return self._again_if_garbled(lambda: self._fetch_job(items, jobs=jobs))

    def fetch_after_token(self, token: FetchRequest, then: FetchRequest) -> Chained:
        """The token request and, with the token the vantage finds in its answer, ``then``:
        one job, one round trip less (see Transport.fetch_after_token)."""
        return self._again_if_garbled(lambda: self._chain_job(token, then))

    def _chain_job(self, token: FetchRequest, then: FetchRequest) -> Chained:
        with self._lock:
            number = self._take_job()
            started = time.monotonic()
            cap = max(token.cap, then.cap)
            self._stream.send(
                session_script.chain_job(
                    number,
                    cap,
                    self._config(number, [token]),
                    self._config(number, [then], start=1),
                )
            )
            self.round_trips += 1
            job = self._await(
                number, timeout=self._limits.request_timeout * 2 + 10, what=token.what
            )
            found = self._facts_of(job, 2, token.what)
            (response,) = self._responses(job, found, [token])
            chained: Response | None = None
            used = job.parts.get("used")
            used_text = used.body.decode("ascii", "replace").strip() if used and used.body else ""
            then_error: Tofu3Error | None = None
            if 1 in found and len(used_text) == 64:
                try:
                    (chained,) = self._responses(job, found, [then], first=1)
                except SessionGarbled:
                    raise
                except Tofu3Error as exc:
                    # Counts only if the coordinator finds the vantage used its very token.
                    then_error = exc
            log.info(
                "vantage %s: job %d: token request -> status %d%s (%.0f ms)",
                self._name,
                number,
                response.connection.status,
                f", then manifest -> status {chained.connection.status}" if chained else "",
                (time.monotonic() - started) * 1000,
            )
            used_sha256 = used_text if chained is not None or then_error is not None else None
            return Chained(response, chained, used_sha256, then_error)

    def _again_if_garbled(self, job: Callable[[], _T]) -> _T:
        """Run ``job``; run it again when its frames came back broken (output of another
        process on the vantage broke into them: the link's noise, never evidence). Every job
        is a GET of content-addressed bytes, so running it again changes nothing."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return job()
            except SessionGarbled as exc:
                if attempt == _ATTEMPTS:
                    raise
                log.info("vantage %s: %s; running the job again", self._name, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_job(self, items: Sequence[FetchRequest], *, jobs: int) -> list[Response]:
        with self._lock:
            number = self._take_job()
            started = time.monotonic()
            self._stream.send(self._fetch_line(number, items, jobs=jobs))
            self.round_trips += 1
            waves = -(-len(items) // max(1, jobs))
            job = self._await(
                number,
                timeout=self._limits.request_timeout * waves + 10,
                what=items[0].what if len(items) == 1 else f"{len(items)} requests",
            )
            responses = self._fetch_result(job, items)
            log.info(
                "vantage %s: job %d: %d request(s) -> statuses %s, %d bytes (%.0f ms)",
                self._name,
                number,
                len(items),
                ",".join(str(r.connection.status) for r in responses),
                sum(len(r.body) for r in responses),
                (time.monotonic() - started) * 1000,
            )
            return responses

    def download(
        self,
        items: Sequence[BlobRequest],
        *,
        jobs: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[BlobDownload]:
        """Every item hashed on the vantage as it streams: one job for every BLOBS_PER_JOB of
        them, one after the other (see Transport.download)."""
        downloads: list[BlobDownload] = []
        for start in range(0, len(items), BLOBS_PER_JOB):
            done = sum(d.connection.size for d in downloads)

            def progress(seen: int, done: int = done) -> None:
                if on_progress is not None:
                    on_progress(done + seen)

            chunk = items[start : start + BLOBS_PER_JOB]

            def level(
                chunk: Sequence[BlobRequest] = chunk, progress: Callable[[int], None] = progress
            ) -> list[BlobDownload]:
                return self._download_job(chunk, jobs=jobs, on_progress=progress)

            downloads.extend(self._again_if_garbled(level))
        if on_progress is not None and downloads:
            on_progress(sum(d.connection.size for d in downloads))
        return downloads

    def close(self) -> None:
        """End the session: stdin closes, and the vantage's shell ends whatever still runs
        and removes its working directory."""
        try:
            self._stream.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    # -- jobs -------------------------------------------------------------------------------

    def _take_job(self) -> int:
        number = self._next_job
        self._next_job += 1
        return number

    def _fetch_line(self, number: int, items: Sequence[FetchRequest], *, jobs: int = 1) -> bytes:
        cap = max(item.cap for item in items)
        config = self._config(number, items, jobs=jobs)
        return session_script.fetch_job(number, len(items), cap, config)

    def _fetch_result(self, job: Job, items: Sequence[FetchRequest]) -> list[Response]:
        facts = self._facts_of(job, len(items), items[0].what)
        responses = self._responses(job, facts, items)
        total = sum(len(r.body) for r in responses)
        if len(items) > 1 and total > self._limits.level_manifest_bytes:
            raise ResponseTooLarge(
                f"vantage {self._name!r}: the {len(items)} manifests of one level are over "
                f"{self._limits.level_manifest_bytes} bytes together"
            )
        return responses

    def _responses(
        self,
        job: Job,
        facts: dict[int, TransferFacts],
        items: Sequence[FetchRequest],
        first: int = 0,
    ) -> list[Response]:
        """The responses of ``items``, transfers ``first`` on, each checked against its cap
        and its own report; raises the first failure in order."""
        responses: list[Response] = []
        for index, item in enumerate(items, first):
            part = job.parts.get(f"b{index}")
            body = part.body if part is not None and part.body is not None else b""
            # First: a body over its cap (a server that announced no length, stopped by the
            # file size limit, which makes curl's own exit a write error).
            if job.oversized == f"b{index}" or len(body) > item.cap:
                raise ResponseTooLarge(
                    f"vantage {self._name!r}: {item.what} is over its {item.cap}-byte cap"
                )
            fact = facts.get(index)
            if fact is None:
                raise self._missing(job, item.what)
            raise_for_exit(fact.exit_code, fact.message, self._name, item.what)
            # A part with no frame at all (its header broken into by another process's
            # output), or bytes that are not what the vantage hashed or curl counted: the
            # link's noise, never the registry's answer (a body curl did not write has a
            # frame of its own, of length -1).
            if (
                part is None
                or not part.intact
                or (part.body is not None and len(part.body) != fact.connection.size)
            ):
                raise SessionGarbled(
                    f"vantage {self._name!r}: {item.what} came back garbled over the SSH "
                    "session (its bytes are not those the vantage received)"
                )
            responses.append(Response(connection=fact.connection, body=body))
        return responses

    def _download_job(
        self, items: Sequence[BlobRequest], *, jobs: int, on_progress: Callable[[int], None]
    ) -> list[BlobDownload]:
        facts = self.facts
        with self._lock:
            number = self._take_job()
            started = time.monotonic()
            config = batch_config(
                [item.request for item in items],
                extra_args=self._curl_args,
                limits=self._limits,
                jobs=max(1, jobs),
                blob=True,
                cap=0,
                prefix=f"{number}.",
            )
            bits = [facts.hash_bits(item.algorithm) for item in items]
            self._stream.send(session_script.download_job(number, bits, config))
            self.round_trips += 1
            job = self._await(
                number,
                # As long as one blob may take, for each wave of --jobs transfers.
                timeout=self._limits.blob_timeout * -(-len(items) // max(1, jobs)),
                # curl's parallel meter writes to stderr twice a second, even while transfers
                # stall: silence means the vantage itself froze or the link to it died.
                idle_timeout=self._limits.vantage_silence_seconds,
                on_progress=on_progress,
                what=items[0].what if len(items) == 1 else f"{len(items)} blobs",
            )
            found = self._facts_of(job, len(items), items[0].what)
            sums_part = job.parts.get("sums")
            if sums_part is None or sums_part.body is None or not sums_part.intact:
                raise SessionGarbled(f"vantage {self._name!r}: the digests came back garbled")
            sums: dict[int, bytes] = {}
            for line in sums_part.body.splitlines():
                word, _, output = line.partition(b" ")
                if word.isdigit():
                    sums[int(word)] = output
            downloads: list[BlobDownload] = []
            for index, item in enumerate(items):
                fact = found.get(index)
                if fact is None:
                    raise self._missing(job, item.what)
                raise_for_exit(fact.exit_code, fact.message, self._name, item.what)
                digest = hashed_digest(sums.get(index, b""), item.algorithm, self._name, item.what)
                downloads.append(BlobDownload(connection=fact.connection, digest=digest))
            log.info(
                "vantage %s: job %d: %d blob(s) -> statuses %s, %d bytes (%.0f ms)",
                self._name,
                number,
                len(items),
                ",".join(str(d.connection.status) for d in downloads),
                sum(d.connection.size for d in downloads),
                (time.monotonic() - started) * 1000,
            )
            return downloads

    def _facts_of(self, job: Job, count: int, what: str) -> dict[int, TransferFacts]:
        if job.status in ("nodir", "nofifo"):
            raise WorkingDirectoryUnavailable(
                f"vantage {self._name!r}: {what}: the session's working directory "
                f"{self.facts.directory if self._facts else ''} is gone or takes no FIFO"
            )
        part = job.parts.get("wo")
        if part is None or part.body is None or not part.intact:
            raise SessionGarbled(f"vantage {self._name!r}: curl's report came back garbled")
        return facts_by_index(
            part.body[: count * FACTS_BYTES_PER_TRANSFER].decode("utf-8", "replace"),
            count,
            self._name,
        )

    def _missing(self, job: Job, what: str) -> TransportError:
        """The error for a transfer curl gave no account of (curl could not start, say)."""
        status = job.status or "?"
        if status == "127":
            return TransportError(f"vantage {self._name!r}: {what}: curl not found")
        return TransportError(
            f"vantage {self._name!r}: {what}: curl reported nothing (curl exit status {status})"
        )

    def _await(
        self,
        number: int,
        *,
        timeout: float,
        what: str,
        idle_timeout: float | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Job:
        """Read until job ``number`` has ended; raise RemoteTimeout or TransportError. stderr
        is curl's meter (progress) and noise, never evidence."""
        splitter = StderrSplitter(self._limits.stderr_bytes, on_progress)
        try:
            return self._read_until_end(number, timeout, what, idle_timeout, splitter)
        except RemoteTimeout:
            # The job may still run (a transfer kept alive a byte at a time): end it and what
            # it started, so the session can go on and nothing is left behind.
            if number != _PROBE_JOB:
                with contextlib.suppress(TransportError):
                    self._stream.send(session_script.kill_line())
            raise
        finally:
            self._show_noise("stderr", splitter.text().encode())

    def _read_until_end(
        self,
        number: int,
        timeout: float,
        what: str,
        idle_timeout: float | None,
        splitter: StderrSplitter,
    ) -> Job:
        deadline = time.monotonic() + timeout
        last_heard = time.monotonic()
        while True:
            job = self._reader.jobs.get(number)
            if job is not None and job.status is not None:
                if number != _PROBE_JOB:
                    # The job's process has ended: the shell reaps it (no round trip).
                    self._stream.send(session_script.reap_line())
                return job
            now = time.monotonic()
            if now >= deadline:
                raise RemoteTimeout(
                    f"vantage {self._name!r}: {what} did not finish within {timeout:.0f} s"
                )
            if idle_timeout is not None and now - last_heard > idle_timeout:
                raise RemoteTimeout(
                    f"vantage {self._name!r}: nothing came back for {idle_timeout:.0f} s "
                    "(the vantage froze, or the connection to it is gone)"
                )
            chunk = self._stream.receive(min(deadline - now, 1.0))
            if chunk is None:
                raise self._ended(what)
            out, err = chunk
            if out or err:
                last_heard = time.monotonic()
            if out:
                self._reader.feed(out)
                self._show_noise("stdout", self._reader.take_noise())
            if err:
                splitter.feed(err)

    def _ended(self, what: str) -> TransportError:
        status = self._stream.exit_status()
        noise = self._reader.take_noise().decode("utf-8", "replace").strip()
        said = f"; it said: {noise.splitlines()[-1][:200]}" if noise else ""
        if status is None or status < 0:
            # No exit status: the vantage was killed, rebooted or cut off.
            return TransportError(
                f"vantage {self._name!r}: the SSH connection was lost during {what}{said}"
            )
        return TransportError(
            f"vantage {self._name!r}: the SSH session ended (exit status {status}) before "
            f"{what} finished{said}"
        )

    def _show_noise(self, where: str, data: bytes) -> None:
        """Log what the vantage printed outside the frames (rc files, MOTD, banners) and
        curl's own complaints."""
        if not data or not log.isEnabledFor(logging.INFO):
            return
        for raw in data.replace(b"\r", b"\n").splitlines():
            line = raw.strip()
            if not line or line.startswith(b"DL% UL%"):
                continue
            if self._noise_lines >= 50:
                return
            self._noise_lines += 1
            log.info(
                "vantage %s: noise on %s: %s",
                self._name,
                where,
                line.decode("utf-8", "replace")[:_NOISE_SHOWN],
            )
