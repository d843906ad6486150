"""Manifest and index parsing: the real ghcr.io index, and the documents an attacker would serve.

Every refusal here is a promise that an ambiguous or malformed document never becomes a
download plan: it ends as MalformedManifest or UnsupportedManifest (both IntegrityErrors,
so the verdict is "rejected"), never as some other exception and never as a guess.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tofu3.digest import digest_bytes
from tofu3.errors import IntegrityError, MalformedManifest, UnsupportedManifest
from tofu3.limits import Limits
from tofu3.oci import media_types as mt
from tofu3.oci.manifest import ImageManifest, Index, Platform, parse_manifest

from .fixtures_path import (
    GHCR_WGET_BOTTLE_TAGS,
    GHCR_WGET_INDEX,
    GHCR_WGET_INDEX_DIGEST,
    local_fixture,
)

SHA256_A = "sha256:" + "a" * 64
SHA256_B = "sha256:" + "b" * 64
SHA512_C = "sha512:" + "c" * 128
REAL_VENTURA_BOTTLE = "sha256:1b7e2f76c90553543a5e25dadf031c6fcfe280f52bf27d89e04006f9d33fd20b"

# Homebrew's formula checksums for wget 1.24.5 (fixture README): what `brew install` checks.
FORMULA_BOTTLE_SHA256 = {
    "arm64_sonoma": "9befdad158e59763fb0622083974a6252878019702d8c961e1bec3a5f5305339",
    "arm64_ventura": "ac4c0330b70dae06eaa8065bfbea78dda277699d1ae8002478017a1bd9cf1908",
    "arm64_monterey": "02313702fc03880f221d60ce4d0b652c8b44fe68c15609329d757d031bce6bc4",
    "sonoma": "034528edb247df85f90997aca6a51ddb988a880af6bb571b8473de1702a887af",
    "ventura": "1b7e2f76c90553543a5e25dadf031c6fcfe280f52bf27d89e04006f9d33fd20b",
    "monterey": "ffc49a5064a003006e69f51434ac5f7ec4f4019c161ad32fab22c32697db61cd",
    "x86_64_linux": "6a4642964fe5c4d1cc8cd3507541736d5b984e34a303a814ef550d4f2f8242f9",
}


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


def _oci_manifest(**overrides: Any) -> dict[str, Any]:
    """A minimal valid OCI image manifest, with fields replaced or removed (value None)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": SHA256_A,
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": SHA256_B,
                "size": 3,
            }
        ],
    }
    for key, value in overrides.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def _oci_index(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)}


def _entry(digest: object = SHA256_A, size: object = 528) -> dict[str, Any]:
    return {
        "mediaType": mt.OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "platform": {"os": "linux", "architecture": "amd64"},
    }


def _layer_with_raw_size(raw_size: str) -> bytes:
    """An image manifest whose one layer size is ``raw_size`` exactly as JSON text."""
    document = _oci_manifest()
    document["layers"][0]["size"] = "RAW-SIZE"
    return json.dumps(document).replace('"RAW-SIZE"', raw_size).encode()


# --- The real ghcr.io index -------------------------------------------------------------------


def test_the_captured_ghcr_index_hashes_to_the_digest_recorded_with_it() -> None:
    assert digest_bytes(GHCR_WGET_INDEX.read_bytes()) == GHCR_WGET_INDEX_DIGEST


@pytest.mark.parametrize(
    "content_type",
    [mt.OCI_INDEX, f"{mt.OCI_INDEX}; charset=utf-8", None, "application/octet-stream"],
)
def test_the_real_ghcr_index_parses_to_its_seven_bottles(content_type: str | None) -> None:
    # The real index has no mediaType in its body: the Content-Type, or its structure, says.
    parsed = parse_manifest(GHCR_WGET_INDEX.read_bytes(), content_type)

    assert isinstance(parsed, Index)
    assert parsed.media_type == mt.OCI_INDEX
    assert tuple(d.bottle_tag for d in parsed.manifests) == GHCR_WGET_BOTTLE_TAGS
    assert not any(d.is_attestation for d in parsed.manifests)
    assert all(d.media_type == mt.OCI_MANIFEST for d in parsed.manifests)


def test_each_real_index_entry_carries_the_bottle_checksum_homebrew_pins() -> None:
    parsed = parse_manifest(GHCR_WGET_INDEX.read_bytes(), mt.OCI_INDEX)

    assert isinstance(parsed, Index)
    annotated = {d.bottle_tag: d.annotations["sh.brew.bottle.digest"] for d in parsed.manifests}
    assert annotated == FORMULA_BOTTLE_SHA256


def test_the_real_index_entry_for_ventura_keeps_its_digest_size_and_platform() -> None:
    parsed = parse_manifest(GHCR_WGET_INDEX.read_bytes(), mt.OCI_INDEX)

    assert isinstance(parsed, Index)
    ventura = next(d for d in parsed.manifests if d.bottle_tag == "ventura")
    assert ventura.digest == (
        "sha256:b2fee3da46d4a60c77a35cad208c157db0a7f8f71fd6217f11c92214c385f93e"
    )
    assert ventura.size == 2605
    assert ventura.platform == Platform("darwin", "amd64", None, "macOS 13.6")
    linux = next(d for d in parsed.manifests if d.bottle_tag == "x86_64_linux")
    assert linux.platform is not None
    assert linux.platform.label() == "linux/amd64"


def test_an_index_over_the_descriptor_cap_is_refused() -> None:
    with pytest.raises(MalformedManifest, match="over the cap"):
        parse_manifest(GHCR_WGET_INDEX.read_bytes(), mt.OCI_INDEX, Limits(max_descriptors=6))


# --- Image manifests, Docker media types, attestations ----------------------------------------


def test_an_image_manifest_around_the_real_bottle_lists_config_then_layer() -> None:
    parsed = parse_manifest(
        local_fixture("oci_image_manifest_for_wget_ventura_bottle.json"), mt.OCI_MANIFEST
    )

    assert isinstance(parsed, ImageManifest)
    assert [b.digest for b in parsed.blobs()] == [parsed.config.digest, REAL_VENTURA_BOTTLE]
    assert parsed.layers[0].size == 1_613_406
    assert parsed.annotations == {"org.opencontainers.image.ref.name": "1.24.5.ventura"}


def test_a_docker_schema2_manifest_parses() -> None:
    parsed = parse_manifest(local_fixture("docker_schema2_manifest.json"), mt.DOCKER_MANIFEST)

    assert isinstance(parsed, ImageManifest)
    assert parsed.media_type == mt.DOCKER_MANIFEST
    assert parsed.config.media_type == "application/vnd.docker.container.image.v1+json"
    assert [layer.size for layer in parsed.layers] == [3_408_729]


def test_a_docker_manifest_list_parses_with_its_attestations_marked() -> None:
    parsed = parse_manifest(
        local_fixture("docker_manifest_list_with_attestations.json"), mt.DOCKER_MANIFEST_LIST
    )

    assert isinstance(parsed, Index)
    assert parsed.media_type == mt.DOCKER_MANIFEST_LIST
    assert [d.is_attestation for d in parsed.manifests] == [False, False, True, True]
    arm64 = parsed.manifests[1].platform
    assert arm64 is not None
    assert arm64.label() == "linux/arm64/v8"


def test_an_attestation_is_recognised_by_its_annotation_alone() -> None:
    entry = _entry()
    entry["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    parsed = parse_manifest(_json(_oci_index(entry)), mt.OCI_INDEX)

    assert isinstance(parsed, Index)
    assert parsed.manifests[0].is_attestation


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "application/json", "text/plain; charset=utf-8"]
)
def test_a_generic_content_type_falls_back_to_the_body_media_type(content_type: str) -> None:
    parsed = parse_manifest(
        local_fixture("docker_manifest_list_with_attestations.json"), content_type
    )

    assert isinstance(parsed, Index)
    assert parsed.media_type == mt.DOCKER_MANIFEST_LIST


def test_a_sha512_descriptor_is_accepted() -> None:
    parsed = parse_manifest(_json(_oci_index(_entry(digest=SHA512_C))), mt.OCI_INDEX)

    assert isinstance(parsed, Index)
    assert parsed.manifests[0].digest == SHA512_C


# --- Ambiguity: one document, two readings ------------------------------------------------------


@pytest.mark.parametrize("content_type", [mt.OCI_INDEX, mt.OCI_MANIFEST, None])
def test_a_document_that_is_both_index_and_manifest_is_refused(content_type: str | None) -> None:
    # CVE-2021-41190: an index reader pulls `manifests`, a manifest reader pulls `layers`.
    data = local_fixture("manifest_with_layers_and_manifests.json")
    if content_type == mt.OCI_MANIFEST:
        document = json.loads(data)
        del document["mediaType"]
        data = _json(document)

    with pytest.raises(MalformedManifest, match="ambiguous"):
        parse_manifest(data, content_type)


def test_an_index_that_carries_only_layers_is_refused() -> None:
    document = _oci_manifest(mediaType=mt.OCI_INDEX)

    with pytest.raises(MalformedManifest, match="must not have 'layers'"):
        parse_manifest(_json(document), mt.OCI_INDEX)


def test_a_manifest_that_carries_manifests_is_refused() -> None:
    document = _oci_index(_entry())
    document["mediaType"] = mt.OCI_MANIFEST

    with pytest.raises(MalformedManifest, match="must not have 'manifests'"):
        parse_manifest(_json(document), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    ("body_type", "content_type"),
    [
        (mt.OCI_INDEX, mt.OCI_MANIFEST),
        (mt.DOCKER_MANIFEST_LIST, mt.OCI_INDEX),
        (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST),
    ],
)
def test_a_body_media_type_that_contradicts_the_content_type_is_refused(
    body_type: str, content_type: str
) -> None:
    document = _oci_index(_entry()) if body_type in mt.INDEX_TYPES else _oci_manifest()
    document["mediaType"] = body_type

    with pytest.raises(MalformedManifest, match="differs from its Content-Type"):
        parse_manifest(_json(document), content_type)


@pytest.mark.parametrize(
    "data",
    [
        # Two `manifests`: Python's json keeps the last, Go's keeps the last, others the first.
        b'{"schemaVersion": 2, "mediaType": "%s", "manifests": [], "manifests": []}'
        % mt.OCI_INDEX.encode(),
        # Two digests in one descriptor: which one was verified?
        b'{"schemaVersion": 2, "mediaType": "%s", "manifests": [{"mediaType": "%s", '
        b'"digest": "%s", "digest": "%s", "size": 1}]}'
        % (mt.OCI_INDEX.encode(), mt.OCI_MANIFEST.encode(), SHA256_A.encode(), SHA256_B.encode()),
        b'{"schemaVersion": 2, "schemaVersion": 2, "manifests": []}',
    ],
    ids=["manifests", "descriptor-digest", "schemaVersion"],
)
def test_duplicate_json_keys_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedManifest, match="duplicate JSON key"):
        parse_manifest(data, mt.OCI_INDEX)


# --- Schema 1: refused, however it arrives -------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(mt.SCHEMA1_TYPES))
def test_schema1_is_refused_by_content_type(content_type: str) -> None:
    # Even when the body looks like a perfectly good v2 index: the header alone decides.
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(GHCR_WGET_INDEX.read_bytes(), content_type)


@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_schema1_is_refused_by_schema_version(content_type: str | None) -> None:
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(local_fixture("docker_schema1_signed_manifest.json"), content_type)


def test_schema1_is_refused_by_body_media_type() -> None:
    document = _oci_manifest(mediaType=mt.DOCKER_SCHEMA1_SIGNED)

    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(_json(document), "application/octet-stream")


def test_an_index_entry_pointing_at_a_schema1_manifest_is_refused() -> None:
    entry = _entry()
    entry["mediaType"] = mt.DOCKER_SCHEMA1
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(_json(_oci_index(entry)), mt.OCI_INDEX)


@pytest.mark.parametrize("schema_version", [None, 3, 0, "2", [2], True])
def test_a_schema_version_other_than_two_is_refused(schema_version: object) -> None:
    document = _oci_manifest(schemaVersion=schema_version)  # None: no schemaVersion at all

    with pytest.raises((MalformedManifest, UnsupportedManifest)):
        parse_manifest(_json(document), mt.OCI_MANIFEST)


def test_a_float_schema_version_is_refused() -> None:
    with pytest.raises(MalformedManifest):
        parse_manifest(_json(_oci_manifest(schemaVersion=2.0)), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.oci.artifact.manifest.v1+json", "application/vnd.cncf.helm.config.v1+json"],
)
def test_an_unknown_manifest_media_type_is_unsupported(media_type: str) -> None:
    with pytest.raises(UnsupportedManifest, match="unsupported manifest media type"):
        parse_manifest(_json(_oci_manifest(mediaType=media_type)), None)


def test_a_document_that_says_nothing_about_what_it_is_is_refused() -> None:
    with pytest.raises(MalformedManifest, match="no mediaType"):
        parse_manifest(b'{"schemaVersion": 2}', "application/octet-stream")


# --- Descriptors whose digests would reach a URL or a path ----------------------------------


BAD_DIGESTS = [
    pytest.param("sha256:../../etc/passwd", id="path-traversal"),
    pytest.param("sha256:" + "A" * 64, id="uppercase-hex"),
    pytest.param("SHA256:" + "a" * 64, id="uppercase-algorithm"),
    pytest.param("md5:" + "a" * 32, id="unknown-algorithm-md5"),
    pytest.param("sha1:" + "a" * 40, id="unknown-algorithm-sha1"),
    pytest.param("sha256:" + "a" * 63, id="one-short"),
    pytest.param("sha256:" + "a" * 65, id="one-long"),
    pytest.param("sha512:" + "a" * 64, id="sha512-with-sha256-length"),
    pytest.param("sha256:", id="empty-hex"),
    pytest.param("a" * 64, id="no-algorithm"),
    pytest.param("sha256:" + "a" * 64 + "\n", id="trailing-newline"),
    pytest.param(" sha256:" + "a" * 64, id="leading-space"),
    pytest.param("sha256:" + "a" * 63 + "g", id="non-hex"),
    pytest.param("sha256:" + "a" * 60 + ";id;", id="shell-metacharacters"),
    pytest.param(None, id="missing"),
    pytest.param(123, id="number"),
]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_an_index_entry_with_an_invalid_digest_is_refused(digest: object) -> None:
    with pytest.raises(MalformedManifest, match=r"manifests\[0\]"):
        parse_manifest(_json(_oci_index(_entry(digest=digest))), mt.OCI_INDEX)


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_a_layer_with_an_invalid_digest_is_refused(digest: object) -> None:
    layer = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": 3,
    }

    with pytest.raises(MalformedManifest, match=r"layers\[0\]"):
        parse_manifest(_json(_oci_manifest(layers=[layer])), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "raw_size",
    [
        "-1",
        "true",
        "false",
        "1.0",
        "1.5",
        "1e3",
        "1e400",
        '"3"',
        "null",
        "[3]",
        str(2**53),  # beyond what JSON readers in other languages agree on
    ],
)
def test_a_layer_with_an_invalid_size_is_refused(raw_size: str) -> None:
    with pytest.raises(MalformedManifest, match="invalid size"):
        parse_manifest(_layer_with_raw_size(raw_size), mt.OCI_MANIFEST)


def test_the_largest_safe_size_is_accepted() -> None:
    parsed = parse_manifest(_layer_with_raw_size(str(2**53 - 1)), mt.OCI_MANIFEST)

    assert isinstance(parsed, ImageManifest)
    assert parsed.layers[0].size == 2**53 - 1


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_constants_are_refused(constant: str) -> None:
    with pytest.raises(MalformedManifest, match="invalid JSON constant"):
        parse_manifest(_layer_with_raw_size(constant), mt.OCI_MANIFEST)


def test_a_size_with_thousands_of_digits_is_refused_not_crashed_on() -> None:
    with pytest.raises(MalformedManifest):
        parse_manifest(_layer_with_raw_size("9" * 5000), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "annotations",
    [{"a": 1}, {"a": None}, {"a": ["b"]}, ["a", "b"], "a=b"],
)
def test_annotations_that_are_not_strings_to_strings_are_refused(annotations: object) -> None:
    with pytest.raises(MalformedManifest, match="annotations"):
        parse_manifest(_json(_oci_manifest(annotations=annotations)), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "platform",
    [{"os": "linux"}, {"architecture": "amd64"}, {"os": 1, "architecture": "amd64"}, "linux/amd64"],
)
def test_an_index_entry_with_a_malformed_platform_is_refused(platform: object) -> None:
    entry = _entry()
    entry["platform"] = platform

    with pytest.raises(MalformedManifest, match="platform"):
        parse_manifest(_json(_oci_index(entry)), mt.OCI_INDEX)


# --- Structure --------------------------------------------------------------------------------


def test_an_image_manifest_without_config_is_refused() -> None:
    with pytest.raises(MalformedManifest, match="no config"):
        parse_manifest(_json(_oci_manifest(config=None)), mt.OCI_MANIFEST)


@pytest.mark.parametrize("config", [[], "sha256:" + "a" * 64, 0])
def test_an_image_manifest_whose_config_is_not_a_descriptor_is_refused(config: object) -> None:
    with pytest.raises(MalformedManifest, match="config"):
        parse_manifest(_json(_oci_manifest(config=config)), mt.OCI_MANIFEST)


@pytest.mark.parametrize("layers", [{}, "layer", 0])
def test_image_manifest_layers_that_are_not_a_list_are_refused(layers: object) -> None:
    with pytest.raises(MalformedManifest, match="'layers' must be a list"):
        parse_manifest(_json(_oci_manifest(layers=layers)), mt.OCI_MANIFEST)


def test_index_manifests_that_are_not_a_list_are_refused() -> None:
    document = _oci_index()
    document["manifests"] = {"0": _entry()}

    with pytest.raises(MalformedManifest, match="'manifests' must be a list"):
        parse_manifest(_json(document), mt.OCI_INDEX)


@pytest.mark.parametrize("data", [b"[]", b'"manifest"', b"2", b"null"])
def test_a_json_value_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedManifest, match="not a JSON object"):
        parse_manifest(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"schemaVersion": 2,}',
        b"{'schemaVersion': 2}",
        b'{"a": 1} {"b": 2}',
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        '{"schemaVersion": 2}'.encode("utf-16-le"),  # its NULs are valid UTF-8, but not JSON
    ],
)
def test_bytes_that_are_not_json_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedManifest, match="not valid JSON"):
        parse_manifest(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "data",
    [
        b'{"schemaVersion": 2, "x": "\xff"}',
        b"\xfe\xff" + '{"schemaVersion": 2}'.encode("utf-16-be"),
        b'{"schemaVersion": 2, "x": "\xed\xa0\x80"}',
    ],
    ids=["invalid-byte", "utf-16-be-with-bom", "encoded-surrogate"],
)
def test_bytes_that_are_not_utf8_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedManifest, match="not UTF-8"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_a_manifest_one_byte_over_the_cap_is_refused_before_parsing() -> None:
    cap = 4 * 1024 * 1024
    valid = _json(_oci_manifest())
    data = valid + b" " * (cap + 1 - len(valid))

    with pytest.raises(MalformedManifest, match="over the 4194304-byte cap"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_a_manifest_exactly_at_the_cap_is_parsed() -> None:
    valid = _json(_oci_manifest())
    data = valid + b" " * (4 * 1024 * 1024 - len(valid))

    assert isinstance(parse_manifest(data, mt.OCI_MANIFEST), ImageManifest)


def test_the_cap_comes_from_the_limits_given() -> None:
    with pytest.raises(MalformedManifest, match="over the 100-byte cap"):
        parse_manifest(GHCR_WGET_INDEX.read_bytes(), mt.OCI_INDEX, Limits(manifest_bytes=100))


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
        b'{"schemaVersion": 2, "annotations": ' + b'{"a":' * 100_000 + b'"b"' + b"}" * 100_001,
    ],
    ids=["arrays", "objects", "inside-annotations"],
)
def test_deeply_nested_json_is_refused_without_a_recursion_error(data: bytes) -> None:
    # RecursionError must not escape: it is not a Tofu3Error and would crash the run.
    with pytest.raises(IntegrityError):
        parse_manifest(data, mt.OCI_MANIFEST)
