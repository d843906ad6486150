"""Everything the lab registry serves, honest and tampered, built in memory (pure).

``build_store()`` is what every client gets. The tamper switches serve one vantage
something else, three ways:

- ``tampered_blob``: a layer with the same length but different bytes (a corrupting or
  malicious CDN edge);
- ``tampered_manifest``: a manifest asked for by digest, answered with other bytes under the
  same Docker-Content-Digest header (a registry or path that lies);
- ``build_alt_store()``: tags resolve to another tree, consistent in itself (every digest
  right), differing in one platform's content (targeted serving of a moved tag).
"""

from __future__ import annotations

import functools
import json

from tofu3.digest import digest_bytes
from tofu3.lab import alpine, bottles
from tofu3.lab.store import Store, StoreBuilder, StoredManifest

__all__ = [
    "ALPINE",
    "WGET",
    "Store",
    "StoredManifest",
    "build_alt_store",
    "build_store",
    "tampered_blob",
    "tampered_manifest",
]

# (repository, tag) of each artifact the lab serves.
WGET = (bottles.REPOSITORY, bottles.VERSION)
ALPINE = (alpine.REPOSITORY, alpine.TAG)

# How many bytes in the middle of a blob the "blob" tamper inverts.
_TAMPER_WINDOW = 64


@functools.cache
def build_store() -> Store:
    """The honest lab content (built once per process)."""
    builder = StoreBuilder()
    bottles.add_wget(builder)
    alpine.add_alpine(builder)
    return builder.build()


@functools.cache
def build_alt_store() -> Store:
    """The content a "tag" tamper serves: the same tags, each resolving to another
    internally consistent tree that differs from the honest one in one platform."""
    builder = StoreBuilder()
    bottles.add_wget(builder, swapped=bottles.SWAPPED_BOTTLE)
    alpine.add_alpine(builder, swapped=True)
    return builder.build()


def tampered_blob(data: bytes) -> bytes:
    """``data`` with the bytes in its middle inverted: same length, different content."""
    if not data:
        raise ValueError("an empty blob cannot be tampered with and keep its length")
    width = min(_TAMPER_WINDOW, len(data))
    start = (len(data) - width) // 2
    flipped = bytes(byte ^ 0xFF for byte in data[start : start + width])
    return data[:start] + flipped + data[start + width :]


def tampered_manifest(body: bytes) -> bytes:
    """``body`` with its first layer (or, for an index, first manifest) pointing elsewhere.

    The replacement digest has the same length and the text is otherwise untouched, so the
    result is valid JSON of the same size that hashes to something else: only a client that
    hashes what it receives notices.
    """
    document = json.loads(body)
    children = document.get("layers") or document.get("manifests")
    if not children:
        raise ValueError("manifest has no descriptors to redirect")
    honest = str(children[0]["digest"])
    forged = digest_bytes(f"tofu3 lab: forged {honest}".encode(), honest.split(":", 1)[0])
    return body.replace(honest.encode(), forged.encode())
