"""Manifest and index parsing: exact bytes -> strict typed values (pure).

The bytes are hashed by the caller before they reach here; nothing is re-serialised. Anything
ambiguous is refused rather than interpreted: duplicate JSON keys, a document that is both an
index and a manifest (the CVE-2021-41190 class), a body mediaType that contradicts the
Content-Type, descriptors whose digests do not match the digest grammar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tofu3.digest import Digest, parse_digest
from tofu3.errors import InvalidDigest, MalformedManifest, UnsupportedManifest
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.oci import media_types as mt

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_BOTTLE_DIGEST = "sh.brew.bottle.digest"
ANNOTATION_DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
_MAX_SAFE_INT = 2**53 - 1
_GENERIC_CONTENT_TYPES = frozenset({"application/json", "application/octet-stream", "text/plain"})


@dataclass(frozen=True)
class Platform:
    """Where an image runs: os/architecture[/variant], plus the optional os.version."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def label(self) -> str:
        """``linux/arm64/v8``."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


@dataclass(frozen=True)
class Descriptor:
    """A content address: what the bytes are, their digest and their size."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_attestation(self) -> bool:
        """Docker build attestations ride in the index as ``unknown/unknown`` entries."""
        if self.annotations.get(ANNOTATION_DOCKER_REFERENCE_TYPE) == "attestation-manifest":
            return True
        return self.platform is not None and (
            self.platform.os == "unknown" and self.platform.architecture == "unknown"
        )

    @property
    def bottle_tag(self) -> str | None:
        """Homebrew's bottle tag (``arm64_sonoma``) from ``1.24.5.arm64_sonoma``, if any."""
        ref_name = self.annotations.get(ANNOTATION_REF_NAME)
        if ref_name is None or ANNOTATION_BOTTLE_DIGEST not in self.annotations:
            return None
        _, _, tag = ref_name.rpartition(".")
        return tag or None


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageManifest:
    """An OCI image manifest or a Docker schema 2 manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def blobs(self) -> tuple[Descriptor, ...]:
        """Config first, then layers in order."""
        return (self.config, *self.layers)


Manifest = Index | ImageManifest


def parse_manifest(
    data: bytes, content_type: str | None, limits: Limits = DEFAULT_LIMITS
) -> Manifest:
    """Parse manifest bytes as served with ``content_type``; raise an IntegrityError if they
    are malformed, ambiguous or of a kind tofu3 refuses."""
    if len(data) > limits.manifest_bytes:
        raise MalformedManifest(
            f"manifest is {len(data)} bytes, over the {limits.manifest_bytes}-byte cap"
        )
    header_type = mt.base_type(content_type)
    if header_type in mt.SCHEMA1_TYPES:
        raise _schema1()
    document = _strict_json(data)
    if not isinstance(document, dict):
        raise MalformedManifest("manifest is not a JSON object")
    schema_version = document.get("schemaVersion")
    if schema_version == 1:
        raise _schema1()
    if type(schema_version) is not int or schema_version != 2:
        raise MalformedManifest(f"unsupported schemaVersion {schema_version!r} (expected 2)")
    body_type = document.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise MalformedManifest("mediaType must be a string")
    media_type = _media_type(body_type, header_type, document)
    has_index_fields = "manifests" in document
    has_manifest_fields = "layers" in document or "config" in document
    if has_index_fields and has_manifest_fields:
        raise MalformedManifest(
            "ambiguous document: it has both 'manifests' and 'layers'/'config' "
            "(could be read as an index or as an image manifest)"
        )
    annotations = _annotations(document.get("annotations"), "manifest")
    if media_type in mt.INDEX_TYPES:
        if has_manifest_fields:
            raise MalformedManifest(f"{media_type} must not have 'layers' or 'config'")
        return _index(document, media_type, annotations, limits)
    if media_type in mt.MANIFEST_TYPES:
        if has_index_fields:
            raise MalformedManifest(f"{media_type} must not have 'manifests'")
        return _image_manifest(document, media_type, annotations, limits)
    raise UnsupportedManifest(f"unsupported manifest media type {media_type!r}")


SCHEMA1_REFUSAL = (
    "Docker schema 1 manifest refused: it is deprecated and its digest does not cover the "
    "bytes served (signatures are stripped before hashing), so tofu3 cannot check it"
)


def _schema1() -> UnsupportedManifest:
    return UnsupportedManifest(SCHEMA1_REFUSAL)


def is_schema1(data: bytes, content_type: str | None) -> bool:
    """Whether ``data`` is a Docker schema 1 manifest, by its Content-Type or its content.

    A registry's digest for schema 1 covers the payload without its signatures, not the bytes
    served, so every digest check on it fails for the wrong reason: callers refuse it for what
    it is before checking digests.
    """
    if mt.base_type(content_type) in mt.SCHEMA1_TYPES:
        return True
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return False
    if not isinstance(document, dict):
        return False
    version = document.get("schemaVersion")
    return (type(version) is int and version == 1) or document.get("mediaType") in mt.SCHEMA1_TYPES


def _media_type(body_type: str | None, header_type: str | None, document: Mapping[str, Any]) -> str:
    known = mt.INDEX_TYPES | mt.MANIFEST_TYPES | mt.SCHEMA1_TYPES
    if body_type in mt.SCHEMA1_TYPES:
        raise _schema1()
    header_says = header_type if header_type not in _GENERIC_CONTENT_TYPES else None
    if body_type is not None and header_says is not None and body_type != header_says:
        raise MalformedManifest(
            f"mediaType {body_type!r} in the manifest differs from its Content-Type {header_says!r}"
        )
    chosen = body_type or header_says
    if chosen is None:
        # OCI lets mediaType be absent; only the structure can say what this is.
        if "manifests" in document:
            return mt.OCI_INDEX
        if "config" in document or "layers" in document:
            return mt.OCI_MANIFEST
        raise MalformedManifest(
            "manifest has no mediaType and no Content-Type that says what it is"
        )
    if chosen not in known:
        raise UnsupportedManifest(f"unsupported manifest media type {chosen!r}")
    return chosen


def _strict_json(data: bytes) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise MalformedManifest(f"duplicate JSON key {key[:64]!r}")
            result[key] = value
        return result

    def no_constants(name: str) -> Any:
        raise MalformedManifest(f"invalid JSON constant {name}")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedManifest("manifest is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedManifest(
            f"manifest is not valid JSON: {exc.msg} at offset {exc.pos}"
        ) from None
    except RecursionError:
        raise MalformedManifest("manifest JSON is nested too deeply") from None
    except ValueError:
        # Python refuses integers of more than 4300 digits.
        raise MalformedManifest("manifest JSON holds a number tofu3 will not read") from None


def _annotations(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MalformedManifest(f"{where} annotations must map strings to strings")
    return dict(value)


def _index(
    document: Mapping[str, Any], media_type: str, annotations: dict[str, str], limits: Limits
) -> Index:
    raw = document.get("manifests")
    if not isinstance(raw, list):
        raise MalformedManifest("index 'manifests' must be a list")
    if len(raw) > limits.max_descriptors:
        raise MalformedManifest(f"index lists {len(raw)} manifests, over the cap")
    manifests = tuple(_descriptor(item, f"manifests[{i}]") for i, item in enumerate(raw))
    for descriptor in manifests:
        if descriptor.media_type in mt.SCHEMA1_TYPES:
            raise _schema1()
    return Index(media_type=media_type, manifests=manifests, annotations=annotations)


def _image_manifest(
    document: Mapping[str, Any], media_type: str, annotations: dict[str, str], limits: Limits
) -> ImageManifest:
    if "config" not in document:
        raise MalformedManifest("image manifest has no config")
    config = _descriptor(document["config"], "config")
    raw_layers = document.get("layers")
    if not isinstance(raw_layers, list):
        raise MalformedManifest("image manifest 'layers' must be a list")
    if len(raw_layers) > limits.max_descriptors:
        raise MalformedManifest(f"image manifest lists {len(raw_layers)} layers, over the cap")
    layers = tuple(_descriptor(item, f"layers[{i}]") for i, item in enumerate(raw_layers))
    return ImageManifest(
        media_type=media_type, config=config, layers=layers, annotations=annotations
    )


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise MalformedManifest(f"{where} is not a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type or len(media_type) > 255:
        raise MalformedManifest(f"{where} has no valid mediaType")
    try:
        digest = parse_digest(value.get("digest"))
    except InvalidDigest as exc:
        # A digest that fails the grammar never reaches a URL or a path.
        raise MalformedManifest(f"{where}: {exc}") from None
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SAFE_INT:
        raise MalformedManifest(f"{where} has an invalid size {size!r}")
    platform = _platform(value.get("platform"), where)
    annotations = _annotations(value.get("annotations"), where)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=platform,
        annotations=annotations,
    )


def _platform(value: object, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedManifest(f"{where}.platform must be an object")
    os_name = value.get("os")
    architecture = value.get("architecture")
    variant = value.get("variant")
    os_version = value.get("os.version")
    if not isinstance(os_name, str) or not isinstance(architecture, str):
        raise MalformedManifest(f"{where}.platform needs string 'os' and 'architecture'")
    if variant is not None and not isinstance(variant, str):
        raise MalformedManifest(f"{where}.platform.variant must be a string")
    if os_version is not None and not isinstance(os_version, str):
        raise MalformedManifest(f"{where}.platform['os.version'] must be a string")
    return Platform(
        os=os_name, architecture=architecture, variant=variant or None, os_version=os_version
    )
