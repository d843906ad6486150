"""The verdict, a pure function of what the vantages saw: accepted only on unanimous, complete,
self-consistent evidence; rejected on any sign of tampering; inconclusive otherwise.

The tree is wget 1.24.5 from ghcr.io, narrowed to the ventura bottle, with the real digests:
the index (as captured), ventura's image manifest, and the real bottle as its layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from tofu3.digest import Digest
from tofu3.observation import (
    ArtifactKind,
    Expected,
    Failure,
    FailureKind,
    Observation,
    VantageRun,
)
from tofu3.reference import Reference, parse_reference
from tofu3.verdict import Severity, Verdict, VerdictKind, decide

INDEX_DIGEST = Digest("sha256:f7dd153445ffd9ec96cc95d8829cd4afca6ca04b20acbd52cbbd13cfe9aeda5b")
VENTURA_MANIFEST = Digest("sha256:b2fee3da46d4a60c77a35cad208c157db0a7f8f71fd6217f11c92214c385f93e")
VENTURA_BOTTLE = Digest("sha256:1b7e2f76c90553543a5e25dadf031c6fcfe280f52bf27d89e04006f9d33fd20b")
CONFIG = Digest("sha256:" + "c0" * 32)
EVIL = Digest("sha256:" + "e" * 64)
OTHER_INDEX = Digest("sha256:" + "0" * 64)

PLATFORM = "darwin/amd64 (ventura)"
ROOT, MANIFEST = "root", PLATFORM
CONFIG_KEY, LAYER_KEY = f"{PLATFORM}/config", f"{PLATFORM}/layer[0]"
VANTAGES = ("ams", "vpn-home", "tor")


def _tree(expected_root: Digest | None = None) -> tuple[Observation, ...]:
    """What an honest vantage sees of ghcr.io/homebrew/core/wget:1.24.5 (ventura only)."""
    return (
        Observation(
            key=ROOT,
            kind=ArtifactKind.INDEX,
            platform=None,
            expected=Expected(expected_root, None, None),
            digest=INDEX_DIGEST,
            size=22_457,
            media_type="application/vnd.oci.image.index.v1+json",
        ),
        Observation(
            key=MANIFEST,
            kind=ArtifactKind.MANIFEST,
            platform=PLATFORM,
            expected=Expected(VENTURA_MANIFEST, 2605, "application/vnd.oci.image.manifest.v1+json"),
            digest=VENTURA_MANIFEST,
            size=2605,
        ),
        Observation(
            key=CONFIG_KEY,
            kind=ArtifactKind.CONFIG,
            platform=PLATFORM,
            expected=Expected(CONFIG, 380, "application/vnd.oci.image.config.v1+json"),
            digest=CONFIG,
            size=380,
        ),
        Observation(
            key=LAYER_KEY,
            kind=ArtifactKind.LAYER,
            platform=PLATFORM,
            expected=Expected(
                VENTURA_BOTTLE, 1_613_406, "application/vnd.oci.image.layer.v1.tar+gzip"
            ),
            digest=VENTURA_BOTTLE,
            size=1_613_406,
        ),
    )


def _altered(
    observations: Sequence[Observation], key: str, **changes: Any
) -> tuple[Observation, ...]:
    """``observations`` with the one under ``key`` changed as a tampered path would change it."""
    assert any(o.key == key for o in observations)
    return tuple(replace(o, **changes) if o.key == key else o for o in observations)


def _run(
    name: str,
    observations: Sequence[Observation] | None = None,
    failure: Failure | None = None,
) -> VantageRun:
    return VantageRun(
        name=name,
        host=f"{name}.example:22",
        curl_version="7.88.1",
        observations=tuple(_tree() if observations is None else observations),
        failure=failure,
    )


def _honest_runs(*names: str) -> list[VantageRun]:
    return [_run(name) for name in names]


@pytest.fixture
def wget() -> Reference:
    return parse_reference("ghcr.io/homebrew/core/wget:1.24.5")


def _codes(verdict: Verdict) -> list[str]:
    return [f.code for f in verdict.findings]


def _named(verdict: Verdict, code: str) -> list[str | None]:
    return [f.vantage for f in verdict.findings if f.code == code]


def _assert_not_accepted(verdict: Verdict) -> None:
    assert verdict.kind is not VerdictKind.ACCEPTED
    assert verdict.exit_code != 0
    assert verdict.pinned_reference is None


# --- Accepted -----------------------------------------------------------------------------


def test_three_vantages_that_agree_on_everything_accept_and_pin(wget: Reference) -> None:
    verdict = decide(wget, _honest_runs(*VANTAGES))

    assert verdict.kind is VerdictKind.ACCEPTED
    assert verdict.exit_code == 0
    assert verdict.findings == ()
    assert verdict.root_digest == INDEX_DIGEST
    assert verdict.pinned_reference == f"ghcr.io/homebrew/core/wget@{INDEX_DIGEST}"
    assert [a.key for a in verdict.artifacts] == [ROOT, MANIFEST, CONFIG_KEY, LAYER_KEY]
    assert all(a.agreed for a in verdict.artifacts)
    layer = verdict.artifacts[-1]
    assert (layer.digest, layer.size, layer.kind) == (VENTURA_BOTTLE, 1_613_406, ArtifactKind.LAYER)
    assert sorted(layer.observations) == sorted(VANTAGES)


def test_a_pinned_reference_whose_digest_every_vantage_saw_is_accepted() -> None:
    pinned = parse_reference(f"ghcr.io/homebrew/core/wget@{INDEX_DIGEST}")
    runs = [_run(name, _tree(expected_root=INDEX_DIGEST)) for name in VANTAGES]

    verdict = decide(pinned, runs)

    assert verdict.kind is VerdictKind.ACCEPTED
    assert verdict.pinned_reference == f"ghcr.io/homebrew/core/wget@{INDEX_DIGEST}"


@pytest.mark.parametrize(
    ("kind", "exit_code"),
    [(VerdictKind.ACCEPTED, 0), (VerdictKind.REJECTED, 1), (VerdictKind.INCONCLUSIVE, 3)],
)
def test_exit_codes_follow_the_contract(kind: VerdictKind, exit_code: int) -> None:
    assert kind.exit_code == exit_code


# --- Rejected: evidence of tampering -------------------------------------------------------------


def test_one_vantage_served_a_different_layer_is_rejected(wget: Reference) -> None:
    tampered = _altered(_tree(), LAYER_KEY, digest=EVIL)
    runs = [_run("ams"), _run("vpn-home"), _run("tor", tampered)]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert verdict.exit_code == 1
    assert verdict.pinned_reference is None
    assert _named(verdict, "DIGEST_MISMATCH") == ["tor"]
    assert _named(verdict, "VANTAGE_DISAGREEMENT") == ["tor"]
    mismatch = next(f for f in verdict.findings if f.code == "DIGEST_MISMATCH")
    assert mismatch.severity is Severity.CRITICAL
    assert mismatch.digest == VENTURA_BOTTLE
    assert mismatch.key == LAYER_KEY
    assert EVIL in mismatch.message
    layer = next(a for a in verdict.artifacts if a.key == LAYER_KEY)
    assert not layer.agreed
    assert layer.digest == VENTURA_BOTTLE  # the descriptor's, not any one vantage's
    assert all(a.agreed for a in verdict.artifacts if a.key != LAYER_KEY)


def test_a_layer_of_the_wrong_size_is_rejected(wget: Reference) -> None:
    truncated = _altered(_tree(), LAYER_KEY, size=1_000_000)
    runs = [_run("ams"), _run("vpn-home", truncated), _run("tor")]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _named(verdict, "SIZE_MISMATCH") == ["vpn-home"]
    finding = next(f for f in verdict.findings if f.code == "SIZE_MISMATCH")
    assert "1613406" in finding.message
    assert "1000000" in finding.message


def test_every_vantage_agreeing_on_wrong_bytes_is_still_rejected(wget: Reference) -> None:
    # Unanimity is not enough: the bytes must also match the descriptor that named them.
    runs = [_run(name, _altered(_tree(), LAYER_KEY, digest=EVIL)) for name in VANTAGES]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert sorted(n or "" for n in _named(verdict, "DIGEST_MISMATCH")) == sorted(VANTAGES)
    assert "VANTAGE_DISAGREEMENT" not in _codes(verdict)


def test_a_tag_served_differently_to_one_vantage_is_rejected_naming_it(wget: Reference) -> None:
    # Targeted serving: one vantage is given another index for the same tag.
    moved = _altered(_tree(), ROOT, digest=OTHER_INDEX)
    runs = [_run("ams"), _run("vpn-home", moved), _run("tor")]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _named(verdict, "VANTAGE_DISAGREEMENT") == ["vpn-home"]
    assert verdict.root_digest is None
    root = verdict.artifacts[0]
    assert root.key == ROOT
    assert not root.agreed


def test_three_different_answers_name_no_single_vantage(wget: Reference) -> None:
    runs = [
        _run("ams"),
        _run("vpn-home", _altered(_tree(), ROOT, digest=OTHER_INDEX)),
        _run("tor", _altered(_tree(), ROOT, digest=EVIL)),
    ]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _named(verdict, "VANTAGE_DISAGREEMENT") == [None]


def test_a_pinned_digest_no_vantage_saw_is_rejected() -> None:
    pinned = parse_reference(f"ghcr.io/homebrew/core/wget@{OTHER_INDEX}")
    runs = [_run(name, _tree(expected_root=OTHER_INDEX)) for name in VANTAGES]

    verdict = decide(pinned, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert sorted(n or "" for n in _named(verdict, "PINNED_DIGEST_MISMATCH")) == sorted(VANTAGES)
    assert "DIGEST_MISMATCH" not in _codes(verdict)
    assert verdict.pinned_reference is None


def test_a_vantage_that_saw_a_different_tree_is_rejected_naming_it(wget: Reference) -> None:
    # An extra layer only one vantage was told about.
    layer = _tree()[-1]
    extra = replace(
        layer,
        key=f"{PLATFORM}/layer[1]",
        digest=EVIL,
        expected=replace(layer.expected, digest=EVIL),
    )
    runs = [_run("ams"), _run("vpn-home"), _run("tor", (*_tree(), extra))]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _codes(verdict) == ["VANTAGE_DISAGREEMENT"]
    finding = verdict.findings[0]
    assert finding.key == f"{PLATFORM}/layer[1]"
    assert "ams, vpn-home" in finding.message


def test_a_completed_vantage_that_saw_fewer_artifacts_is_rejected_naming_it(
    wget: Reference,
) -> None:
    fewer = tuple(o for o in _tree() if o.key != LAYER_KEY)
    runs = [_run("ams"), _run("vpn-home", fewer), _run("tor")]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _named(verdict, "VANTAGE_DISAGREEMENT") == ["vpn-home"]


def test_an_integrity_failure_on_one_vantage_rejects(wget: Reference) -> None:
    failure = Failure(
        FailureKind.INTEGRITY,
        "MALFORMED_MANIFEST",
        "ambiguous document: it has both 'manifests' and 'layers'",
        key=MANIFEST,
    )
    runs = [_run("ams"), _run("vpn-home"), _run("tor", _tree()[:1], failure)]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    finding = next(f for f in verdict.findings if f.code == "MALFORMED_MANIFEST")
    assert (finding.vantage, finding.severity, finding.key) == ("tor", Severity.CRITICAL, MANIFEST)


def test_a_transport_failure_does_not_hide_a_disagreement(wget: Reference) -> None:
    unreachable = Failure(FailureKind.TRANSPORT, "VANTAGE_UNREACHABLE", "connection refused")
    runs = [
        _run("ams", (), unreachable),
        _run("vpn-home"),
        _run("tor", _altered(_tree(), LAYER_KEY, digest=EVIL)),
    ]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert "VANTAGE_UNREACHABLE" in _codes(verdict)
    assert "VANTAGE_DISAGREEMENT" in _codes(verdict)


def test_what_a_failed_vantage_saw_before_failing_still_counts(wget: Reference) -> None:
    timeout = Failure(FailureKind.TRANSPORT, "VANTAGE_TIMEOUT", "blob timed out", key=LAYER_KEY)
    partial = _altered(_tree()[:2], ROOT, digest=OTHER_INDEX)
    runs = [_run("ams"), _run("vpn-home"), _run("tor", partial, timeout)]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.REJECTED
    assert _named(verdict, "VANTAGE_DISAGREEMENT") == ["tor"]


# --- Inconclusive: absence of evidence -----------------------------------------------------------


def test_one_unreachable_vantage_with_the_rest_agreeing_is_inconclusive(wget: Reference) -> None:
    unreachable = Failure(FailureKind.TRANSPORT, "VANTAGE_UNREACHABLE", "no route to host")
    runs = [_run("ams"), _run("vpn-home", (), unreachable), _run("tor")]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.INCONCLUSIVE
    assert verdict.exit_code == 3
    assert verdict.pinned_reference is None
    [finding] = verdict.findings
    assert (finding.code, finding.vantage, finding.severity) == (
        "VANTAGE_UNREACHABLE",
        "vpn-home",
        Severity.ERROR,
    )


def test_a_vantage_that_failed_halfway_with_agreeing_partial_views_is_inconclusive(
    wget: Reference,
) -> None:
    http_error = Failure(FailureKind.TRANSPORT, "HTTP_ERROR", "HTTP 503", key=LAYER_KEY)
    runs = [_run("ams"), _run("vpn-home"), _run("tor", _tree()[:3], http_error)]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.INCONCLUSIVE
    assert _codes(verdict) == ["HTTP_ERROR"]


def test_a_configuration_failure_on_one_vantage_is_never_accepted(wget: Reference) -> None:
    refused = Failure(FailureKind.CONFIGURATION, "CONFIGURATION_ERROR", "curl 7.82.0 is too old")
    runs = [_run("ams"), _run("vpn-home"), _run("tor", (), refused)]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.INCONCLUSIVE
    _assert_not_accepted(verdict)


def test_every_vantage_failing_is_inconclusive(wget: Reference) -> None:
    down = Failure(FailureKind.TRANSPORT, "VANTAGE_UNREACHABLE", "down")
    runs = [_run(name, (), down) for name in VANTAGES]

    verdict = decide(wget, runs)

    assert verdict.kind is VerdictKind.INCONCLUSIVE
    assert verdict.artifacts == ()


def test_no_runs_at_all_is_not_accepted(wget: Reference) -> None:
    verdict = decide(wget, [])

    _assert_not_accepted(verdict)
    assert _codes(verdict) == ["NO_VANTAGES"]


def test_vantages_that_observed_nothing_are_not_accepted(wget: Reference) -> None:
    verdict = decide(wget, [_run(name, ()) for name in VANTAGES])

    _assert_not_accepted(verdict)
