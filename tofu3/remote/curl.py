"""curl on a vantage: the config it reads on stdin (``curl -q -K -``, so no token ever
reaches a command line), and the reading of what it reports.

Each transfer's config group writes its body to a file or FIFO in the session's working
directory and its write-out (tagged with the transfer's index) to curl's stdout, which the
session sends back framed (session.py); nothing is read from curl's stderr but its progress
meter.
"""

from __future__ import annotations

import json
import re
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
from tofu3.limits import Limits
from tofu3.remote.port import Connection, Request

_WO_MARK = "TOFU3-WO "
_HDR_MARK = "TOFU3-HDR "
_END_MARK = "TOFU3-END"
# A config-file string: the backslash-n pairs are curl's escapes for newlines.
_WRITE_OUT_LINE = 'write-out = "\\nTOFU3-WO %{json}\\nTOFU3-HDR %{header_json}\\nTOFU3-END\\n"'
_HEX_RE = re.compile(rb"\b([0-9a-f]{64}|[0-9a-f]{128})\b")
_UNITS = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}

# curl exit codes that are the server (or a path) lying, not a transport failure.
_EXIT_BAD_PROTOCOL = 1  # --proto-redir refused a redirect to another scheme
_EXIT_TOO_MANY_REDIRECTS = 47
_EXIT_FILESIZE = 63


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


def meter_size(number: str, unit: str) -> int:
    """A size as curl's progress meters print it (``120``, ``1024k``, ``1.5G``), in bytes."""
    return int(float(number) * _UNITS[unit])


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
