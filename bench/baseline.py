"""The bare baseline: what a careful human would type instead of tofu3.

One ``ssh vantage sh -s`` session per vantage, the three in parallel, with the system OpenSSH
client (the lab client key, the host keys pinned in the inventory, no ~/.ssh/config). Each
session runs a script, fed on stdin, that makes the same requests tofu3 makes, one after the
other: the registry ping (``GET /v2/``; the distribution registry is open, so there is no token
to fetch), the manifest by tag, every child manifest by digest, every blob; each body piped
into ``sha256sum`` on the vantage (and, for comparison, into ``openssl dgst -sha256``). The
script is given the digests (a human with jq would read them from the manifest), and fetches
and hashes the manifests as well. The bench checks every printed hash, so a baseline that
downloaded the wrong bytes fails instead of looking fast.

The session runs as any ``ssh`` command does: sshd starts the vantage user's login shell,
rc files and all. In the far case the vantage's host and port are its forwarder's
(bench/links.py), so ssh gets ``-p FORWARDER_PORT``, and the known_hosts file holds the same
pinned key under that ``[address]:port``: the host key is checked as strictly.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.images import Artifact
from tofu3.inventory import Vantage
from tofu3.oci.media_types import ACCEPT

PING_OK = "ping-ok"


@dataclass(frozen=True)
class BareSession:
    """One vantage's part of the baseline: the ssh command and the script for its stdin."""

    vantage: str
    argv: tuple[str, ...]
    script: str
    expected: tuple[str, ...]  # what the script must print: PING_OK, then one hex per download


def known_hosts_text(vantages: Sequence[Vantage]) -> str:
    """An OpenSSH known_hosts file holding the inventory's pinned host keys."""
    lines = []
    for vantage in vantages:
        if vantage.host_key is None:
            raise ValueError(f"vantage {vantage.name} has no pinned host key in the inventory")
        key = " ".join(vantage.host_key.split()[:2])
        lines.append(f"[{vantage.host}]:{vantage.port} {key}")
    return "\n".join(lines) + "\n"


def ssh_options(vantage: Vantage, known_hosts: Path) -> list[str]:
    """OpenSSH client options for ``vantage``: no ~/.ssh/config, the inventory's key and
    user, host keys checked strictly against ``known_hosts`` only."""
    if vantage.identity_file is None or vantage.user is None:
        raise ValueError(f"vantage {vantage.name} needs a user and an identity_file")
    return [
        "-F",
        "/dev/null",
        "-T",
        "-i",
        vantage.identity_file,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-p",
        str(vantage.port),
        "-l",
        vantage.user,
    ]


def ssh_argv(vantage: Vantage, known_hosts: Path, command: str = "sh -s") -> tuple[str, ...]:
    """``ssh ... HOST COMMAND`` for ``vantage`` (see ssh_options)."""
    return ("ssh", *ssh_options(vantage, known_hosts), vantage.host, command)


SHA256SUM = "sha256sum"
OPENSSL = "openssl dgst -sha256"
_HEX = re.compile(r"\b[0-9a-f]{64}\b")


def bare_script(
    curl_args: Sequence[str], registry_host: str, artifact: Artifact, hasher: str = SHA256SUM
) -> str:
    """The POSIX sh script one vantage runs: every request in order, each hashed on the way
    by ``hasher`` (``sha256sum``, as the issue's baseline; or ``openssl dgst -sha256``, the
    tool tofu3 itself picks where openssl passes its known-answer test)."""
    curl = shlex.join(["curl", "-q", "-fsSL", *curl_args])
    base = f"https://{registry_host}/v2/{artifact.repository}"
    lines = [
        "set -u",
        f"{curl} -o /dev/null {shlex.quote(f'https://{registry_host}/v2/')} && echo {PING_OK}",
    ]
    accept = shlex.quote(f"Accept: {ACCEPT}")
    for download in artifact.downloads:
        url = shlex.quote(f"{base}/{download.kind}/{download.reference}")
        header = f"-H {accept} " if download.kind == "manifests" else ""
        lines.append(f"{curl} {header}{url} | {hasher}")
    return "\n".join(lines) + "\n"


def bare_sessions(
    vantages: Sequence[Vantage],
    known_hosts: Path,
    registry_host: str,
    artifact: Artifact,
    hasher: str = SHA256SUM,
) -> list[BareSession]:
    """One session per vantage, each with the vantage's own curl_args from the inventory."""
    expected = (PING_OK, *(d.digest.removeprefix("sha256:") for d in artifact.downloads))
    return [
        BareSession(
            vantage=vantage.name,
            argv=ssh_argv(vantage, known_hosts),
            script=bare_script(vantage.curl_args, registry_host, artifact, hasher),
            expected=expected,
        )
        for vantage in vantages
    ]


def printed(output: str) -> tuple[str, ...]:
    """What a session printed, as BareSession.expected spells it: the ping's mark, then each
    hash (``sha256sum`` prints ``HEX  -``, openssl ``SHA2-256(stdin)= HEX``)."""
    found = []
    for line in output.splitlines():
        if not line.strip():
            continue
        hexes = _HEX.findall(line)
        found.append(hexes[-1] if hexes else line.split()[0])
    return tuple(found)
