"""The lab registry's tamper switches: which lie it tells to which client.

``tamper.json`` in the lab directory maps a client's source address to a tamper kind, and the
key ``"*"`` arms a kind for every client; a client's own entry wins over ``"*"``. The registry
reads the file on every request, so a switch takes effect at once. Each kind stands for one
attack (an attacker on a vantage's path, a lying CDN edge or mirror, a compromised registry)
and is named for what it does; :data:`DESCRIPTIONS` says it in one line for the CLI and docs.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

TAMPER_FILE = "tamper.json"
ALL_CLIENTS = "*"
"""The tamper table key that arms a kind for every client."""


class TamperMode(str, enum.Enum):
    """One way the lab registry lies (see DESCRIPTIONS and docs/lab.md)."""

    BLOB = "blob"
    MANIFEST = "manifest"
    TAG = "tag"
    LONG = "long"
    SHORT = "short"
    DIGEST_HEADER = "digest-header"
    MEDIA_TYPE = "media-type"
    AMBIGUOUS = "ambiguous"
    SCHEMA1 = "schema1"
    BAD_JSON = "bad-json"
    SELF_INDEX = "self-index"
    DEEP_INDEX = "deep-index"
    DIGEST_PATH = "digest-path"
    DIGEST_CASE = "digest-case"
    DIGEST_ALGO = "digest-algo"
    DIGEST_LENGTH = "digest-length"
    BIG_MANIFEST = "big-manifest"
    ENDLESS_MANIFEST = "endless-manifest"
    BIG_TOKEN = "big-token"  # noqa: S105 - a switch name, not a secret
    REDIRECT_HTTP = "redirect-http"
    REDIRECT_FTP = "redirect-ftp"
    REDIRECT_LOOP = "redirect-loop"
    STALL = "stall"


DESCRIPTIONS: dict[TamperMode, str] = {
    TamperMode.BLOB: "every layer with the same length but 64 bytes in the middle inverted",
    TamperMode.MANIFEST: "manifests asked for by digest come back altered, under the honest "
    "Docker-Content-Digest header",
    TamperMode.TAG: "the tag resolves to another tree, consistent in itself",
    TamperMode.LONG: "every layer with bytes appended: longer than its descriptor says",
    TamperMode.SHORT: "every layer cut short: shorter than its descriptor says",
    TamperMode.DIGEST_HEADER: "honest manifests under a Docker-Content-Digest header that names "
    "other bytes",
    TamperMode.MEDIA_TYPE: "honest manifests under a Content-Type that contradicts their mediaType",
    TamperMode.AMBIGUOUS: "the tag resolves to a document with both 'manifests' and "
    "'layers'/'config' (CVE-2021-41190)",
    TamperMode.SCHEMA1: "the tag resolves to a signed Docker schema 1 manifest",
    TamperMode.BAD_JSON: "the tag resolves to a manifest cut off half-way: not valid JSON",
    TamperMode.SELF_INDEX: "every manifest asked for by digest is answered with the tag's index "
    "itself",
    TamperMode.DEEP_INDEX: "the tag resolves to an index of an index of an index ... "
    "(5 deep, every digest right)",
    TamperMode.DIGEST_PATH: "the tag's index names a child 'sha256:../../../../etc/passwd'",
    TamperMode.DIGEST_CASE: "the tag's index names a child by a digest in upper-case hex",
    TamperMode.DIGEST_ALGO: "the tag's index names a child by a digest of an unknown algorithm",
    TamperMode.DIGEST_LENGTH: "the tag's index names a child by a digest one hex digit short",
    TamperMode.BIG_MANIFEST: "the tag resolves to a 5 MiB manifest, its size announced",
    TamperMode.ENDLESS_MANIFEST: "the tag's manifest never ends: no Content-Length, bytes until "
    "the client hangs up",
    TamperMode.BIG_TOKEN: "the token realm answers with a 2 MiB response",
    TamperMode.REDIRECT_HTTP: "blobs redirect to plain http://",
    TamperMode.REDIRECT_FTP: "blobs redirect to ftp://",
    TamperMode.REDIRECT_LOOP: "blobs redirect to themselves, for ever",
    TamperMode.STALL: "the CDN sends half of each layer, then nothing, keeping the connection open",
}

TAMPER_KINDS: tuple[str, ...] = tuple(mode.value for mode in TamperMode)


def read_table(path: Path) -> dict[str, str]:
    """The tamper table in ``path`` (client address or ``"*"`` -> kind); {} if there is none.

    Raises OSError or ValueError when the file exists but is not such a table.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path} is not a table of source address -> tamper kind")
    return data


def mode_for(table: dict[str, str], client_ip: str) -> TamperMode | None:
    """The kind armed for ``client_ip``: its own entry, else the all-clients entry, else None.
    An unknown kind counts as none: the registry stays honest rather than guess."""
    kind = table.get(client_ip, table.get(ALL_CLIENTS))
    try:
        return TamperMode(kind) if kind is not None else None
    except ValueError:
        return None
