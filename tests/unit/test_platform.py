"""--platform filters: what a user may type, and what each choice selects in a real index.

A filter is user input that names index entries; it must never smuggle shell syntax, never
quietly select nothing, and never select a build attestation in place of an image.
"""

from __future__ import annotations

import pytest

from tofu3.errors import ConfigurationError, PlatformNotFound
from tofu3.oci import media_types as mt
from tofu3.oci.manifest import Index, parse_manifest
from tofu3.oci.platform import PlatformFilter, describe, parse_platform_filter, select

from .fixtures_path import GHCR_WGET_BOTTLE_TAGS, GHCR_WGET_INDEX, local_fixture


@pytest.fixture
def ghcr_wget_index() -> Index:
    """The real index ghcr.io served for homebrew/core/wget:1.24.5 (7 bottles)."""
    parsed = parse_manifest(GHCR_WGET_INDEX.read_bytes(), mt.OCI_INDEX)
    assert isinstance(parsed, Index)
    return parsed


@pytest.fixture
def docker_list_with_attestations() -> Index:
    """An alpine-shaped Docker manifest list: two images and their two attestations."""
    parsed = parse_manifest(
        local_fixture("docker_manifest_list_with_attestations.json"), mt.DOCKER_MANIFEST_LIST
    )
    assert isinstance(parsed, Index)
    return parsed


def _filters(*texts: str) -> list[PlatformFilter]:
    return [parse_platform_filter(text) for text in texts]


# --- Parsing what the user typed --------------------------------------------------------------


def test_os_and_architecture_parse() -> None:
    parsed = parse_platform_filter("darwin/arm64")

    assert (parsed.os, parsed.architecture, parsed.variant, parsed.bottle_tag) == (
        "darwin",
        "arm64",
        None,
        None,
    )


def test_os_architecture_and_variant_parse() -> None:
    parsed = parse_platform_filter("linux/arm64/v8")

    assert (parsed.os, parsed.architecture, parsed.variant) == ("linux", "arm64", "v8")
    assert parsed.bottle_tag is None


@pytest.mark.parametrize("tag", [*GHCR_WGET_BOTTLE_TAGS, "all"])
def test_a_homebrew_bottle_tag_parses(tag: str) -> None:
    parsed = parse_platform_filter(tag)

    assert parsed.bottle_tag == tag
    assert parsed.os is None
    assert parsed.text == tag


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("linux/amd64;rm", id="semicolon"),
        pytest.param("linux/amd64 && id", id="and-list"),
        pytest.param("$(id)/amd64", id="command-substitution"),
        pytest.param("`id`", id="backticks"),
        pytest.param("linux/amd64|sh", id="pipe"),
        pytest.param("arm64_sonoma\n", id="trailing-newline"),
        pytest.param("Linux/AMD64", id="uppercase-os-arch"),
        pytest.param("ARM64_SONOMA", id="uppercase-bottle-tag"),
        pytest.param("", id="empty"),
        pytest.param("/", id="only-slash"),
        pytest.param("linux/", id="empty-architecture"),
        pytest.param("/amd64", id="empty-os"),
        pytest.param("linux//v8", id="empty-middle"),
        pytest.param("linux/arm64/v8/extra", id="too-many-slashes"),
        pytest.param("-linux/amd64", id="leading-dash"),
        pytest.param("arm64-sonoma", id="bottle-tag-with-dash"),
        pytest.param("arm64.sonoma", id="bottle-tag-with-dot"),
        pytest.param("a" * 65, id="bottle-tag-too-long"),
        pytest.param("linux/" + "a" * 65, id="part-too-long"),
        pytest.param("linux/amd64 ", id="trailing-space"),
    ],
)
def test_an_invalid_platform_filter_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid --platform"):
        parse_platform_filter(text)


# --- Selecting from the real ghcr.io index -----------------------------------------------------


def test_no_filter_selects_every_bottle(ghcr_wget_index: Index) -> None:
    chosen = select(ghcr_wget_index, [])

    assert [d.bottle_tag for d in chosen] == list(GHCR_WGET_BOTTLE_TAGS)


def test_a_bottle_tag_selects_exactly_that_bottle(ghcr_wget_index: Index) -> None:
    chosen = select(ghcr_wget_index, _filters("arm64_sonoma"))

    assert [d.bottle_tag for d in chosen] == ["arm64_sonoma"]
    assert chosen[0].digest == (
        "sha256:5f79c10fd66b7d3f40471bfc8f1de3b97bb8f571931c1c610edaf443c00bd2b0"
    )


def test_os_and_architecture_select_every_matching_bottle(ghcr_wget_index: Index) -> None:
    chosen = select(ghcr_wget_index, _filters("darwin/arm64"))

    assert [d.bottle_tag for d in chosen] == ["arm64_monterey", "arm64_sonoma", "arm64_ventura"]


def test_linux_amd64_selects_the_linux_bottle(ghcr_wget_index: Index) -> None:
    chosen = select(ghcr_wget_index, _filters("linux/amd64"))

    assert [d.bottle_tag for d in chosen] == ["x86_64_linux"]


def test_overlapping_filters_select_each_entry_once(ghcr_wget_index: Index) -> None:
    chosen = select(ghcr_wget_index, _filters("darwin/arm64", "arm64_sonoma", "ventura"))

    assert [d.bottle_tag for d in chosen] == [
        "arm64_monterey",
        "arm64_sonoma",
        "arm64_ventura",
        "ventura",
    ]


@pytest.mark.parametrize("text", ["arm64_sequoia", "windows/amd64", "darwin/arm64/v8"])
def test_a_filter_that_matches_nothing_lists_what_the_index_has(
    ghcr_wget_index: Index, text: str
) -> None:
    with pytest.raises(PlatformNotFound) as raised:
        select(ghcr_wget_index, _filters(text))

    message = str(raised.value)
    assert repr(text) in message
    for entry in ghcr_wget_index.manifests:
        assert describe(entry) in message
    assert "darwin/arm64 (arm64_sonoma)" in message


def test_one_unmatched_filter_among_good_ones_is_still_an_error(ghcr_wget_index: Index) -> None:
    with pytest.raises(PlatformNotFound, match="arm64_sequoia"):
        select(ghcr_wget_index, _filters("arm64_sonoma", "arm64_sequoia"))


# --- Attestations ---------------------------------------------------------------------------


def test_no_filter_includes_attestations(docker_list_with_attestations: Index) -> None:
    # They are part of what was published, so an unfiltered verification covers them too.
    chosen = select(docker_list_with_attestations, [])

    assert len(chosen) == 4
    assert sum(d.is_attestation for d in chosen) == 2


def test_a_platform_filter_never_selects_an_attestation(
    docker_list_with_attestations: Index,
) -> None:
    chosen = select(docker_list_with_attestations, _filters("linux/amd64", "linux/arm64"))

    assert [describe(d) for d in chosen] == ["linux/amd64", "linux/arm64/v8"]
    assert not any(d.is_attestation for d in chosen)


def test_a_filter_naming_unknown_unknown_does_not_reach_the_attestations(
    docker_list_with_attestations: Index,
) -> None:
    with pytest.raises(PlatformNotFound) as raised:
        select(docker_list_with_attestations, _filters("unknown/unknown"))

    assert "attestation" not in str(raised.value)
    assert "linux/amd64" in str(raised.value)


def test_a_variant_filter_selects_only_that_variant(docker_list_with_attestations: Index) -> None:
    chosen = select(docker_list_with_attestations, _filters("linux/arm64/v8"))

    assert [describe(d) for d in chosen] == ["linux/arm64/v8"]
    with pytest.raises(PlatformNotFound):
        select(docker_list_with_attestations, _filters("linux/arm64/v7"))


def test_a_bottle_tag_filter_does_not_match_entries_without_bottle_annotations(
    docker_list_with_attestations: Index,
) -> None:
    with pytest.raises(PlatformNotFound):
        select(docker_list_with_attestations, _filters("amd64"))
