"""``tofu3 verify URL`` end to end: the lab's three real sshd vantages each download a release
file with their own curl from an HTTPS server the lab CA vouches for (reached with curl
``--connect-to``), including a GitHub-like redirect to a CDN host. One vantage's path can be
sent to a second server that serves other bytes, as a hijacked route or a compromised mirror
would."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import CliResult, run_cli
from tests.integration.file_server import FileServer, start_file_server
from tests.integration.loopback import loopback_lab
from tests.integration.releases import (
    ASSET_URL,
    BACKDOORED,
    CDN,
    CDN_PATH,
    CDN_SIGNATURE,
    GITHUB,
    PLAIN_URL,
    RELEASES,
    TARBALL,
    VANTAGE_IPS,
    inventory,
    routes,
    sha256,
)
from tofu3.lab.manager import LabState
from tofu3.lab.pki import ensure_pki

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ledger_dir")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    with loopback_lab(tmp_path_factory.mktemp("release-lab")) as state:
        yield state


def _server(lab: LabState, paths: pytest.TempPathFactory, data: bytes, stem: str) -> FileServer:
    pki = ensure_pki(lab.directory)
    return start_file_server(
        paths.mktemp(stem), ca_cert=pki.ca_cert, ca_key=pki.ca_key, routes=routes(data), stem=stem
    )


@pytest.fixture(scope="module")
def origin(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """The publisher's server."""
    server = _server(lab, tmp_path_factory, TARBALL, "origin")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def impostor(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A server on one vantage's path, serving a backdoored tarball under the same names."""
    server = _server(lab, tmp_path_factory, BACKDOORED, "impostor")
    try:
        yield server
    finally:
        server.stop()


def verify(url: str, inventory: Path, *options: str) -> tuple[CliResult, dict[str, Any]]:
    result = run_cli(["verify", url, "-i", str(inventory), "--json", *options])
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON report (exit {result.code}):\n{result.stderr}") from None
    return result, report


def codes(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(f["code"], f["vantage"]) for f in report["findings"]]


def test_a_release_file_every_vantage_downloads_alike_is_accepted(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    before = len(origin.seen)

    result, report = verify(PLAIN_URL, inventory(lab, tmp_path / "inventory.yaml", origin))

    assert result.code == 0, result.stderr
    assert report["verdict"] == "accepted"
    assert report["reference"] == PLAIN_URL
    assert report["resolved"]["url"] == PLAIN_URL
    assert report["resolved"]["final_url"] == PLAIN_URL
    assert report["resolved"]["digest"] == sha256(TARBALL)
    assert report["pinned_reference"] == f"{PLAIN_URL}#sha256={hashlib.sha256(TARBALL).hexdigest()}"
    (artifact,) = report["artifacts"]
    assert artifact["kind"] == "file"
    assert artifact["size"] == len(TARBALL)
    assert artifact["agreed"] is True
    for seen in artifact["observations"].values():
        assert (seen["digest"], seen["size"], seen["status"]) == (
            sha256(TARBALL),
            len(TARBALL),
            200,
        )
        assert (seen["redirects"], seen["url"], seen["remote_ip"]) == (0, PLAIN_URL, "127.0.0.1")
    # Three separate downloads, one from each vantage's own address.
    requests = origin.seen[before:]
    assert sorted(r.client for r in requests) == sorted(VANTAGE_IPS)
    assert {(r.host, r.path, r.status) for r in requests} == {(RELEASES, "/tool-1.2.tar.gz", 200)}


def test_a_github_like_redirect_is_followed_and_recorded_without_its_signature(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    before = len(origin.seen)

    result, report = verify(ASSET_URL, inventory(lab, tmp_path / "inventory.yaml", origin))

    assert result.code == 0, result.stderr
    assert report["verdict"] == "accepted"
    assert report["resolved"]["final_url"] == f"https://{CDN}{CDN_PATH}"
    for seen in report["artifacts"][0]["observations"].values():
        assert seen["redirects"] == 1
        assert seen["url"] == f"https://{CDN}{CDN_PATH}"
        assert seen["digest"] == sha256(TARBALL)
    assert "d3adb33f" not in result.stdout + result.stderr
    hops = [(r.client, r.host, r.status, r.query) for r in origin.seen[before:]]
    assert sorted(h for h in hops if h[1] == GITHUB) == [
        (ip, GITHUB, 302, "") for ip in sorted(VANTAGE_IPS)
    ]
    assert sorted(h for h in hops if h[1] == CDN) == [
        (ip, CDN, 200, CDN_SIGNATURE) for ip in sorted(VANTAGE_IPS)
    ]


def test_one_vantage_served_a_backdoored_file_is_rejected_naming_it(
    lab: LabState, origin: FileServer, impostor: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin, {"sfo": impostor})

    result, report = verify(ASSET_URL, path)

    assert result.code == 1, result.stderr
    assert report["verdict"] == "rejected"
    assert codes(report) == [("VANTAGE_DISAGREEMENT", "sfo")]
    observed = report["artifacts"][0]["observations"]
    assert observed["ams"]["digest"] == observed["sgp"]["digest"] == sha256(TARBALL)
    assert observed["sfo"]["digest"] == sha256(BACKDOORED)
    assert observed["sfo"]["size"] == len(TARBALL)  # same length: only the hash tells
    assert report["pinned_reference"] is None
    assert any(r.client == "127.0.0.12" for r in impostor.seen)
    assert "REJECTED" in result.stderr


def test_a_file_that_differs_from_the_sha256_pin_is_rejected_on_every_vantage(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)

    result, report = verify(PLAIN_URL, path, "--sha256", hashlib.sha256(BACKDOORED).hexdigest())

    assert result.code == 1, result.stderr
    assert report["verdict"] == "rejected"
    assert sorted(codes(report)) == [
        ("PINNED_DIGEST_MISMATCH", "ams"),
        ("PINNED_DIGEST_MISMATCH", "sfo"),
        ("PINNED_DIGEST_MISMATCH", "sgp"),
    ]
    assert report["resolved"]["pinned_digest"] == sha256(BACKDOORED)


def test_the_pinned_reference_verifies_again_as_a_pin(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)
    pinned = f"{PLAIN_URL}#sha256={hashlib.sha256(TARBALL).hexdigest()}"

    result, report = verify(pinned, path)

    assert result.code == 0, result.stderr
    assert report["resolved"]["pinned_digest"] == sha256(TARBALL)
    assert report["artifacts"][0]["observations"]["ams"]["expected_digest"] == sha256(TARBALL)


def test_a_redirect_down_to_plain_http_is_refused_as_evidence(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)

    result, report = verify(f"https://{RELEASES}/downgrade.tar.gz", path)

    assert result.code == 1, result.stderr
    assert report["verdict"] == "rejected"
    assert sorted(codes(report)) == [
        ("PROTOCOL_VIOLATION", "ams"),
        ("PROTOCOL_VIOLATION", "sfo"),
        ("PROTOCOL_VIOLATION", "sgp"),
    ]


def test_a_missing_file_is_inconclusive_not_accepted(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)

    result, report = verify(f"https://{RELEASES}/tool-9.9.tar.gz", path)

    assert result.code == 3, result.stderr
    assert report["verdict"] == "inconclusive"
    assert {code for code, _ in codes(report)} == {"HTTP_ERROR"}


def test_a_plain_http_url_is_refused_before_any_vantage_is_asked(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)
    before = len(origin.seen)

    result = run_cli(["verify", f"http://{RELEASES}/tool-1.2.tar.gz", "-i", str(path)])

    assert result.code == 2
    assert "https only" in result.stderr
    assert result.stdout == ""
    assert len(origin.seen) == before


def test_sha256_without_a_url_is_a_usage_error(lab: LabState, tmp_path: Path) -> None:
    result = run_cli(["verify", "alpine:3.19", "--sha256", "0" * 64, "-i", str(lab.inventory_path)])

    assert result.code == 2
    assert "exactly one URL" in result.stderr
