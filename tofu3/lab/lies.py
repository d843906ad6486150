"""What the lab registry answers when a tamper switch is armed (pure: bytes in, bytes out).

Each function builds one lie from the honest content. Where the lie is meant to be caught by
what it *is* (an ambiguous or malformed manifest, a bad digest in a descriptor) rather than by
a digest check, the registry sends a Docker-Content-Digest header that matches the bytes it
serves, so the test shows the check that matters. See :mod:`tofu3.lab.tamper` for the kinds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tofu3.digest import Digest, digest_bytes, hex_of, is_digest
from tofu3.lab.content import tampered_blob, tampered_manifest
from tofu3.lab.store import Store, StoreBuilder, StoredManifest, descriptor, docker_json, oci_json
from tofu3.lab.tamper import TamperMode
from tofu3.oci import media_types as mt

# Appended to a blob by the "long" switch: what a mirror that adds a trailer would send.
_TRAILER = b"\n# appended on the way: these bytes were not in the published blob\n"
# Bytes the "short" switch cuts off the end of a blob (at most half of it).
_CUT = 64
# The "deep-index" chain: deeper than any client should follow (tofu3 follows 3).
DEEP_INDEX_LEVELS = 5
# The "big-manifest" body, over the 4 MiB cap on manifests.
BIG_MANIFEST_BYTES = 5 * 1024 * 1024
# The "big-token" response, over the 1 MiB cap on token responses.
BIG_TOKEN_BYTES = 2 * 1024 * 1024

# The media type a "media-type" switch labels each manifest type with: same family, the
# other shape (an index called a manifest and the other way round).
_MISLABEL = {
    mt.OCI_INDEX: mt.OCI_MANIFEST,
    mt.OCI_MANIFEST: mt.OCI_INDEX,
    mt.DOCKER_MANIFEST_LIST: mt.DOCKER_MANIFEST,
    mt.DOCKER_MANIFEST: mt.DOCKER_MANIFEST_LIST,
}


@dataclass(frozen=True)
class ManifestAnswer:
    """One manifest response: body, Content-Type, Docker-Content-Digest (None: no header),
    and whether it is sent without Content-Length and never ends."""

    body: bytes
    content_type: str
    docker_content_digest: str | None
    endless: bool = False


def longer_blob(data: bytes) -> bytes:
    """``data`` with bytes appended: longer than its descriptor says."""
    return data + _TRAILER


def shorter_blob(data: bytes) -> bytes:
    """``data`` with its end cut off: shorter than its descriptor says."""
    if len(data) < 2:
        raise ValueError("a blob of fewer than 2 bytes cannot be cut short and stay non-empty")
    return data[: len(data) - min(_CUT, len(data) // 2)]


def layer_answer(mode: TamperMode | None, data: bytes) -> bytes:
    """The bytes the CDN sends for a layer under ``mode`` ("stall" is the handler's: it is
    about time, not bytes)."""
    if mode is TamperMode.BLOB:
        return tampered_blob(data)
    if mode is TamperMode.LONG:
        return longer_blob(data)
    if mode is TamperMode.SHORT:
        return shorter_blob(data)
    return data


def bad_digest(honest: Digest, mode: TamperMode) -> str:
    """A digest string that breaks the digest grammar the way ``mode`` says."""
    hex_part = hex_of(honest)
    if mode is TamperMode.DIGEST_PATH:
        return "sha256:../../../../etc/passwd"
    if mode is TamperMode.DIGEST_CASE:
        return f"sha256:{hex_part.upper()}"
    if mode is TamperMode.DIGEST_ALGO:
        return f"blake3:{hex_part}"
    if mode is TamperMode.DIGEST_LENGTH:
        return f"sha256:{hex_part[:-1]}"
    raise ValueError(f"{mode.value} is not a digest-grammar switch")


def with_bad_child_digest(body: bytes, mode: TamperMode) -> bytes:
    """An index (or manifest) whose first child descriptor's digest breaks the grammar."""
    document = json.loads(body)
    children = document.get("manifests") or document.get("layers")
    if not children:
        raise ValueError("manifest has no descriptors to break")
    honest = str(children[0]["digest"])
    children[0]["digest"] = bad_digest(Digest(honest), mode)
    return _serialise_like(body, document)


def ambiguous(body: bytes) -> bytes:
    """The document made both an index and an image manifest (the CVE-2021-41190 class):
    an index gains ``config`` and ``layers``, a manifest gains ``manifests``."""
    document = json.loads(body)
    if "manifests" in document:
        first = document["manifests"][0]
        document["config"] = descriptor(mt.OCI_MANIFEST, first["digest"], first["size"])
        document["layers"] = [descriptor(mt.OCI_MANIFEST, first["digest"], first["size"])]
    else:
        document["manifests"] = [document["config"]]
    return _serialise_like(body, document)


def cut_json(body: bytes) -> bytes:
    """The first half of ``body``: JSON that stops in the middle."""
    return body[: len(body) // 2]


def padded(body: bytes, size: int) -> bytes:
    """``body`` grown to ``size`` bytes with whitespace before its closing brace: still valid
    JSON, and still the same document, just too big."""
    if not body.rstrip().endswith(b"}") or len(body) >= size:
        raise ValueError("cannot pad this body")
    head = body.rstrip()[:-1]
    return head + b" " * (size - len(head) - 1) + b"}"


def mislabelled(media_type: str) -> str:
    """A Content-Type of the same family but the other shape."""
    return _MISLABEL.get(media_type, mt.OCI_MANIFEST)


def schema1_manifest(repository: str, tag: str, layer: Digest) -> tuple[bytes, Digest]:
    """A signed Docker schema 1 manifest (``+prettyjws``) and the digest a registry gives it:
    that of the payload without the signatures, which is not the digest of the bytes sent."""
    payload = docker_json(
        {
            "schemaVersion": 1,
            "name": repository,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": layer}],
            "history": [{"v1Compatibility": json.dumps({"id": hex_of(layer)})}],
        }
    )
    signature = {
        "header": {"jwk": {"crv": "P-256", "kty": "EC", "x": "lab", "y": "lab"}, "alg": "ES256"},
        "signature": "dG9mdTMgbGFiOiBub3QgYSByZWFsIHNpZ25hdHVyZQ",
        "protected": "eyJmb3JtYXRMZW5ndGgiOjAsImZvcm1hdFRhaWwiOiJDbjAifQ",
    }
    signed = (
        payload.rstrip()[:-1].rstrip()
        + b',\n   "signatures": '
        + json.dumps([signature], indent=3).encode()
        + b"\n}"
    )
    return signed, digest_bytes(payload)


def manifest_answer(
    mode: TamperMode | None,
    stored: StoredManifest,
    *,
    digest: Digest,
    reference: str,
    repository: str,
    tag_target: StoredManifest | None,
) -> ManifestAnswer:
    """What the registry sends for a manifest request under ``mode``.

    ``stored`` is what ``reference`` (a tag or a digest) resolved to, ``digest`` its digest.
    ``tag_target`` is the manifest the repository's tag names (for "self-index").
    """
    media_type, body = stored
    if mode is TamperMode.MANIFEST and is_digest(reference):
        # Other bytes under the honest Docker-Content-Digest header.
        return ManifestAnswer(tampered_manifest(body), media_type, digest)
    if mode is TamperMode.DIGEST_HEADER:
        # A valid digest, of other bytes: only a client that hashes what it got notices.
        return ManifestAnswer(body, media_type, digest_bytes(b"tofu3 lab: other bytes " + body))
    if mode is TamperMode.MEDIA_TYPE:
        return ManifestAnswer(body, mislabelled(media_type), digest)
    if is_digest(reference):
        if mode is TamperMode.SELF_INDEX and tag_target is not None:
            # The child asked for by digest is answered with the index itself, under the
            # digest that was asked for.
            return ManifestAnswer(tag_target.body, tag_target.media_type, digest)
        return ManifestAnswer(body, media_type, digest)
    lie = _tag_lie(mode, stored, repository, reference)
    return lie if lie is not None else ManifestAnswer(body, media_type, digest)


def _tag_lie(
    mode: TamperMode | None, stored: StoredManifest, repository: str, tag: str
) -> ManifestAnswer | None:
    """The lies told only for a manifest fetched by tag; None when ``mode`` tells none.

    Apart from schema 1 (whose registry digest never covers the bytes), the
    Docker-Content-Digest header matches the bytes sent: these lies are meant to be caught
    for what they are, not by a digest check.
    """
    media_type, body = stored
    changed: bytes | None = None
    if mode is TamperMode.AMBIGUOUS:
        changed = ambiguous(body)
    elif mode is TamperMode.BAD_JSON:
        changed = cut_json(body)
    elif mode in _DIGEST_GRAMMAR_MODES:
        changed = with_bad_child_digest(body, mode)
    elif mode is TamperMode.BIG_MANIFEST:
        changed = padded(body, BIG_MANIFEST_BYTES)
    elif mode is TamperMode.ENDLESS_MANIFEST:
        # The start of the document; the registry sends whitespace after it for ever.
        return ManifestAnswer(body.rstrip()[:-1], media_type, None, endless=True)
    elif mode is TamperMode.SCHEMA1:
        layer = digest_bytes(b"tofu3 lab: schema 1 layer")
        signed, payload_digest = schema1_manifest(repository, tag, layer)
        return ManifestAnswer(signed, mt.DOCKER_SCHEMA1_SIGNED, payload_digest)
    if changed is None:
        return None
    return ManifestAnswer(changed, media_type, digest_bytes(changed))


_DIGEST_GRAMMAR_MODES = frozenset(
    {
        TamperMode.DIGEST_PATH,
        TamperMode.DIGEST_CASE,
        TamperMode.DIGEST_ALGO,
        TamperMode.DIGEST_LENGTH,
    }
)


def big_token_response(token: str) -> bytes:
    """A token response of BIG_TOKEN_BYTES: a good token, and a huge field beside it."""
    head = json.dumps({"token": token, "access_token": token, "padding": ""}).encode()
    return head[:-2] + b"x" * (BIG_TOKEN_BYTES - len(head)) + b'"}'


def build_deep_store(honest: Store) -> Store:
    """Every tag of ``honest`` made the top of a chain of DEEP_INDEX_LEVELS OCI indexes, each
    naming the next by its correct digest, the last naming the honest tag target."""
    builder = StoreBuilder()
    for (repository, tag), target in honest.tags.items():
        media_type, body = honest.manifests[target]
        child = descriptor(media_type, target, len(body))
        for _ in range(DEEP_INDEX_LEVELS):
            level = oci_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child]})
            digest = builder.add_manifest(repository, mt.OCI_INDEX, level)
            child = descriptor(mt.OCI_INDEX, digest, len(level))
        builder.add_tag(repository, tag, Digest(child["digest"]))
    return builder.build()


def _serialise_like(original: bytes, document: object) -> bytes:
    """Serialise ``document`` with the indentation ``original`` used (2 or 3 spaces)."""
    indent = 3 if b'\n   "' in original[:64] else 2
    return json.dumps(document, indent=indent).encode()
