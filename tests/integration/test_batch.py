"""Batches: many references over one SSH connection per vantage, one token per repository
per vantage, a verdict per reference and a summary; the exit status is the worst."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli
from tofu3.lab.manager import LabState, lab_tamper

pytestmark = pytest.mark.integration

BATCH_SIZE = 50
# The same alpine index, spelled every way a user might: 50 references, one repository.
SPELLINGS = (
    "alpine:3.19",
    "library/alpine:3.19",
    "docker.io/library/alpine:3.19",
    "index.docker.io/library/alpine:3.19",
    "docker.io/alpine:3.19",
)


def _logged(lab: LabState, needle: str) -> dict[str, int]:
    return {
        v.name: (lab.directory / "vantages" / v.name / "sshd.log").read_text().count(needle)
        for v in lab.vantages
    }


def _logins(lab: LabState) -> dict[str, int]:
    return _logged(lab, "Accepted publickey")


def _sessions(lab: LabState) -> dict[str, int]:
    """SSH exec channels opened (sshd logs one "Starting session: command" for each)."""
    return _logged(lab, "Starting session: command")


def _token_requests(lab: LabState) -> dict[str, int]:
    lines = (lab.directory / "registry.log").read_text().splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        match = re.search(r" (\d+\.\d+\.\d+\.\d+) GET \S+ /token ", line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def test_fifty_references_open_one_connection_one_session_and_one_token_per_vantage(
    loopback_lab: LabState, tmp_path: Path
) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text(
        "# a batch\n" + "\n".join(SPELLINGS[i % len(SPELLINGS)] for i in range(BATCH_SIZE)) + "\n"
    )
    logins_before = _logins(loopback_lab)
    sessions_before = _sessions(loopback_lab)
    tokens_before = _token_requests(loopback_lab)

    result = run_cli(
        ["verify", "-f", str(refs), "-i", str(loopback_lab.inventory_path),
         "--platform", "linux/amd64", "--json"],
    )  # fmt: skip

    assert result.code == 0, result.stderr[-2000:]
    reports = result.json()
    assert len(reports) == BATCH_SIZE
    assert {r["verdict"] for r in reports} == {"accepted"}
    logins_after = _logins(loopback_lab)
    opened = {name: logins_after[name] - logins_before[name] for name in logins_after}
    assert opened == {"ams": 1, "sfo": 1, "sgp": 1}
    sessions_after = _sessions(loopback_lab)
    channels = {name: sessions_after[name] - sessions_before[name] for name in sessions_after}
    assert channels == {"ams": 1, "sfo": 1, "sgp": 1}
    tokens_after = _token_requests(loopback_lab)
    asked = {ip: tokens_after[ip] - tokens_before.get(ip, 0) for ip in tokens_after}
    assert sorted(asked.values()) == [1, 1, 1], asked
    assert "50 accepted, 0 rejected, 0 inconclusive of 50 references" in result.stderr


def test_batch_reports_each_reference_and_exits_with_the_worst(
    loopback_lab: LabState, tmp_path: Path
) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text("alpine:3.19\nghcr.io/homebrew/core/wget:1.24.5\n")
    lab_tamper("sfo", "blob", loopback_lab.directory)
    try:
        result = run_cli(
            ["verify", "-f", str(refs), "alpine:3.19", "-i", str(loopback_lab.inventory_path),
             "--platform", "linux/amd64"],
        )  # fmt: skip
    finally:
        lab_tamper("sfo", None, loopback_lab.directory)

    assert result.code == 1
    summary = result.stdout[result.stdout.rfind("summary") :]
    assert summary.count("REJECTED") == 3, summary
    assert "0 accepted, 3 rejected, 0 inconclusive of 3 references" in result.stdout


def test_an_empty_reference_file_is_a_usage_error(tmp_path: Path) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text("# nothing\n\n")

    result = run_cli(["verify", "-f", str(refs), "-i", str(tmp_path / "none.yaml")])

    assert result.code == 2
    assert "no reference given" in result.stderr
