"""A level of manifests in one SSH command (see batch.py): curl writes each body to a file in
the level's private directory, under a file size limit; then each comes back framed by its
length, for the coordinator to hash itself."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from tofu3.errors import ResponseTooLarge, TransportError
from tofu3.remote.batch import (
    FACTS_BYTES_PER_TRANSFER,
    StderrSplitter,
    batch_config,
    facts_by_index,
    missing_report,
    private_directory,
    setup_command,
)
from tofu3.remote.curl import PRELUDE, Curl, Request, Response, raise_for_exit, stdin_for
from tofu3.remote.shell import remote_sh

_BODY_RE = re.compile(rb"TOFU3-BODY (\d+) +(\d+|-)\n")


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
        f"{PRELUDE}{setup_command(directory)}{_curl_with_file_limit(cap)}{emit}"
        'echo "TOFU3-CURL-EXIT $rc"; kill "$wd" 2>/dev/null; exit 0'
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
    splitter = StderrSplitter(limits.stderr_bytes + count * FACTS_BYTES_PER_TRANSFER, None)
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
    facts = facts_by_index(stderr, count, vantage)
    bodies = _bodies(result.stdout, whats, cap, vantage)
    if sum(len(body) for body in bodies.values()) > total_cap:
        raise together
    responses: list[Response] = []
    for index, (_, what) in enumerate(items):
        fact = facts.get(index)
        if fact is None:
            raise missing_report(vantage, what, result.exit_status, result.stdout, stderr)
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
