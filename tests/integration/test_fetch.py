"""``tofu3 fetch`` end to end: the lab's three real sshd vantages verify, then the
coordinator downloads with its own HTTPS client and keeps only bytes that match what the
vantages agreed on. The coordinator reaches the lab with ``--cacert`` and ``--connect-to``; an
attack on its own path is a server that stands in for the CDN (or the release host) and
passes on altered bytes.

The lab CDN refuses any request that carries an Authorization header, as S3 does: every
accepted image fetch here also shows that the registry token did not follow the redirect.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ALPINE, WGET, CliResult, run_cli
from tests.integration.file_server import ANY_PATH, FileServer, Route, start_file_server
from tests.integration.loopback import coordinator_routes, loopback_lab
from tests.integration.releases import (
    ASSET_URL,
    BACKDOORED,
    HOSTS,
    TARBALL,
    inventory,
    routes,
)
from tofu3.digest import digest_bytes
from tofu3.lab.manager import LabState, lab_tamper, write_inventory
from tofu3.lab.pki import ensure_pki
from tofu3.lab.sshd import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ledger_dir")]

GHCR_CDN = "pkg-containers.githubusercontent.com"
SONOMA = "darwin/arm64 (arm64_sonoma)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    with loopback_lab(tmp_path_factory.mktemp("fetch-lab")) as state:
        yield state


def _start(
    lab: LabState, paths: pytest.TempPathFactory, stem: str, served: dict[tuple[str, str], Route]
) -> FileServer:
    pki = ensure_pki(lab.directory)
    return start_file_server(
        paths.mktemp(stem), ca_cert=pki.ca_cert, ca_key=pki.ca_key, routes=served, stem=stem
    )


@pytest.fixture(scope="module")
def origin(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """The release file's publisher."""
    server = _start(lab, tmp_path_factory, "origin", routes(TARBALL))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def impostor(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A server on the coordinator's path serving a backdoored tarball under the same names."""
    server = _start(lab, tmp_path_factory, "impostor", routes(BACKDOORED))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def altering_cdn(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A compromised CDN edge for ghcr.io's blobs: it fetches each blob from the real (lab)
    CDN and passes it on with one byte changed, at the same length."""
    assert lab.registry is not None
    _, cdn_port = lab.registry.ports["cdn"]
    tls = ssl.create_default_context(cafile=str(lab.ca_cert))

    def altered(path: str, query: str) -> bytes:
        response = httpx.get(f"https://127.0.0.1:{cdn_port}{path}?{query}", verify=tls)
        data = bytearray(response.content)
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    server = _start(lab, tmp_path_factory, "cdn-edge", {(GHCR_CDN, ANY_PATH): Route(make=altered)})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def honest(lab: LabState) -> Iterator[LabState]:
    """The lab with no tamper switch armed, before and after the test."""
    for vantage in lab.vantages:
        lab_tamper(vantage.name, None, lab.directory)
    yield lab
    for vantage in lab.vantages:
        lab_tamper(vantage.name, None, lab.directory)


def fetch(
    target: str, output: Path, inventory: Path, *options: str
) -> tuple[CliResult, dict[str, Any]]:
    """``tofu3 fetch``, with the verification's report read from --report."""
    report_file = output.parent / f"{output.name}.report.json"
    argv = ["fetch", target, "-o", str(output), "-i", str(inventory), "--report", str(report_file)]
    result = run_cli([*argv, *options])
    report: dict[str, Any] = json.loads(report_file.read_text()) if report_file.exists() else {}
    report_file.unlink(missing_ok=True)
    return result, report


def sha256_of(path: Path) -> str:
    return digest_bytes(path.read_bytes())


def agreed_digests(report: dict[str, Any]) -> set[str]:
    return {a["digest"] for a in report["artifacts"] if a["agreed"]}


def leftovers(directory: Path) -> list[str]:
    """Anything the fetch left in ``directory`` (temporary files and directories included)."""
    return sorted(p.name for p in directory.iterdir())


def test_an_image_is_written_as_an_oci_layout_of_exactly_the_agreed_bytes(
    honest: LabState, tmp_path: Path
) -> None:
    output = tmp_path / "wget"

    result, report = fetch(WGET, output, honest.inventory_path, *coordinator_routes(honest))

    assert result.code == 0, result.stderr
    assert report["verdict"] == "accepted"
    assert "FETCHED oci-layout" in result.stdout
    assert (output / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}\n'
    index = json.loads((output / "index.json").read_text())
    assert index["manifests"] == [
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": report["resolved"]["digest"],
            "size": report["artifacts"][0]["size"],
            "annotations": {"org.opencontainers.image.ref.name": "1.24.5"},
        }
    ]
    blobs = sorted((output / "blobs" / "sha256").iterdir())
    assert all(sha256_of(blob) == f"sha256:{blob.name}" for blob in blobs)
    assert {f"sha256:{blob.name}" for blob in blobs} == agreed_digests(report)
    assert len(blobs) == 22  # index, 7 manifests, 7 configs, 7 bottles
    assert leftovers(tmp_path) == ["wget"]


def test_a_bottle_tag_fetches_the_bottle_named_as_brew_names_it(
    honest: LabState, tmp_path: Path
) -> None:
    result, report = fetch(
        WGET,
        tmp_path,
        honest.inventory_path,
        "--platform",
        "arm64_sonoma",
        *coordinator_routes(honest),
    )

    assert result.code == 0, result.stderr
    bottle = tmp_path / "wget--1.24.5.arm64_sonoma.bottle.tar.gz"
    assert leftovers(tmp_path) == [bottle.name]
    layer = next(a for a in report["artifacts"] if a["key"] == f"{SONOMA}/layer[0]")
    assert sha256_of(bottle) == layer["digest"]
    assert bottle.stat().st_size == layer["size"]
    assert "FETCHED bottle" in result.stdout


def test_a_bottle_can_be_written_to_a_path_of_ones_choosing(
    honest: LabState, tmp_path: Path
) -> None:
    target = tmp_path / "wget.tar.gz"

    result, _ = fetch(
        WGET,
        target,
        honest.inventory_path,
        "--platform",
        "x86_64_linux",
        *coordinator_routes(honest),
    )

    assert result.code == 0, result.stderr
    assert leftovers(tmp_path) == ["wget.tar.gz"]


def test_a_docker_hub_image_with_attestations_is_fetched_whole(
    honest: LabState, tmp_path: Path
) -> None:
    output = tmp_path / "alpine"

    result, report = fetch(ALPINE, output, honest.inventory_path, *coordinator_routes(honest))

    assert result.code == 0, result.stderr
    (entry,) = json.loads((output / "index.json").read_text())["manifests"]
    assert entry["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert entry["digest"] == report["resolved"]["digest"]
    blobs = {f"sha256:{p.name}" for p in (output / "blobs" / "sha256").iterdir()}
    assert blobs == agreed_digests(report)
    assert any(a["platform"] and "attestation" in a["platform"] for a in report["artifacts"])


def test_a_layer_altered_on_the_coordinators_own_path_is_never_kept(
    honest: LabState, altering_cdn: FileServer, tmp_path: Path
) -> None:
    output = tmp_path / "wget"
    routes = coordinator_routes(honest, {GHCR_CDN: ("127.0.0.1", altering_cdn.port)})

    result, report = fetch(WGET, output, honest.inventory_path, *routes)

    assert report["verdict"] == "accepted"  # the vantages' paths were honest
    assert result.code == 1, result.stderr
    assert "not kept" in result.stderr
    assert "FETCHED" not in result.stdout
    named = [d for d in agreed_digests(report) if f"blob {d}" in result.stderr]
    assert len(named) == 1, result.stderr
    assert leftovers(tmp_path) == []
    assert any(r.client == "127.0.0.1" for r in altering_cdn.seen)


def test_a_rejected_verification_fetches_nothing(honest: LabState, tmp_path: Path) -> None:
    lab_tamper("sgp", "blob", honest.directory)
    output = tmp_path / "wget"

    result, report = fetch(WGET, output, honest.inventory_path, *coordinator_routes(honest))

    assert result.code == 1
    assert report["verdict"] == "rejected"
    assert "not fetched" in result.stderr
    assert leftovers(tmp_path) == []


def test_a_release_file_is_fetched_under_its_own_name_after_its_redirect(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)
    output = tmp_path / "downloads"
    output.mkdir()
    before = len(origin.seen)

    result, report = fetch(
        ASSET_URL, output, path, "--cacert", str(lab.ca_cert), *origin.connect_to(HOSTS)
    )

    assert result.code == 0, result.stderr
    assert report["verdict"] == "accepted"
    assert leftovers(output) == ["tool-1.2.tar.gz"]
    assert (output / "tool-1.2.tar.gz").read_bytes() == TARBALL
    mine = [(r.host, r.status) for r in origin.seen[before:] if r.client == "127.0.0.1"]
    assert mine == [("github.example", 302), ("objects.example-cdn.net", 200)]


def test_a_release_file_altered_on_the_coordinators_own_path_is_never_kept(
    lab: LabState, origin: FileServer, impostor: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)
    output = tmp_path / "tool.tar.gz"

    result, report = fetch(
        ASSET_URL, output, path, "--cacert", str(lab.ca_cert), *impostor.connect_to(HOSTS)
    )

    assert report["verdict"] == "accepted"
    assert result.code == 1, result.stderr
    assert "not kept" in result.stderr and "tool-1.2.tar.gz" in result.stderr
    assert leftovers(tmp_path) == ["inventory.yaml"]


def test_the_coordinator_without_the_lab_ca_keeps_nothing_and_says_why(
    lab: LabState, origin: FileServer, tmp_path: Path
) -> None:
    path = inventory(lab, tmp_path / "inventory.yaml", origin)
    output = tmp_path / "tool.tar.gz"

    result, _ = fetch(ASSET_URL, output, path, *origin.connect_to(HOSTS))

    assert result.code == 3, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert leftovers(tmp_path) == ["inventory.yaml"]


def test_a_layout_never_replaces_a_directory_with_contents(
    honest: LabState, tmp_path: Path
) -> None:
    output = tmp_path / "wget"
    output.mkdir()
    (output / "notes.txt").write_text("mine")

    result, _ = fetch(WGET, output, honest.inventory_path, *coordinator_routes(honest))

    assert result.code == 2
    assert "not an empty directory" in result.stderr
    assert leftovers(output) == ["notes.txt"]
    assert leftovers(tmp_path) == ["wget"]


def down_inventory(lab: LabState, path: Path) -> Path:
    """The lab inventory with every vantage's SSH port one nothing listens on."""
    down = replace(lab, vantages=tuple(replace(v, port=free_port(v.address)) for v in lab.vantages))
    return write_inventory(down, path)


def test_a_recent_accepted_verification_in_the_ledger_is_fetched_without_the_vantages(
    honest: LabState, tmp_path: Path
) -> None:
    routes = [*coordinator_routes(honest), "--platform", "arm64_sonoma"]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    fresh, report = fetch(WGET, first, honest.inventory_path, *routes)
    assert fresh.code == 0, fresh.stderr

    result, _ = fetch(
        WGET, second, down_inventory(honest, tmp_path / "down.yaml"), "--max-age", "1h", *routes
    )

    assert result.code == 0, result.stderr
    assert "using the accepted verification of" in result.stdout
    assert report["resolved"]["digest"] in result.stdout
    bottle = "wget--1.24.5.arm64_sonoma.bottle.tar.gz"
    assert leftovers(second) == [bottle]
    assert (second / bottle).read_bytes() == (first / bottle).read_bytes()


def test_a_verification_older_than_max_age_is_not_relied_on(
    honest: LabState, tmp_path: Path
) -> None:
    routes = [*coordinator_routes(honest), "--platform", "arm64_sonoma"]
    fresh, _ = fetch(WGET, tmp_path / "first.tar.gz", honest.inventory_path, *routes)
    assert fresh.code == 0, fresh.stderr
    time.sleep(2.5)

    result, _ = fetch(
        WGET,
        tmp_path / "second.tar.gz",
        down_inventory(honest, tmp_path / "down.yaml"),
        "--max-age",
        "1s",
        *routes,
    )

    assert "no accepted verification younger than" in result.stdout
    assert result.code == 3  # so it verified afresh, and every vantage is down
    assert "VANTAGE_UNREACHABLE" in result.stdout
    assert leftovers(tmp_path) == ["down.yaml", "first.tar.gz"]


def test_a_ledger_entry_is_not_stretched_to_platforms_it_did_not_cover(
    honest: LabState, tmp_path: Path
) -> None:
    routes = coordinator_routes(honest)
    fresh, _ = fetch(
        WGET,
        tmp_path / "sonoma.tar.gz",
        honest.inventory_path,
        "--platform",
        "arm64_sonoma",
        *routes,
    )
    assert fresh.code == 0, fresh.stderr

    result, _ = fetch(
        WGET,
        tmp_path / "linux.tar.gz",
        down_inventory(honest, tmp_path / "down.yaml"),
        "--platform",
        "x86_64_linux",
        "--max-age",
        "1h",
        *routes,
    )

    assert result.code == 2
    assert "was not covered by the accepted verification" in result.stderr
    assert leftovers(tmp_path) == ["down.yaml", "sonoma.tar.gz"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://example.org/tool.tar.gz", "-o", "{tmp}/t"], "https only"),
        (["https://example.org/tool.tar.gz", "-o", "{tmp}/missing/t"], "not a directory"),
        (["alpine", "-o", "{tmp}/a", "--sha256", "0" * 64], "goes with a URL"),
        (["https://example.org/t.tgz", "-o", "{tmp}/t", "--platform", "linux/amd64"], "images"),
        (["alpine", "-o", "{tmp}/a", "--connect-to", "ghcr.io:443"], "--connect-to"),
        (["alpine", "-o", "{tmp}/a", "--cacert", "{tmp}/none.pem"], "--cacert"),
        (["alpine", "-o", "{tmp}/a", "--max-age", "forever"], "--max-age"),
        (["alpine", "-o", "{tmp}/a", "--max-age", "0s"], "--max-age"),
    ],
)
def test_usage_errors_exit_2_before_anything_connects(
    lab: LabState, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]

    result = run_cli(["fetch", *argv, "-i", str(lab.inventory_path)])

    assert result.code == 2
    assert message in result.stderr
    assert leftovers(tmp_path) == []
