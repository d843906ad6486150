"""tofu3 cross-checked against a tool people already trust: for the same references, the
manifest and blob digests tofu3's vantages agree on equal what skopeo (Debian's package)
reports, against the lab registry and against the CNCF distribution registry; and what
``tofu3 fetch`` writes is an OCI layout skopeo copies with the same digests.

skopeo reaches the lab by the real names (ghcr.io, registry-1.docker.io, and their token
realms and CDNs) through a CONNECT proxy that tunnels each name to the lab (skopeo has no
``--connect-to``, and /etc/hosts is left alone); the distribution registry directly at
127.0.0.1:PORT, which its certificate names. skopeo trusts the lab CA from a cert dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ALPINE, WGET, CliResult, run_cli
from tests.integration.connect_proxy import ConnectProxy
from tests.integration.distribution import (
    REAL_BOTTLE_DIGEST,
    WGET_REPOSITORY,
    WGET_TAG,
    DistributionRegistry,
    bottle_tree,
    push_tree,
    real_ventura_bottle,
    stand_in_bottle,
    start_distribution_registry,
)
from tests.integration.loopback import HTTPS_PORT, coordinator_routes, loopback_lab
from tofu3.digest import digest_bytes
from tofu3.lab.manager import LabState, write_inventory
from tofu3.lab.netns import SERVICE_HOSTS
from tofu3.lab.pki import ensure_pki

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ledger_dir")]

SKOPEO = "/usr/bin/skopeo"
SKOPEO_TIMEOUT = 120.0
"""Seconds one skopeo command may take (on expiry subprocess.run kills it)."""
MANIFEST_KINDS = ("index", "manifest")
BLOB_KINDS = ("config", "layer")


@dataclass(frozen=True)
class Digests:
    """A tree as content addresses: the root, the other manifests, the blobs."""

    root: str
    manifests: frozenset[str]
    blobs: frozenset[str]


def sha256_of(path: Path) -> str:
    return digest_bytes(path.read_bytes())


def from_report(report: dict[str, Any]) -> Digests:
    """What tofu3's vantages agreed on."""
    assert report["verdict"] == "accepted", report["findings"]
    artifacts = report["artifacts"]
    return Digests(
        root=report["resolved"]["digest"],
        manifests=frozenset(
            a["digest"] for a in artifacts if a["kind"] in MANIFEST_KINDS and a["key"] != "root"
        ),
        blobs=frozenset(a["digest"] for a in artifacts if a["kind"] in BLOB_KINDS),
    )


def from_skopeo_dir(directory: Path) -> Digests:
    """What ``skopeo copy --all ... dir:DIRECTORY`` wrote, every file hashed here: each one
    must hash to the digest skopeo named it by."""
    manifests: set[str] = set()
    blobs: set[str] = set()
    for path in directory.iterdir():
        if path.name in ("manifest.json", "version"):
            continue
        hex_digest = path.name.removesuffix(".manifest.json")
        assert sha256_of(path) == f"sha256:{hex_digest}", path
        (manifests if path.name.endswith(".manifest.json") else blobs).add(f"sha256:{hex_digest}")
    return Digests(sha256_of(directory / "manifest.json"), frozenset(manifests), frozenset(blobs))


class Skopeo:
    """skopeo with an isolated configuration: no registries.conf mirrors, no credentials, the
    lab CA as its only extra trust, and (for the lab) the CONNECT proxy."""

    def __init__(self, home: Path, ca_cert: Path, proxy: ConnectProxy | None) -> None:
        self.cert_dir = home / "certs"
        self.cert_dir.mkdir(parents=True)
        shutil.copyfile(ca_cert, self.cert_dir / "ca.crt")
        (home / "registries.conf").write_text("")
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "NO_PROXY": "",
        }
        if proxy is not None:
            self._env["HTTPS_PROXY"] = proxy.url

    def run(self, *args: str) -> bytes:
        result = subprocess.run(
            [SKOPEO, "--insecure-policy", *args],
            capture_output=True,
            timeout=SKOPEO_TIMEOUT,
            env=self._env,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    def raw_digest(self, source: str) -> str:
        """sha256 of ``skopeo inspect --raw`` (the manifest bytes exactly as served)."""
        raw = self.run("inspect", "--raw", "--cert-dir", str(self.cert_dir), "--no-creds", source)
        return digest_bytes(raw)

    def copy_all(self, source: str, destination: Path) -> Digests:
        """``skopeo copy --all SOURCE dir:DESTINATION``, read back as digests."""
        tls = ["--src-cert-dir", str(self.cert_dir), "--src-no-creds"]
        if source.startswith("oci:"):
            tls = []
        self.run("copy", "--all", *tls, source, f"dir:{destination}")
        return from_skopeo_dir(destination)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    with loopback_lab(tmp_path_factory.mktemp("skopeo-lab")) as state:
        yield state


@pytest.fixture(scope="module")
def proxy(lab: LabState) -> Iterator[ConnectProxy]:
    """Every real host name the lab stands in for, tunnelled to the lab's listener for it."""
    assert lab.registry is not None
    routes = {
        f"{host}:{HTTPS_PORT}": lab.registry.ports[role] for host, role in SERVICE_HOSTS.items()
    }
    running = ConnectProxy(routes)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def skopeo(lab: LabState, proxy: ConnectProxy, tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home", lab.ca_cert, proxy)


@pytest.fixture(scope="module")
def distribution(
    lab: LabState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DistributionRegistry]:
    """The CNCF distribution registry with the real wget ventura bottle and a Linux one."""
    pki = ensure_pki(lab.directory)
    registry = start_distribution_registry(
        tmp_path_factory.mktemp("distribution"), ca_cert=pki.ca_cert, ca_key=pki.ca_key
    )
    try:
        linux = stand_in_bottle("x86_64_linux", "linux", "amd64", {"bin/wget": b"#!/bin/sh\n"})
        push_tree(registry, WGET_REPOSITORY, WGET_TAG, bottle_tree([real_ventura_bottle(), linux]))
        yield registry
    finally:
        registry.stop()
    assert not Path(f"/proc/{registry.pid}").exists()


def verify(reference: str, inventory: Path) -> dict[str, Any]:
    result = run_cli(["verify", reference, "-i", str(inventory), "--json"])
    assert result.code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def fetch(reference: str, output: Path, inventory: Path, *options: str) -> CliResult:
    result = run_cli(["fetch", reference, "-o", str(output), "-i", str(inventory), *options])
    assert result.code == 0, result.stderr
    return result


@pytest.mark.parametrize("reference", [WGET, ALPINE], ids=["ghcr-wget", "docker-hub-alpine"])
def test_the_lab_registry_serves_tofu3_and_skopeo_the_same_digests(
    lab: LabState, skopeo: Skopeo, proxy: ConnectProxy, tmp_path: Path, reference: str
) -> None:
    tofu3 = from_report(verify(reference, lab.inventory_path))

    raw = skopeo.raw_digest(f"docker://{reference}")
    copied = skopeo.copy_all(f"docker://{reference}", tmp_path / "skopeo")

    assert raw == tofu3.root
    assert copied == tofu3
    assert tofu3.manifests and tofu3.blobs  # a whole tree, not just a root
    # skopeo went to the lab by the real names, token realm and CDN included.
    registry = "ghcr.io" if reference == WGET else "registry-1.docker.io"
    cdn = (
        "pkg-containers.githubusercontent.com"
        if reference == WGET
        else "production.cloudflare.docker.com"
    )
    assert {f"{registry}:443", f"{cdn}:443"} <= set(proxy.targets)


def test_the_distribution_registry_serves_tofu3_and_skopeo_the_same_digests(
    lab: LabState, distribution: DistributionRegistry, tmp_path: Path
) -> None:
    inventory = write_inventory(
        lab,
        tmp_path / "inventory.yaml",
        curl_args_extra={
            v.name: ["--connect-to", f"{distribution.host}:127.0.0.1:{distribution.port}"]
            for v in lab.vantages
        },
    )
    reference = f"{distribution.host}/{WGET_REPOSITORY}:{WGET_TAG}"
    skopeo = Skopeo(tmp_path / "skopeo-home", lab.ca_cert, proxy=None)
    direct = f"docker://127.0.0.1:{distribution.port}/{WGET_REPOSITORY}:{WGET_TAG}"

    tofu3 = from_report(verify(reference, inventory))
    raw = skopeo.raw_digest(direct)
    copied = skopeo.copy_all(direct, tmp_path / "skopeo")

    assert raw == tofu3.root
    assert copied == tofu3
    assert REAL_BOTTLE_DIGEST in tofu3.blobs


@pytest.mark.parametrize("reference", [WGET, ALPINE], ids=["ghcr-wget", "docker-hub-alpine"])
def test_a_fetched_layout_round_trips_through_skopeo_with_the_same_digests(
    lab: LabState, skopeo: Skopeo, tmp_path: Path, reference: str
) -> None:
    layout = tmp_path / "layout"
    fetch(reference, layout, lab.inventory_path, *coordinator_routes(lab))
    tofu3 = from_report(verify(reference, lab.inventory_path))

    assert skopeo.raw_digest(f"oci:{layout}") == tofu3.root
    assert skopeo.copy_all(f"oci:{layout}", tmp_path / "copied") == tofu3


def test_a_layout_of_several_chosen_bottles_names_each_for_skopeo(
    lab: LabState, skopeo: Skopeo, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    fetch(WGET, layout, lab.inventory_path, "--platform", "darwin/arm64", *coordinator_routes(lab))
    report = verify(WGET, lab.inventory_path)
    sonoma = next(a for a in report["artifacts"] if a["key"] == "darwin/arm64 (arm64_sonoma)")

    skopeo.run("copy", f"oci:{layout}:1.24.5.arm64_sonoma", f"dir:{tmp_path / 'sonoma'}")

    assert sha256_of(tmp_path / "sonoma" / "manifest.json") == sonoma["digest"]
    layer = next(
        a for a in report["artifacts"] if a["key"] == "darwin/arm64 (arm64_sonoma)/layer[0]"
    )
    assert (
        sha256_of(tmp_path / "sonoma" / layer["digest"].removeprefix("sha256:")) == layer["digest"]
    )


def test_a_layout_fetched_from_the_distribution_registry_round_trips_through_skopeo(
    lab: LabState, distribution: DistributionRegistry, tmp_path: Path
) -> None:
    # distribution answers GET /v2/ with 200 and no challenge: no token on this path.
    inventory = write_inventory(
        lab,
        tmp_path / "inventory.yaml",
        curl_args_extra={
            v.name: ["--connect-to", f"{distribution.host}:127.0.0.1:{distribution.port}"]
            for v in lab.vantages
        },
    )
    reference = f"{distribution.host}/{WGET_REPOSITORY}:{WGET_TAG}"
    layout = tmp_path / "layout"
    skopeo = Skopeo(tmp_path / "skopeo-home", lab.ca_cert, proxy=None)
    connect = f"{distribution.host}:127.0.0.1:{distribution.port}"

    fetch(reference, layout, inventory, "--cacert", str(lab.ca_cert), "--connect-to", connect)
    tofu3 = from_report(verify(reference, inventory))

    assert skopeo.copy_all(f"oci:{layout}", tmp_path / "copied") == tofu3
    assert (layout / "blobs" / "sha256" / REAL_BOTTLE_DIGEST.removeprefix("sha256:")).is_file()
