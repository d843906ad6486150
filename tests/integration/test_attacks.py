"""Attacks by the registry or the path: each test arms one lie in the lab registry (real sshd
vantages, real curl, HTTPS) and checks the verdict, the exit status, the finding codes and
which vantage they blame. Served to one vantage, a lie is also a disagreement; served to every
vantage, only tofu3's own checks of the bytes against their content address catch it.

(A different layer or a different tree for one vantage: test_verify_lab.py. The lies the walk
alone catches, whatever carries them — a lying Docker-Content-Digest header, a mislabelled or
ambiguous manifest, schema 1, broken JSON, cycles, depth, bad descriptor digests — are tested
over the in-memory registry in tests/unit/test_walk_over_fake.py; what is left here is what the
shell and curl layer must hold: caps, redirects, stalls, lengths, and a path-traversal digest
that must never reach a curl config.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.attacks import AttackLab
from tests.integration.conftest import WGET, run_cli
from tofu3.lab.manager import LabMode, lab_down, lab_up

pytestmark = pytest.mark.integration

VANTAGES = {"ams", "sfo", "sgp"}
ONE_BOTTLE = ("--platform", "arm64_sonoma")
LAYER = "darwin/arm64 (arm64_sonoma)/layer[0]"


@pytest.fixture(scope="module")
def attack_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackLab]:
    directory = tmp_path_factory.mktemp("attack-lab")
    try:
        yield AttackLab(lab_up(directory, LabMode.LOOPBACK))
    finally:
        lab_down(directory)


@pytest.fixture
def lab(attack_lab: AttackLab) -> Iterator[AttackLab]:
    """The module's lab, honest before and after each attack."""
    attack_lab.tamper("all", None)
    yield attack_lab
    attack_lab.tamper("all", None)


def _requests(lab: AttackLab, since: int, *needles: str) -> list[str]:
    return [line for line in lab.registry_log()[since:] if all(n in line for n in needles)]


# Blobs that are not what their descriptor says, served to everyone: all vantages agree, and
# still the content address rejects them.


def test_blob_longer_than_its_descriptor_served_to_everyone_is_rejected(lab: AttackLab) -> None:
    armed = run_cli(["lab", "tamper", "all", "long"], lab_dir=lab.directory)
    assert armed.code == 0 and "every vantage: now served a tampered long" in armed.stderr

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    layer = run.artifact(LAYER)
    assert layer["agreed"] is True, "every vantage saw the same (wrong) bytes"
    assert all(o["size"] > o["expected_size"] for o in layer["observations"].values())
    assert run.blamed("SIZE_MISMATCH") == VANTAGES
    assert run.blamed("DIGEST_MISMATCH") == VANTAGES
    assert not run.findings("VANTAGE_DISAGREEMENT")
    assert run.report["pinned_reference"] is None


def test_blob_shorter_than_its_descriptor_served_to_everyone_is_rejected(lab: AttackLab) -> None:
    lab.tamper("all", "short")

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    layer = run.artifact(LAYER)
    assert layer["agreed"] is True
    assert all(o["size"] < o["expected_size"] for o in layer["observations"].values())
    assert run.blamed("SIZE_MISMATCH") == VANTAGES
    assert run.blamed("DIGEST_MISMATCH") == VANTAGES


def test_blob_longer_than_its_descriptor_for_one_vantage_is_rejected_naming_it(
    lab: AttackLab,
) -> None:
    lab.tamper("sfo", "long")

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("SIZE_MISMATCH") == {"sfo"}
    assert run.blamed("VANTAGE_DISAGREEMENT") == {"sfo"}


# Manifests that lie about themselves.


@pytest.mark.parametrize(
    ("kind", "served"),
    [
        pytest.param("digest-path", "sha256:../../../../etc/passwd", id="path-traversal"),
    ],
)
def test_descriptor_digest_that_breaks_the_grammar_is_rejected_and_never_requested(
    lab: AttackLab, kind: str, served: str
) -> None:
    lab.tamper("all", kind)
    since = len(lab.registry_log())

    run = lab.verify(WGET)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("MALFORMED_MANIFEST") == VANTAGES
    message = run.findings("MALFORMED_MANIFEST")[0]["message"]
    assert "invalid digest" in message and served in message
    # Refused in the parser: the only requests are the challenge, the token and the tag.
    paths = [line.split()[5] for line in lab.registry_log()[since:] if " GET " in line]
    assert all(not re.search(r"/(manifests|blobs)/[^/]*:", p) for p in paths), paths
    assert not any(".." in p or "passwd" in p or "blake3" in p for p in paths), paths


# Responses over their caps.


def test_manifest_over_its_size_cap_is_rejected(lab: AttackLab) -> None:
    lab.tamper("all", "big-manifest")

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("RESPONSE_TOO_LARGE") == VANTAGES


def test_manifest_that_never_ends_is_cut_off_at_the_cap_and_rejected(lab: AttackLab) -> None:
    lab.tamper("sfo", "endless-manifest")

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("RESPONSE_TOO_LARGE") == {"sfo"}
    assert "4194304-byte cap" in run.findings("RESPONSE_TOO_LARGE")[0]["message"]
    assert run.seconds < 60, "the endless response was read for as long as it lasted"


def test_token_response_over_its_size_cap_is_rejected(lab: AttackLab) -> None:
    lab.tamper("ams", "big-token")

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("RESPONSE_TOO_LARGE") == {"ams"}
    assert "token" in run.findings("RESPONSE_TOO_LARGE")[0]["message"]


# Redirects a client must not follow.


@pytest.mark.parametrize(
    ("kind", "scheme"),
    [
        pytest.param("redirect-http", "http", id="plain-http"),
        pytest.param("redirect-ftp", "ftp", id="ftp"),
    ],
)
def test_blob_redirect_to_another_scheme_is_refused_and_rejected(
    lab: AttackLab, kind: str, scheme: str
) -> None:
    lab.tamper("sgp", kind)

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("PROTOCOL_VIOLATION") == {"sgp"}
    message = run.findings("PROTOCOL_VIOLATION")[0]["message"]
    assert "not https" in message and f'"{scheme}"' in message


def test_blob_redirect_loop_is_cut_off_and_rejected(lab: AttackLab) -> None:
    lab.tamper("sgp", "redirect-loop")
    since = len(lab.registry_log())

    run = lab.verify(WGET, *ONE_BOTTLE)

    assert run.code == 1 and run.verdict == "rejected"
    assert run.blamed("PROTOCOL_VIOLATION") == {"sgp"}
    assert "too many redirects" in run.findings("PROTOCOL_VIOLATION")[0]["message"]
    sgp = lab.state.vantage("sgp").source_ip
    for blob in {line.split()[5] for line in _requests(lab, since, f" {sgp} ", "/blobs/")}:
        followed = _requests(lab, since, f" {sgp} ", blob)
        assert len(followed) <= 6, "more than the first request and 5 redirects"


# A CDN that stops sending: bounded by the stall timeout, and only inconclusive.


def test_cdn_that_stalls_half_way_through_a_layer_is_bounded_and_inconclusive(
    lab: AttackLab,
) -> None:
    lab.tamper("sgp", "stall")

    run = lab.verify(WGET, *ONE_BOTTLE, "--stall-timeout", "2")

    assert run.code == 3 and run.verdict == "inconclusive"
    assert run.blamed("VANTAGE_TIMEOUT") == {"sgp"}
    assert [f["severity"] for f in run.findings()] == ["error"]
    assert run.report["pinned_reference"] is None
    assert run.seconds < 40, "the stall timeout did not bound the download"
