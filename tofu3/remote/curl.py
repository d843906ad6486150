"""The curl half of the seam: curl runs on the vantage as ``curl -q -K -`` with its URL and
headers in a config fed on stdin, so no token ever reaches a command line.

Two shapes of request:
- ``fetch``: a small response (challenge, token, manifest) whose exact bytes come back,
  capped, for the coordinator to hash and parse itself;
- ``download_digest``: a blob hashed on the vantage as it streams (never buffered, never sent
  to the coordinator); only its digest, size and connection facts come back.

curl's own exit status is captured in POSIX sh (no pipefail) beside the hasher's output.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tofu3.digest import Digest, parse_digest
from tofu3.errors import (
    CurlFailed,
    InvalidDigest,
    ProtocolViolation,
    RemoteTimeout,
    ResponseTooLarge,
    TransportError,
)
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.remote.probe import VantageFacts
from tofu3.remote.shell import remote_sh
from tofu3.remote.ssh import SshConnection

_WO_MARK = "TOFU3-WO "
_HDR_MARK = "TOFU3-HDR "
_END_MARK = "TOFU3-END"
# A config-file string: the backslash-n pairs are curl's escapes for newlines.
_WRITE_OUT_LINE = (
    'write-out = "%{stderr}\\nTOFU3-WO %{json}\\nTOFU3-HDR %{header_json}\\nTOFU3-END\\n"'
)
_HEX_RE = re.compile(rb"\b([0-9a-f]{64}|[0-9a-f]{128})\b")
_METER_RE = re.compile(r"^\s*\d{1,3}\s+[\d.]+[kMGTP]?\s+\d{1,3}\s+([\d.]+)([kMGTP]?)\s")
_CURL_EXIT_RE = re.compile(rb"^TOFU3-CURL-EXIT (\d+)$", re.MULTILINE)
_UNITS = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}

# curl exit codes that are the server (or a path) lying, not a transport failure.
_EXIT_BAD_PROTOCOL = 1  # --proto-redir refused a redirect to another scheme
_EXIT_TOO_MANY_REDIRECTS = 47
_EXIT_FILESIZE = 63


@dataclass(frozen=True)
class Request:
    """One HTTP GET to run on a vantage. Header values may be secret: they only ever go into
    the config on stdin."""

    url: str
    headers: Sequence[tuple[str, str]] = ()
    follow_redirects: bool = True


@dataclass(frozen=True)
class Connection:
    """Connection facts curl reported for one transfer."""

    status: int
    remote_ip: str
    url_effective: str
    redirects: int
    size: int
    content_type: str | None
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The last value of a response header, by case-insensitive name."""
        values = self.headers.get(name.lower())
        return values[-1] if values else None


@dataclass(frozen=True)
class Response:
    """A small response whose exact bytes came back to the coordinator."""

    connection: Connection
    body: bytes


@dataclass(frozen=True)
class BlobDownload:
    """A blob hashed on the vantage."""

    connection: Connection
    digest: Digest


def quote(value: str) -> str:
    """A curl config string: double-quoted with backslash escapes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        # Never reached with registry data that passed validation; a guard, not a feature.
        raise ProtocolViolation("refusing a value with control characters in a curl config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    request: Request,
    *,
    limits: Limits,
    max_time: float | None,
    blob: bool,
    max_bytes: int | None = None,
    tag: int | None = None,
) -> str:
    """The curl config for ``request``; this text is written to curl's stdin only.

    ``max_bytes`` caps a small response (default: the manifest cap): curl stops at once when
    the server announces more. The coordinator enforces the same cap on what it reads, for
    servers that announce nothing. ``tag`` marks the write-out with the transfer's index in a
    batch (batch.py).
    """
    write_out = (
        _WRITE_OUT_LINE if tag is None else _WRITE_OUT_LINE.replace(_WO_MARK, f"TOFU3-WO-{tag} ")
    )
    lines = [
        "show-error",
        'proto = "=https"',
        'proto-redir = "=https"',
        f"connect-timeout = {_seconds(limits.curl_connect_timeout)}",
        write_out,
    ]
    if not blob:
        lines.append("silent")
        lines.append(f"max-filesize = {max_bytes or limits.manifest_bytes}")
    else:
        # The progress meter (on stderr) is how the coordinator sees bytes move.
        lines.append(f"speed-limit = 1\nspeed-time = {limits.blob_stall_seconds}")
    if max_time is not None:
        lines.append(f"max-time = {_seconds(max_time)}")
    if request.follow_redirects:
        # Plain --location: curl (>= 7.83) drops Authorization when the host, port or scheme
        # changes. Never --location-trusted.
        lines.append("location")
        lines.append(f"max-redirs = {limits.max_redirects}")
    lines.append(f"url = {quote(request.url)}")
    for name, value in request.headers:
        lines.append(f"header = {quote(f'{name}: {value}')}")
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    """A number of seconds as curl's config reads it: ``15``, or ``2.5``."""
    return f"{value:g}" if value != int(value) else str(int(value))


END_OF_CONFIG = "# TOFU3-END-OF-CONFIG"

# Runs first in every curl command. (1) Read curl's config, secrets included, from stdin into a
# shell variable, line by line up to the marker (``read`` never consumes past a newline, so
# nothing after the marker is swallowed). (2) Start a watchdog on the rest of stdin, which the
# coordinator keeps open: when the coordinator goes away (Ctrl-C, timeout, lost connection)
# sshd closes stdin, and the watchdog ends the whole process group, curl included.
PRELUDE = (
    "nl=$(printf '\\nx'); nl=${nl%x}; cfg=; ok=; "
    "while IFS= read -r line; do "
    f"if [ \"$line\" = '{END_OF_CONFIG}' ]; then ok=1; break; fi; "
    'cfg="$cfg$line$nl"; done; '
    '[ -n "$ok" ] || exit 97; '
    "exec 5<&0; "
    "( cat <&5 >/dev/null 2>&1; kill -TERM 0 ) >/dev/null 2>&1 & wd=$!; "
)
_EPILOGUE = 'kill "$wd" 2>/dev/null; exit "$rc"'


def _curl_command(extra_args: Sequence[str]) -> str:
    # printf is a shell builtin: the config never appears in any process's argv.
    # -q must come first: it stops curl reading ~/.curlrc, which could undo our settings.
    args = " ".join(["curl", "-q", "-K", "-", *(shlex.quote(a) for a in extra_args)])
    return f"printf '%s' \"$cfg\" | {args}"


def stdin_for(config: str) -> bytes:
    """What the coordinator writes to a curl command's stdin (and then keeps open)."""
    return f"{config}{END_OF_CONFIG}\n".encode()


def fetch_command(extra_args: Sequence[str]) -> str:
    """The remote command for a small response: body on stdout, facts on stderr."""
    return remote_sh(f"{PRELUDE}{_curl_command(extra_args)}; rc=$?; {_EPILOGUE}")


def download_command(extra_args: Sequence[str], hash_command: str) -> str:
    """The remote command for a blob: curl's body piped into the hasher, curl's exit status
    captured without pipefail (POSIX sh): the status goes out on fd 4 into $(...), the
    hasher's output on fd 3 to the real stdout."""
    curl = _curl_command(extra_args)
    return remote_sh(
        f"{PRELUDE}exec 3>&1; "
        f"st=$( {{ {{ {curl}; echo $? >&4; }} | {hash_command} >&3; }} 4>&1 ); "
        'echo "TOFU3-CURL-EXIT $st"; rc=0; '
        f"{_EPILOGUE}"
    )


def parse_facts(stderr: bytes) -> tuple[Connection | None, int | None, str]:
    """Parse curl's write-out from stderr: (connection, curl exit code, error message)."""
    text = "\n" + stderr.decode("utf-8", "replace")
    # The write-out starts a line; a marker a server put in a header value cannot (curl's
    # header_json escapes newlines).
    start = text.rfind("\n" + _WO_MARK) + 1
    if start <= 0:
        return None, None, _tail(text)
    connection, exit_code, message = facts_from(text[start + len(_WO_MARK) :])
    if connection is None:
        return None, None, _tail(text[:start])
    return connection, exit_code, message or _tail(text[:start])


def facts_from(text: str) -> tuple[Connection | None, int | None, str]:
    """The facts of one transfer from its write-out (the text after its marker): the
    connection, curl's exit code for it, and curl's error message ("" when none)."""
    wo_line, _, rest = text.partition("\n")
    headers_text = ""
    if rest.startswith(_HDR_MARK):
        headers_text = rest[len(_HDR_MARK) :].split(_END_MARK, 1)[0]
    try:
        facts = json.loads(wo_line)
        raw_headers = json.loads(headers_text) if headers_text.strip() else {}
    except json.JSONDecodeError:
        return None, None, ""
    if not isinstance(facts, dict) or not isinstance(raw_headers, dict):
        return None, None, ""
    headers = {
        str(k).lower(): tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))
        for k, vs in raw_headers.items()
    }
    content_type = facts.get("content_type")
    connection = Connection(
        status=_int(facts.get("http_code")),
        remote_ip=str(facts.get("remote_ip") or ""),
        url_effective=redact_url(str(facts.get("url_effective") or "")),
        redirects=_int(facts.get("num_redirects")),
        size=_int(facts.get("size_download")),
        content_type=content_type if isinstance(content_type, str) else None,
        headers=headers,
    )
    exit_code = facts.get("exitcode")
    message = facts.get("errormsg")
    return (
        connection,
        exit_code if isinstance(exit_code, int) else None,
        str(message) if message else "",
    )


def redact_url(url: str) -> str:
    """A URL without its query and fragment (CDN URLs carry signatures there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("curl:")]
    return (errors or lines or [""])[-1][:300]


def meter_bytes(chunk: str) -> int | None:
    """Bytes received so far, from the last update of curl's progress meter in ``chunk``."""
    for update in reversed(chunk.replace("\r", "\n").split("\n")):
        match = _METER_RE.match(update)
        if match:
            return meter_size(match.group(1), match.group(2))
    return None


def meter_size(number: str, unit: str) -> int:
    """A size as curl's progress meters print it (``120``, ``1024k``, ``1.5G``), in bytes."""
    return int(float(number) * _UNITS[unit])


def curl_exit_status(stdout: bytes) -> int | None:
    """curl's own exit status, from the ``TOFU3-CURL-EXIT N`` line a command printed last
    (a manifest body sent back before it could hold a line like it)."""
    matches = _CURL_EXIT_RE.findall(stdout)
    return int(matches[-1]) if matches else None


def hashed_digest(output: bytes, algorithm: str, vantage: str, what: str) -> Digest:
    """The digest the hash tool printed (exactly one hex string of the right length)."""
    hashes = _HEX_RE.findall(output)
    if len(hashes) != 1:
        raise TransportError(f"vantage {vantage!r}: {what}: the hash tool printed no digest")
    try:
        return parse_digest(f"{algorithm}:{hashes[0].decode()}")
    except InvalidDigest:
        raise TransportError(
            f"vantage {vantage!r}: {what}: the hash tool printed a {algorithm} digest of the "
            "wrong length"
        ) from None


def raise_for_exit(exit_code: int, message: str, vantage: str, what: str) -> None:
    """The typed error for curl's exit code of one transfer (nothing for 0)."""
    if exit_code == 0:
        return
    if exit_code == _EXIT_FILESIZE:
        raise ResponseTooLarge(f"vantage {vantage!r}: {what} over its size cap ({message})")
    if exit_code == _EXIT_TOO_MANY_REDIRECTS:
        raise ProtocolViolation(f"vantage {vantage!r}: {what}: too many redirects ({message})")
    if exit_code == _EXIT_BAD_PROTOCOL:
        raise ProtocolViolation(
            f"vantage {vantage!r}: {what}: refused a redirect or URL that is not https ({message})"
        )
    if exit_code == 28:
        raise RemoteTimeout(f"vantage {vantage!r}: {what}: curl timed out ({message})")
    raise CurlFailed(f"vantage {vantage!r}: {what}: curl failed: {message}", exit_code=exit_code)


class Curl:
    """curl on one vantage, over that vantage's one SSH connection."""

    def __init__(
        self,
        connection: SshConnection,
        facts: VantageFacts,
        extra_args: Sequence[str],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.ssh = connection
        self.facts = facts
        self.extra_args = tuple(extra_args)
        self.limits = limits
        self.vantage = connection.vantage.name

    def fetch(self, request: Request, *, cap: int, what: str) -> Response:
        """GET ``request`` and bring back at most ``cap`` bytes of body, exactly as received."""
        config = render_config(
            request,
            limits=self.limits,
            max_time=self.limits.request_timeout,
            blob=False,
            max_bytes=cap,
        )
        result = self.ssh.run(
            fetch_command(self.extra_args),
            stdin_for(config),
            close_stdin=False,
            timeout=self.limits.request_timeout + 10,
            stdout_cap=cap,
        )
        if result.stdout_truncated:
            raise ResponseTooLarge(f"vantage {self.vantage!r}: {what} is over its {cap}-byte cap")
        connection, exit_code, message = parse_facts(result.stderr)
        if connection is None or exit_code is None:
            raise TransportError(
                f"vantage {self.vantage!r}: {what}: curl reported nothing "
                f"(exit status {result.exit_status}): {message or 'no output'}"
            )
        raise_for_exit(exit_code, message, self.vantage, what)
        return Response(connection=connection, body=result.stdout)

    def download_digest(
        self,
        request: Request,
        *,
        algorithm: str,
        what: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> BlobDownload:
        """Download on the vantage, hashing as it streams; return the digest it computed."""
        config = render_config(request, limits=self.limits, max_time=None, blob=True)
        hash_command = self.facts.hash_command(algorithm)

        def progress(chunk: bytes) -> None:
            if on_progress is not None:
                seen = meter_bytes(chunk.decode("ascii", "replace"))
                if seen is not None:
                    on_progress(seen)

        result = self.ssh.run(
            download_command(self.extra_args, hash_command),
            stdin_for(config),
            close_stdin=False,
            timeout=self.limits.blob_timeout,
            stdout_cap=64 * 1024,
            on_stderr=progress,
            # curl's progress meter writes to stderr every second, even while a transfer
            # stalls: silence means the vantage itself froze or the link to it died.
            idle_timeout=self.limits.vantage_silence_seconds,
        )
        connection, exit_code, message = parse_facts(result.stderr)
        shell_exit = curl_exit_status(result.stdout)
        code = shell_exit if shell_exit is not None else exit_code
        if connection is None or code is None:
            raise TransportError(
                f"vantage {self.vantage!r}: {what}: curl reported nothing "
                f"(exit status {result.exit_status}): {message or 'no output'}"
            )
        raise_for_exit(code, message, self.vantage, what)
        digest = hashed_digest(result.stdout, algorithm, self.vantage, what)
        if on_progress is not None:
            on_progress(connection.size)
        return BlobDownload(connection=connection, digest=digest)
