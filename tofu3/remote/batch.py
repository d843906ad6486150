"""One level of the tree in one SSH command: every manifest of an index, or every blob of a
walk, goes to ONE curl on the vantage, in curl's parallel mode (at most ``jobs`` transfers at
once, connections reused), instead of one SSH command (and one TLS handshake) per request.

As for single requests (curl.py), the whole curl config, secrets included, arrives on stdin
only, and the watchdog ends everything when the coordinator goes away. Each transfer is one
``next`` group of the config with its own write-out, tagged with its index.

- Manifests: each body goes to a file in a private directory on the vantage (mode 700, a
  random name, removed when the command ends), and comes back framed by its length.
- Blobs: each body goes through a FIFO in that directory into its own hasher: never to disk,
  never to the coordinator. Only the digests come back. curl's parallel progress meter (one
  line for all transfers) is how the coordinator sees bytes move.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tofu3.digest import parse_digest
from tofu3.errors import ConfigurationError, InvalidDigest, ResponseTooLarge, TransportError
from tofu3.limits import Limits
from tofu3.remote.curl import (
    PRELUDE,
    BlobDownload,
    Connection,
    Curl,
    Request,
    Response,
    facts_from,
    quote,
    raise_for_exit,
    render_config,
    stdin_for,
)
from tofu3.remote.shell import remote_sh

# At the start of a line only: a response header may carry any text, but curl's header_json
# escapes newlines, so a marker a server wrote can never start a line.
_WO_RE = re.compile(r"^TOFU3-WO-(\d+) ", re.MULTILINE)
_BODY_RE = re.compile(rb"TOFU3-BODY (\d+) +(\d+|-)\n")
_CURL_EXIT_RE = re.compile(rb"^TOFU3-CURL-EXIT (\d+)$", re.MULTILINE)
_SUM_RE = re.compile(rb"^TOFU3-SUM (\d+) (.*)$", re.MULTILINE)
_HEX_RE = re.compile(r"\b([0-9a-f]{64}|[0-9a-f]{128})\b")
# curl's parallel meter: DL% UL% Dled Uled Xfers Live ...; Dled is every transfer's bytes.
_PARALLEL_METER_RE = re.compile(
    r"^\s*(?:\d{1,3}|--)\s+(?:\d{1,3}|--)\s+([\d.]+)([kMGTP]?)\s+[\d.]+[kMGTP]?\s+\d+\s+\d+\s"
)
_EXIT_NO_DIRECTORY = 96
"""The level's command could not make its private directory or a FIFO in it."""
_UNITS = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_FACTS_BYTES_PER_TRANSFER = 64 * 1024
"""Room in the kept stderr for each transfer's write-out (its facts and response headers)."""


def parallel_meter_bytes(update: str) -> int | None:
    """Bytes received by all transfers so far, from one update of curl's parallel meter."""
    match = _PARALLEL_METER_RE.match(update)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def private_directory() -> str:
    """A fresh directory name on the vantage. Not a predictable temp-file name: 128 random
    bits, and ``mkdir -m 700`` fails on one that already exists (or a symlink), so nobody
    else on the vantage can have prepared it. Absolute, because curl's config names each
    output file before the command runs; every Linux vantage has /tmp."""
    return f"/tmp/tofu3-{secrets.token_hex(16)}"  # noqa: S108


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
    directory: str,
) -> str:
    """The curl config for one level: parallel mode, then one ``next`` group per request,
    each writing its body to ``directory``/INDEX and its facts to stderr tagged INDEX.

    ``parallel-immediate``: up to ``jobs`` connections at once, as ``--jobs`` promises, rather
    than every transfer multiplexed on one HTTP/2 connection (one TCP connection's window is
    what limits a long path); idle connections are still reused."""
    extra = config_lines(extra_args)
    groups = [
        render_config(
            request,
            limits=limits,
            max_time=None if blob else limits.request_timeout,
            blob=blob,
            max_bytes=cap,
            tag=index,
        )
        + extra
        + f'output = "{directory}/{index}"\n'
        for index, request in enumerate(requests)
    ]
    return f"parallel\nparallel-immediate\nparallel-max = {jobs}\n" + "next\n".join(groups)


def _setup(directory: str) -> str:
    # The directory goes away when the command ends, however it ends (the watchdog's TERM
    # included).
    return (
        f'd={shlex.quote(directory)}; mkdir -m 700 "$d" || exit {_EXIT_NO_DIRECTORY}; '
        "trap 'rm -rf \"$d\"' EXIT; trap 'exit 143' HUP INT TERM PIPE; "
    )


# The vantage's curl_args are in each group of the config (config_lines), not here.
_CURL = "printf '%s' \"$cfg\" | curl -q -K -; rc=$?; "


def _curl_with_file_limit(cap: int) -> str:
    """curl for manifests, unable to write a file much over ``cap``: curl before 8.4 does not
    apply ``max-filesize`` to a body sent without a length, and would fill the vantage's /tmp
    with whatever a server sends. ``ulimit -f`` counts 512-byte blocks (1024 in some shells:
    a looser bound, never a tighter one); with SIGXFSZ ignored, curl's write fails instead,
    and the file left over the cap is refused by name."""
    blocks = cap // 512 + 2
    return f"( trap '' XFSZ; ulimit -f {blocks}; printf '%s' \"$cfg\" | curl -q -K - ); rc=$?; "


def fetch_level_command(count: int, directory: str, cap: int) -> str:
    """Manifests: curl writes each body to a file; then each comes back as
    ``TOFU3-BODY INDEX LENGTH`` and its bytes (``-`` for a body curl never wrote)."""
    emit = (
        f'i=0; while [ "$i" -lt {count} ]; do '
        'if [ -f "$d/$i" ]; then printf \'TOFU3-BODY %s %s\\n\' "$i" "$(wc -c <"$d/$i")"; '
        'cat "$d/$i"; else printf \'TOFU3-BODY %s -\\n\' "$i"; fi; i=$((i+1)); done; '
    )
    return remote_sh(
        f"{PRELUDE}{_setup(directory)}{_curl_with_file_limit(cap)}{emit}"
        'echo "TOFU3-CURL-EXIT $rc"; kill "$wd" 2>/dev/null; exit 0'
    )


def download_level_command(hash_commands: Sequence[str], directory: str) -> str:
    """Blobs: one FIFO and one hasher per blob, then curl. A FIFO curl never opened (a
    transfer that failed before its body) is opened and closed here, so its hasher ends."""
    # rel: open and close every FIFO made so far, so that a hasher still waiting for a
    # writer (its transfer failed before the first byte, or the level stopped half-way)
    # sees an empty stream and ends.
    release = 'rel() { for f in "$d"/*; do [ -p "$f" ] && { exec 7<>"$f"; exec 7<&-; }; done; }; '
    hashers = "".join(
        f'mkfifo "$d/{i}" || {{ rel; exit {_EXIT_NO_DIRECTORY}; }}; '
        f'{command} <"$d/{i}" >"$d/{i}.sum" 2>/dev/null & p="$p $!"; '
        for i, command in enumerate(hash_commands)
    )
    count = len(hash_commands)
    emit = (
        f'i=0; while [ "$i" -lt {count} ]; do '
        'printf \'TOFU3-SUM %s %s\\n\' "$i" "$(cat "$d/$i.sum" 2>/dev/null)"; '
        "i=$((i+1)); done; "
    )
    return remote_sh(
        f"{PRELUDE}{_setup(directory)}{release}p=; {hashers}{_CURL}rel; wait $p; {emit}"
        'echo "TOFU3-CURL-EXIT $rc"; kill "$wd" 2>/dev/null; exit 0'
    )


@dataclass(frozen=True)
class _Facts:
    connection: Connection
    exit_code: int
    message: str


class _StderrSplitter:
    """Keeps curl's write-outs from stderr and turns meter updates into progress: a long
    download prints a meter line twice a second, which must not push the facts out."""

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


def _facts_by_index(text: str, count: int, vantage: str) -> dict[int, _Facts]:
    """Each transfer's facts, from the write-outs tagged with its index."""
    found: dict[int, _Facts] = {}
    marks = list(_WO_RE.finditer(text))
    for position, mark in enumerate(marks):
        index = int(mark.group(1))
        end = marks[position + 1].start() if position + 1 < len(marks) else len(text)
        connection, exit_code, message = facts_from(text[mark.end() : end])
        if index >= count or index in found or connection is None or exit_code is None:
            raise TransportError(f"vantage {vantage!r}: curl's report of a transfer is garbled")
        found[index] = _Facts(connection, exit_code, message)
    return found


def _missing(
    vantage: str, what: str, exit_status: int, stdout: bytes, stderr: str
) -> TransportError:
    """The error for a transfer curl gave no account of."""
    if exit_status == _EXIT_NO_DIRECTORY:
        return TransportError(
            f"vantage {vantage!r}: {what}: could not make a private directory (or a FIFO in "
            "it) in /tmp on the vantage for this level's downloads: is /tmp writable there?"
        )
    curl_exit = _CURL_EXIT_RE.search(stdout)
    status = (
        f"curl exit status {int(curl_exit.group(1))}" if curl_exit else f"exit status {exit_status}"
    )
    # Only curl's own error lines: the rest of stderr holds response headers.
    errors = [
        line[line.find("curl: (") :].strip()
        for line in stderr.replace("\r", "\n").splitlines()
        if "curl: (" in line
    ]
    detail = errors[-1][:300] if errors else "no error message"
    return TransportError(
        f"vantage {vantage!r}: {what}: curl reported nothing ({status}): {detail}"
    )


def fetch_level(
    curl: Curl,
    items: Sequence[tuple[Request, str]],
    *,
    cap: int,
    jobs: int,
) -> list[Response]:
    """GET every request (at most ``cap`` bytes each) in one SSH command; each body exactly
    as received. Raises the error of the first item (in order) that failed."""
    if not items:
        return []
    connection, extra_args, limits = curl.ssh, curl.extra_args, curl.limits
    vantage = connection.vantage.name
    directory = private_directory()
    config = batch_config(
        [request for request, _ in items],
        limits=limits,
        jobs=jobs,
        extra_args=extra_args,
        blob=False,
        cap=cap,
        directory=directory,
    )
    count = len(items)
    splitter = _StderrSplitter(limits.stderr_bytes + count * _FACTS_BYTES_PER_TRANSFER, None)
    waves = -(-count // jobs)
    total_cap = min(count * cap, limits.level_manifest_bytes)
    result = connection.run(
        fetch_level_command(count, directory, cap),
        stdin_for(config),
        close_stdin=False,
        timeout=limits.request_timeout * waves + 10,
        stdout_cap=total_cap + count * 64 + 64,
        on_stderr=splitter.feed,
    )
    whats = [what for _, what in items]
    together = ResponseTooLarge(
        f"vantage {vantage!r}: the {count} manifests of one level are over {total_cap} bytes "
        "together"
    )
    if result.stdout_truncated:
        _refuse_oversized(result.stdout, whats, cap, vantage)
        raise together
    stderr = splitter.text()
    facts = _facts_by_index(stderr, count, vantage)
    bodies = _bodies(result.stdout, whats, cap, vantage)
    if sum(len(body) for body in bodies.values()) > total_cap:
        raise together
    responses: list[Response] = []
    for index, (_, what) in enumerate(items):
        fact = facts.get(index)
        if fact is None:
            raise _missing(vantage, what, result.exit_status, result.stdout, stderr)
        raise_for_exit(fact.exit_code, fact.message, vantage, what)
        body = bodies.get(index)
        if body is None:
            body = b""  # curl wrote no file: an empty body
        responses.append(Response(connection=fact.connection, body=body))
    return responses


def _frames(stdout: bytes) -> Iterator[tuple[int, int | None, int]]:
    """The frames in order: (index, length or None for no body, where the body starts).
    Walked frame by frame, so nothing inside a body is ever read as a frame."""
    position = 0
    while True:
        match = _BODY_RE.match(stdout, position)
        if match is None:
            return
        length = None if match.group(2) == b"-" else int(match.group(2))
        yield int(match.group(1)), length, match.end()
        position = match.end() + (length or 0)


def _refuse_oversized(stdout: bytes, whats: Sequence[str], cap: int, vantage: str) -> None:
    """Name the first manifest over its cap (a server that announced no length: curl could
    not refuse it up front)."""
    for index, length, _ in _frames(stdout):
        if length is not None and length > cap and index < len(whats):
            raise ResponseTooLarge(
                f"vantage {vantage!r}: {whats[index]} is over its {cap}-byte cap"
            )


def _bodies(stdout: bytes, whats: Sequence[str], cap: int, vantage: str) -> dict[int, bytes]:
    """The framed bodies: ``TOFU3-BODY INDEX LENGTH``, then exactly LENGTH bytes."""
    _refuse_oversized(stdout, whats, cap, vantage)
    bodies: dict[int, bytes] = {}
    end = 0
    for index, length, start in _frames(stdout):
        if index >= len(whats) or index in bodies:
            raise TransportError(f"vantage {vantage!r}: the manifests came back garbled")
        end = start + (length or 0)
        if length is None:
            continue
        bodies[index] = stdout[start:end]
        if len(bodies[index]) != length:
            raise TransportError(f"vantage {vantage!r}: a manifest came back cut short")
    if not stdout[end:].startswith(b"TOFU3-CURL-EXIT "):
        raise TransportError(f"vantage {vantage!r}: the manifests came back garbled")
    return bodies


def download_level(
    curl: Curl,
    items: Sequence[tuple[Request, str, str]],
    *,
    jobs: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[BlobDownload]:
    """Download every ``(request, algorithm, what)`` on the vantage in one SSH command,
    hashing each as it streams; ``on_progress`` gets the bytes received by all of them so
    far. Raises the error of the first item (in order) that failed."""
    if not items:
        return []  # (the command's `wait` would otherwise wait for its own watchdog)
    connection, facts, extra_args, limits = curl.ssh, curl.facts, curl.extra_args, curl.limits
    vantage = connection.vantage.name
    directory = private_directory()
    config = batch_config(
        [request for request, _, _ in items],
        limits=limits,
        jobs=jobs,
        extra_args=extra_args,
        blob=True,
        cap=0,
        directory=directory,
    )
    count = len(items)
    splitter = _StderrSplitter(limits.stderr_bytes + count * _FACTS_BYTES_PER_TRANSFER, on_progress)
    result = connection.run(
        download_level_command(
            [facts.hash_command(algorithm) for _, algorithm, _ in items], directory
        ),
        stdin_for(config),
        close_stdin=False,
        # As long as one blob may take, for each wave of --jobs transfers.
        timeout=limits.blob_timeout * -(-count // jobs),
        stdout_cap=count * 1024 + 64 * 1024,
        on_stderr=splitter.feed,
        # curl's parallel meter writes to stderr twice a second, even while transfers stall:
        # silence means the vantage itself froze or the link to it died.
        idle_timeout=limits.vantage_silence_seconds,
    )
    if result.stdout_truncated:
        raise TransportError(f"vantage {vantage!r}: the level's digests came back garbled")
    stderr = splitter.text()
    found = _facts_by_index(stderr, count, vantage)
    sums = {
        int(m.group(1)): m.group(2).decode("ascii", "replace")
        for m in _SUM_RE.finditer(result.stdout)
    }
    downloads: list[BlobDownload] = []
    for index, (_, algorithm, what) in enumerate(items):
        fact = found.get(index)
        if fact is None:
            raise _missing(vantage, what, result.exit_status, result.stdout, stderr)
        raise_for_exit(fact.exit_code, fact.message, vantage, what)
        hashes = _HEX_RE.findall(sums.get(index, ""))
        if len(hashes) != 1:
            raise TransportError(f"vantage {vantage!r}: {what}: the hash tool printed no digest")
        try:
            digest = parse_digest(f"{algorithm}:{hashes[0]}")
        except InvalidDigest:
            raise TransportError(
                f"vantage {vantage!r}: {what}: the hash tool printed a {algorithm} digest of "
                "the wrong length"
            ) from None
        downloads.append(BlobDownload(connection=fact.connection, digest=digest))
    if on_progress is not None:
        on_progress(sum(d.connection.size for d in downloads))
    return downloads
