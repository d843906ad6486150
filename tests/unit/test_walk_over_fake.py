"""The walk's refusals, over the in-memory registry (fake_registry.py): every lie the registry
protocol must catch, caught by the walk and the verdict alone, in milliseconds. The lies are
the lab registry's own (tofu3/lab/lies.py); the shell, curl and SSH layers that carry them on a
real vantage have their own end-to-end tests."""

from __future__ import annotations

import pytest

from tests.unit.fake_registry import REGISTRY, VANTAGES, FakeVantage, connected
from tofu3.lab.content import build_store
from tofu3.lab.tamper import TamperMode
from tofu3.observation import FailureKind
from tofu3.oci.platform import PlatformFilter, parse_platform_filter
from tofu3.reference import parse_reference
from tofu3.verdict import Verdict, VerdictKind, decide
from tofu3.verify import Options, SilentProgress, verify_connected

WGET = f"{REGISTRY}/homebrew/core/wget:1.24.5"
ALPINE = f"{REGISTRY}/library/alpine:3.19"
ONE_BOTTLE = (parse_platform_filter("darwin/arm64"),)


def _verify(
    reference: str = WGET,
    *,
    tampers: dict[str, TamperMode] | None = None,
    platforms: tuple[PlatformFilter, ...] = (),
) -> tuple[Verdict, list[FakeVantage]]:
    parsed = parse_reference(reference)
    items = connected(build_store(), tampers)
    runs = verify_connected(parsed, items, Options(platforms=platforms), SilentProgress())
    ports = [item.port for item in items if isinstance(item.port, FakeVantage)]
    assert len(ports) == len(items)
    return decide(parsed, runs), ports


def _blamed(verdict: Verdict, code: str) -> set[str | None]:
    return {f.vantage for f in verdict.findings if f.code == code}


def _message(verdict: Verdict, code: str) -> str:
    return next(f.message for f in verdict.findings if f.code == code)


def _all(mode: TamperMode) -> dict[str, TamperMode]:
    return dict.fromkeys(VANTAGES, mode)


def test_an_honest_registry_is_accepted_with_every_platform_and_blob() -> None:
    verdict, ports = _verify()

    assert verdict.kind is VerdictKind.ACCEPTED
    # 1 index + 7 manifests + 7 configs + 7 bottles.
    assert len(verdict.artifacts) == 22
    for port in ports:
        urls = [r.url for r in port.requests]
        assert urls[0] == f"https://{REGISTRY}/v2/"
        assert sum("/blobs/" in url for url in urls) == 14


def test_the_token_goes_with_every_registry_request_and_not_to_the_realm_twice() -> None:
    _, ports = _verify(platforms=ONE_BOTTLE)

    for port in ports:
        realm = [r for r in port.requests if "auth.test" in r.url]
        assert len(realm) == 1 and not any(k == "Authorization" for k, _ in realm[0].headers)
        registry = [r for r in port.requests if "/manifests/" in r.url or "/blobs/" in r.url]
        assert all(("Authorization", "Bearer fake-pull-token") in r.headers for r in registry)


def test_one_vantage_served_a_different_layer_is_rejected_naming_it() -> None:
    verdict, _ = _verify(tampers={"sgp": TamperMode.BLOB}, platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert "sgp" in _blamed(verdict, "DIGEST_MISMATCH")
    assert _blamed(verdict, "DIGEST_MISMATCH") <= {"sgp", None}


def test_a_docker_content_digest_header_that_lies_is_rejected() -> None:
    verdict, _ = _verify(tampers={"sgp": TamperMode.DIGEST_HEADER}, platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "DIGEST_MISMATCH") == {"sgp"}
    assert "Docker-Content-Digest" in _message(verdict, "DIGEST_MISMATCH")


def test_a_manifest_altered_under_the_honest_digest_header_is_rejected() -> None:
    verdict, _ = _verify(tampers={"ams": TamperMode.MANIFEST}, platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "DIGEST_MISMATCH") == {"ams"}
    assert "asked for" in _message(verdict, "DIGEST_MISMATCH")


def test_a_manifest_whose_media_type_differs_from_its_content_type_is_rejected() -> None:
    amd64 = (parse_platform_filter("linux/amd64"),)
    verdict, _ = _verify(ALPINE, tampers=_all(TamperMode.MEDIA_TYPE), platforms=amd64)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "MALFORMED_MANIFEST") == set(VANTAGES)
    assert "differs from its Content-Type" in _message(verdict, "MALFORMED_MANIFEST")


def test_a_manifest_with_both_manifests_and_layers_is_rejected_as_ambiguous() -> None:
    verdict, _ = _verify(tampers=_all(TamperMode.AMBIGUOUS), platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "MALFORMED_MANIFEST") == set(VANTAGES)
    assert "ambiguous" in _message(verdict, "MALFORMED_MANIFEST")


def test_a_schema1_manifest_is_refused_for_what_it_is_not_for_its_digest() -> None:
    verdict, _ = _verify(tampers=_all(TamperMode.SCHEMA1), platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "UNSUPPORTED_MANIFEST") == set(VANTAGES)
    assert "schema 1" in _message(verdict, "UNSUPPORTED_MANIFEST")
    assert not _blamed(verdict, "DIGEST_MISMATCH")


def test_a_manifest_that_is_not_valid_json_is_rejected() -> None:
    verdict, _ = _verify(tampers=_all(TamperMode.BAD_JSON), platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert "not valid JSON" in _message(verdict, "MALFORMED_MANIFEST")


def test_an_index_served_in_its_childs_place_is_caught_by_its_digest_without_looping() -> None:
    verdict, ports = _verify(tampers=_all(TamperMode.SELF_INDEX))

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "DIGEST_MISMATCH") == set(VANTAGES)
    for port in ports:
        assert sum("/manifests/" in r.url for r in port.requests) <= 1 + 7


def test_an_index_nested_deeper_than_tofu3_follows_is_rejected_after_three_levels() -> None:
    verdict, ports = _verify(tampers=_all(TamperMode.DEEP_INDEX), platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert "nested more than 3 deep" in _message(verdict, "MALFORMED_MANIFEST")
    for port in ports:
        assert sum("/manifests/" in r.url for r in port.requests) == 4


@pytest.mark.parametrize(
    "mode",
    [
        TamperMode.DIGEST_PATH,
        TamperMode.DIGEST_CASE,
        TamperMode.DIGEST_ALGO,
        TamperMode.DIGEST_LENGTH,
    ],
)
def test_a_descriptor_digest_that_breaks_the_grammar_is_rejected_and_never_requested(
    mode: TamperMode,
) -> None:
    verdict, ports = _verify(tampers=_all(mode))

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "MALFORMED_MANIFEST") == set(VANTAGES)
    assert "invalid digest" in _message(verdict, "MALFORMED_MANIFEST")
    for port in ports:
        assert all(".." not in r.url for r in port.requests)
        # The index was fetched; nothing it names with a broken digest was.
        assert sum("/manifests/" in r.url for r in port.requests) == 1


def test_a_manifest_over_its_cap_is_rejected() -> None:
    verdict, _ = _verify(tampers={"sfo": TamperMode.BIG_MANIFEST}, platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "RESPONSE_TOO_LARGE") == {"sfo"}


def test_a_token_response_over_its_cap_is_rejected() -> None:
    verdict, _ = _verify(tampers={"ams": TamperMode.BIG_TOKEN}, platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert _blamed(verdict, "RESPONSE_TOO_LARGE") == {"ams"}


@pytest.mark.parametrize("mode", [TamperMode.LONG, TamperMode.SHORT])
def test_a_blob_of_another_length_than_its_descriptor_is_rejected(mode: TamperMode) -> None:
    verdict, _ = _verify(tampers=_all(mode), platforms=ONE_BOTTLE)

    assert verdict.kind is VerdictKind.REJECTED
    assert {f.code for f in verdict.findings} & {"SIZE_MISMATCH", "DIGEST_MISMATCH"}


def test_a_tag_that_names_another_tree_for_one_vantage_is_a_disagreement() -> None:
    verdict, _ = _verify(tampers={"sfo": TamperMode.TAG})

    assert verdict.kind is VerdictKind.REJECTED
    assert any(f.code == "VANTAGE_DISAGREEMENT" for f in verdict.findings)


def test_a_platform_that_matches_nothing_is_the_users_mistake_everywhere() -> None:
    verdict, _ = _verify(platforms=(parse_platform_filter("plan9/mips"),))

    assert verdict.kind is VerdictKind.INCONCLUSIVE
    for run in verdict.runs:
        assert run.failure is not None and run.failure.kind is FailureKind.CONFIGURATION
        assert "plan9/mips" in run.failure.message
