"""A level of blobs in one SSH command (see batch.py): each blob streams from curl through a
FIFO into its own hasher, never to disk; only the digests come back."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from tofu3.errors import TransportError
from tofu3.remote.batch import (
    CURL_COMMAND,
    EXIT_NO_DIRECTORY,
    FACTS_BYTES_PER_TRANSFER,
    StderrSplitter,
    batch_config,
    facts_by_index,
    missing_report,
    private_directory,
    setup_command,
)
from tofu3.remote.curl import (
    PRELUDE,
    BlobDownload,
    Curl,
    Request,
    hashed_digest,
    raise_for_exit,
    stdin_for,
)
from tofu3.remote.shell import remote_sh

_SUM_RE = re.compile(rb"^TOFU3-SUM (\d+) (.*)$", re.MULTILINE)
BLOBS_PER_COMMAND = 64
"""Blobs in one SSH command at most: each has a hasher process waiting on its FIFO, and a
vantage user may be allowed only so many processes."""


# While the hashers finish, every FIFO is opened and closed again each second: a hasher whose
# subshell had not yet reached its open() when curl ended (a busy vantage, a transfer that
# failed at once) would otherwise wait for a writer for ever. It is stopped with SIGKILL (a
# TERM can arrive before a subshell's own trap is set, and be lost), and the sleep it may
# leave behind ends with the rest of the process group when the command finishes.
_RELEASER = "( while :; do sleep 1; rel; done ) >/dev/null 2>&1 & r=$!; "
_STOP_RELEASER = 'kill -KILL "$r" 2>/dev/null; wait "$r" 2>/dev/null; '
# The end of the command: everything left in its process group (the watchdog and its cat,
# a releaser's sleep) is ended; the shell itself ignores that TERM and exits.
_END = "trap '' TERM; kill -TERM 0 2>/dev/null; exit 0"


def download_level_command(hash_commands: Sequence[str], directory: str) -> str:
    """Blobs: one FIFO and one hasher per blob, then curl. A FIFO curl never opened (a
    transfer that failed before its body) is opened and closed here, so its hasher ends."""
    # rel: open and close every FIFO made so far, so that a hasher still waiting for a
    # writer (its transfer failed before the first byte, or the level stopped half-way)
    # sees an empty stream and ends.
    release = 'rel() { for f in "$d"/*; do [ -p "$f" ] && { exec 7<>"$f"; exec 7<&-; }; done; }; '
    hashers = "".join(
        f'mkfifo "$d/{i}" || {{ rel; exit {EXIT_NO_DIRECTORY}; }}; '
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
        f"{PRELUDE}{setup_command(directory)}{release}p=; {hashers}"
        f"{CURL_COMMAND}rel; {_RELEASER}wait $p; {_STOP_RELEASER}{emit}"
        f'echo "TOFU3-CURL-EXIT $rc"; {_END}'
    )


def download_level(
    curl: Curl,
    items: Sequence[tuple[Request, str, str]],
    *,
    jobs: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[BlobDownload]:
    """Download every ``(request, algorithm, what)`` on the vantage, hashing each as it
    streams: one SSH command for every BLOBS_PER_COMMAND of them (one, for any image but a
    giant), one after the other. ``on_progress`` gets the bytes received by all of them so
    far. Raises the error of the first item (in order) that failed."""
    downloads: list[BlobDownload] = []
    for start in range(0, len(items), BLOBS_PER_COMMAND):
        done = sum(d.connection.size for d in downloads)

        def progress(seen: int, done: int = done) -> None:
            if on_progress is not None:
                on_progress(done + seen)

        chunk = items[start : start + BLOBS_PER_COMMAND]
        downloads.extend(_download_command(curl, chunk, jobs=jobs, on_progress=progress))
    return downloads


def _download_command(
    curl: Curl,
    items: Sequence[tuple[Request, str, str]],
    *,
    jobs: int,
    on_progress: Callable[[int], None],
) -> list[BlobDownload]:
    """``items`` in one SSH command (see download_level)."""
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
    splitter = StderrSplitter(limits.stderr_bytes + count * FACTS_BYTES_PER_TRANSFER, on_progress)
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
    found = facts_by_index(stderr, count, vantage)
    sums = {int(m.group(1)): m.group(2) for m in _SUM_RE.finditer(result.stdout)}
    downloads: list[BlobDownload] = []
    for index, (_, algorithm, what) in enumerate(items):
        fact = found.get(index)
        if fact is None:
            raise missing_report(vantage, what, result.exit_status, result.stdout, stderr)
        raise_for_exit(fact.exit_code, fact.message, vantage, what)
        digest = hashed_digest(sums.get(index, b""), algorithm, vantage, what)
        downloads.append(BlobDownload(connection=fact.connection, digest=digest))
    on_progress(sum(d.connection.size for d in downloads))
    return downloads
