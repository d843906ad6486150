"""The lab's content is shaped like the real registries' and honest about every digest;
its tampered variants differ exactly as the tamper switches promise."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.shared_fixtures import GHCR_WGET_INDEX
from tofu3.digest import Digest, digest_bytes, hex_of
from tofu3.lab import alpine, bottles
from tofu3.lab.content import (
    ALPINE,
    WGET,
    Store,
    build_alt_store,
    build_store,
    tampered_blob,
    tampered_manifest,
)
from tofu3.lab.store import IN_TOTO, StoreBuilder
from tofu3.oci.media_types import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

REAL_INDEX = GHCR_WGET_INDEX


@pytest.fixture(scope="module")
def real_index() -> dict[str, Any]:
    """The index ghcr.io served for homebrew/core/wget:1.24.5."""
    document: dict[str, Any] = json.loads(REAL_INDEX.read_bytes())
    return document


def manifest_json(store: Store, digest: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(store.manifests[Digest(digest)].body)
    return document


def wget_index(store: Store) -> dict[str, Any]:
    return manifest_json(store, store.tags[WGET])


def test_wget_index_has_the_real_platforms_in_the_real_order(real_index: dict[str, Any]) -> None:
    lab = wget_index(build_store())
    assert len(lab["manifests"]) == 7
    assert [m["platform"] for m in lab["manifests"]] == [
        m["platform"] for m in real_index["manifests"]
    ]
    assert [m["mediaType"] for m in lab["manifests"]] == [OCI_MANIFEST] * 7


def test_wget_index_carries_the_real_annotation_keys(real_index: dict[str, Any]) -> None:
    lab = wget_index(build_store())
    assert lab["annotations"] == real_index["annotations"]
    for lab_entry, real_entry in zip(lab["manifests"], real_index["manifests"], strict=True):
        assert list(lab_entry["annotations"]) == list(real_entry["annotations"])
        for key in ("org.opencontainers.image.ref.name", "sh.brew.tab"):
            assert lab_entry["annotations"][key] == real_entry["annotations"][key]


def test_wget_is_served_as_an_oci_index_in_homebrews_layout() -> None:
    store = build_store()
    stored = store.manifests[store.tags[WGET]]
    assert stored.media_type == OCI_INDEX
    # Homebrew writes no top-level mediaType; ghcr.io's Content-Type carries it.
    assert "mediaType" not in json.loads(stored.body)
    assert stored.body.startswith(b'{\n  "schemaVersion": 2,')


def test_each_bottle_annotation_names_its_layer_and_size() -> None:
    store = build_store()
    for entry in wget_index(store)["manifests"]:
        manifest = manifest_json(store, entry["digest"])
        layer = manifest["layers"][0]
        annotations = entry["annotations"]
        assert annotations["sh.brew.bottle.digest"] == hex_of(layer["digest"])
        assert annotations["sh.brew.bottle.size"] == str(layer["size"])
        tag = annotations["org.opencontainers.image.ref.name"].removeprefix("1.24.5.")
        assert layer["annotations"]["org.opencontainers.image.title"] == (
            f"wget--1.24.5.{tag}.bottle.tar.gz"
        )
        # The image manifest repeats the index's annotations, as Homebrew's do.
        assert annotations.items() <= manifest["annotations"].items()


def test_bottles_are_small_deterministic_tarballs() -> None:
    store = build_store()
    manifest = manifest_json(store, wget_index(store)["manifests"][0]["digest"])
    layer = store.blobs[Digest(manifest["layers"][0]["digest"])]
    assert 16 * 1024 < len(layer) < 128 * 1024
    assert layer[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as archive:
        names = archive.getnames()
    assert "wget/1.24.5/bin/wget" in names
    assert "wget/1.24.5/INSTALL_RECEIPT.json" in names
    config = json.loads(store.blobs[Digest(manifest["config"]["digest"])])
    assert config["rootfs"]["diff_ids"] == [digest_bytes(gzip.decompress(layer))]

    again = StoreBuilder()
    bottles.add_wget(again)
    assert again.build().tags[WGET] == store.tags[WGET]


def test_alpine_is_a_docker_manifest_list_with_an_attestation() -> None:
    store = build_store()
    listed = store.manifests[store.tags[ALPINE]]
    assert listed.media_type == DOCKER_MANIFEST_LIST
    entries = json.loads(listed.body)["manifests"]
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
        {"architecture": "unknown", "os": "unknown"},
    ]
    assert [store.manifests[e["digest"]].media_type for e in entries] == [
        DOCKER_MANIFEST,
        DOCKER_MANIFEST,
        OCI_MANIFEST,
    ]
    assert entries[2]["annotations"] == {
        "vnd.docker.reference.digest": entries[0]["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    }
    attestation = manifest_json(store, entries[2]["digest"])
    assert attestation["layers"][0]["mediaType"] == IN_TOTO
    statement = json.loads(store.blobs[attestation["layers"][0]["digest"]])
    assert statement["subject"][0]["digest"]["sha256"] == hex_of(entries[0]["digest"])


def descriptors(store: Store, digest: Digest) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (repository-relative) descriptor reachable from the manifest ``digest``."""
    document = manifest_json(store, digest)
    for child in document.get("manifests", []):
        yield "manifest", child
        yield from descriptors(store, child["digest"])
    if "config" in document:
        yield "blob", document["config"]
    for layer in document.get("layers", []):
        yield "blob", layer


@pytest.mark.parametrize("build", [build_store, build_alt_store], ids=["honest", "alternative"])
def test_every_digest_names_exactly_its_bytes_and_every_descriptor_resolves(
    build: Callable[[], Store],
) -> None:
    store = build()
    for digest, data in store.blobs.items():
        assert digest_bytes(data) == digest
    for digest, stored in store.manifests.items():
        assert digest_bytes(stored.body) == digest
    for (repository, _tag), top in store.tags.items():
        assert store.serves(repository, top)
        for kind, child in descriptors(store, top):
            target = Digest(child["digest"])
            assert store.serves(repository, target)
            if kind == "manifest":
                stored = store.manifests[target]
                assert stored.media_type == child["mediaType"]
                assert len(stored.body) == child["size"]
            else:
                assert len(store.blobs[target]) == child["size"]


def test_content_is_scoped_to_its_repository() -> None:
    store = build_store()
    assert store.resolve(ALPINE[0], store.tags[WGET]) is None
    assert store.resolve(WGET[0], store.tags[WGET]) == store.tags[WGET]
    layer = next(iter(store.layers))
    repository = next(iter(store.repositories[layer]))
    other = ALPINE[0] if repository == WGET[0] else WGET[0]
    assert store.blob(other, layer) is None


def test_alt_wget_differs_from_the_honest_one_in_exactly_one_bottle() -> None:
    honest, moved = wget_index(build_store()), wget_index(build_alt_store())
    assert build_alt_store().tags[WGET] != build_store().tags[WGET]
    differing = [
        a["annotations"]["org.opencontainers.image.ref.name"]
        for a, b in zip(honest["manifests"], moved["manifests"], strict=True)
        if a["digest"] != b["digest"]
    ]
    assert differing == [f"1.24.5.{bottles.SWAPPED_BOTTLE}"]


def test_alt_alpine_differs_in_the_amd64_image_and_its_attestation_only() -> None:
    honest = manifest_json(build_store(), build_store().tags[ALPINE])["manifests"]
    moved = manifest_json(build_alt_store(), build_alt_store().tags[ALPINE])["manifests"]
    assert [a["digest"] != b["digest"] for a, b in zip(honest, moved, strict=True)] == [
        True,
        False,
        True,
    ]
    assert moved[2]["annotations"]["vnd.docker.reference.digest"] == moved[0]["digest"]


def test_tampered_blob_keeps_its_length_and_changes_its_bytes() -> None:
    store = build_store()
    for digest in store.layers:
        data = store.blobs[digest]
        forged = tampered_blob(data)
        assert len(forged) == len(data)
        assert digest_bytes(forged) != digest
    assert tampered_blob(b"x") != b"x"


def test_tampered_manifest_is_json_of_the_same_size_with_another_digest() -> None:
    store = build_store()
    for digest, stored in store.manifests.items():
        forged = tampered_manifest(stored.body)
        assert len(forged) == len(stored.body)
        assert digest_bytes(forged) != digest
        document = json.loads(forged)
        children = document.get("manifests") or document.get("layers")
        if stored.media_type in INDEX_TYPES:
            assert children[0]["digest"] not in store.manifests
        else:
            assert children[0]["digest"] not in store.blobs


def test_content_builds_quickly() -> None:
    started = time.perf_counter()
    builder = StoreBuilder()
    bottles.add_wget(builder)
    alpine.add_alpine(builder)
    bottles.add_wget(builder, swapped=bottles.SWAPPED_BOTTLE)
    alpine.add_alpine(builder, swapped=True)
    assert time.perf_counter() - started < 0.5
