"""What ``tofu3 fetch`` writes, as pure functions and file operations: Homebrew bottle names
(from the real ghcr.io index of wget 1.24.5), the OCI layout's index.json, and the atomic
writers that leave nothing behind when the bytes turn out wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.fixtures_path import GHCR_WGET_INDEX
from tofu3.atomic import atomic_directory, atomic_file
from tofu3.digest import Digest, digest_bytes
from tofu3.errors import ConfigurationError, MalformedManifest
from tofu3.fetch.bottle import bottle_file_name, bottle_layer, single_bottle
from tofu3.fetch.layout import blob_path, chosen_entries, index_json, root_entry
from tofu3.oci.manifest import Descriptor, ImageManifest, Index, Platform, parse_manifest
from tofu3.oci.media_types import OCI_INDEX, OCI_MANIFEST
from tofu3.oci.platform import parse_platform_filter, select
from tofu3.reference import parse_reference

WGET = parse_reference("ghcr.io/homebrew/core/wget:1.24.5")
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SONOMA_BOTTLE = "9befdad158e59763fb0622083974a6252878019702d8c961e1bec3a5f5305339"


def _wget_index() -> Index:
    index = parse_manifest(GHCR_WGET_INDEX.read_bytes(), OCI_INDEX)
    assert isinstance(index, Index)
    return index


def _chosen(*specs: str) -> list[Descriptor]:
    return select(_wget_index(), [parse_platform_filter(s) for s in specs])


def _manifest_with_layers(*digests: str) -> ImageManifest:
    config = Descriptor("application/vnd.oci.image.config.v1+json", digest_bytes(b"{}"), 2)
    layers = tuple(Descriptor(LAYER, Digest(d), 10) for d in digests)
    return ImageManifest(OCI_MANIFEST, config, layers)


def test_one_bottle_tag_names_the_file_as_brew_does() -> None:
    bottle = single_bottle(_chosen("arm64_sonoma"))

    assert bottle is not None
    assert bottle_file_name(WGET, bottle) == "wget--1.24.5.arm64_sonoma.bottle.tar.gz"


def test_a_reference_by_digest_takes_the_version_from_the_entry() -> None:
    bottle = single_bottle(_chosen("x86_64_linux"))
    by_digest = parse_reference(f"ghcr.io/homebrew/core/wget@sha256:{'a' * 64}")

    assert bottle is not None
    assert bottle_file_name(by_digest, bottle) == "wget--1.24.5.x86_64_linux.bottle.tar.gz"


def test_an_os_arch_filter_that_matches_several_bottles_is_not_one_bottle() -> None:
    assert len(_chosen("darwin/arm64")) == 3
    assert single_bottle(_chosen("darwin/arm64")) is None
    assert single_bottle(_chosen("linux/amd64")) is not None  # the only Linux bottle


def test_a_bottle_layer_must_be_the_one_the_index_annotation_names() -> None:
    bottle = single_bottle(_chosen("arm64_sonoma"))
    assert bottle is not None

    good = bottle_layer(_manifest_with_layers(f"sha256:{SONOMA_BOTTLE}"), bottle)

    assert good.digest == f"sha256:{SONOMA_BOTTLE}"
    with pytest.raises(MalformedManifest, match=r"sh\.brew\.bottle\.digest"):
        bottle_layer(_manifest_with_layers(f"sha256:{'b' * 64}"), bottle)
    with pytest.raises(MalformedManifest, match="2 layers"):
        bottle_layer(_manifest_with_layers(f"sha256:{SONOMA_BOTTLE}", f"sha256:{'c' * 64}"), bottle)


def test_an_entry_that_is_not_a_bottle_gets_no_bottle_name() -> None:
    plain = Descriptor(OCI_MANIFEST, Digest(f"sha256:{'d' * 64}"), 5, Platform("linux", "amd64"))

    assert single_bottle([plain]) is None
    with pytest.raises(ConfigurationError):
        bottle_file_name(WGET, plain)


def test_the_whole_reference_is_the_layouts_one_named_entry() -> None:
    digest = Digest(f"sha256:{'e' * 64}")

    document = json.loads(index_json([root_entry(OCI_INDEX, digest, 12434, "1.24.5")]))

    assert document == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_INDEX,
                "digest": digest,
                "size": 12434,
                "annotations": {"org.opencontainers.image.ref.name": "1.24.5"},
            }
        ],
    }


def test_a_reference_without_a_tag_gives_an_unnamed_entry() -> None:
    entry = root_entry(OCI_MANIFEST, Digest(f"sha256:{'f' * 64}"), 10, None).to_json()

    assert "annotations" not in entry


def test_one_chosen_platform_is_named_by_the_tag_and_keeps_its_platform() -> None:
    (entry,) = chosen_entries(_chosen("arm64_sonoma"), "1.24.5")

    document = entry.to_json()
    assert document["annotations"] == {"org.opencontainers.image.ref.name": "1.24.5"}
    assert document["platform"] == {
        "architecture": "arm64",
        "os": "darwin",
        "os.version": "macOS 14",
    }


def test_several_chosen_platforms_each_get_their_own_usable_name() -> None:
    entries = chosen_entries(_chosen("darwin/arm64"), "1.24.5")

    names = [entry.ref_name for entry in entries]
    assert names == ["1.24.5.arm64_monterey", "1.24.5.arm64_sonoma", "1.24.5.arm64_ventura"]


def test_several_entries_without_ref_names_are_named_by_platform_uniquely() -> None:
    amd64 = Descriptor(OCI_MANIFEST, Digest(f"sha256:{'1' * 64}"), 5, Platform("linux", "amd64"))
    arm = Platform("linux", "arm", "v7")
    one = Descriptor(OCI_MANIFEST, Digest(f"sha256:{'2' * 64}"), 5, arm)
    two = Descriptor(OCI_MANIFEST, Digest(f"sha256:{'3' * 64}"), 5, arm)

    names = [e.ref_name for e in chosen_entries([amd64, one, two], "3.19")]

    assert names == ["3.19-linux-amd64", "3.19-linux-arm-v7-1", "3.19-linux-arm-v7-2"]


def test_blobs_live_under_their_algorithm_and_hex(tmp_path: Path) -> None:
    digest = Digest(f"sha512:{'9' * 128}")

    assert blob_path(tmp_path, digest) == tmp_path / "blobs" / "sha512" / ("9" * 128)


def test_an_atomic_file_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "tool.tar.gz"

    with pytest.raises(MalformedManifest), atomic_file(target) as sink:
        sink.write(b"half of it")
        raise MalformedManifest("the bytes were wrong")

    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as sink:
        sink.write(b"all of it")
    assert target.read_bytes() == b"all of it"
    assert list(tmp_path.iterdir()) == [target]


def test_an_atomic_directory_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "layout"

    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as temp:
        (temp / "blobs").mkdir()
        (temp / "blobs" / "one").write_bytes(b"1")
        raise KeyboardInterrupt

    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as temp:
        (temp / "index.json").write_bytes(b"{}")
    assert (target / "index.json").read_bytes() == b"{}"
    assert list(tmp_path.iterdir()) == [target]


def test_an_atomic_directory_never_replaces_a_directory_with_contents(tmp_path: Path) -> None:
    target = tmp_path / "layout"
    target.mkdir()
    (target / "keep").write_bytes(b"mine")

    with pytest.raises(OSError), atomic_directory(target) as temp:
        (temp / "index.json").write_bytes(b"{}")

    assert [p.name for p in target.iterdir()] == ["keep"]
    assert list(tmp_path.iterdir()) == [target]
