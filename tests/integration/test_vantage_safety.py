"""What tofu3 promises about the vantages themselves: the token never reaches a command line,
and a vantage whose curl could leak it is refused. Vantages here are real sshd daemons whose
PATH starts with a wrapper directory, the way an auditor would watch a machine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import WGET, run_cli
from tests.integration.wrapped import start_wrapped
from tofu3.lab.manager import LabState

pytestmark = pytest.mark.integration

LOGGING_CURL = """#!/bin/sh
# Records every argv curl is given and the config it reads on stdin, then runs the real curl.
printf '%s\\n' "$*" >> {log}/argv.log
tee -a {log}/stdin.log | /usr/bin/curl "$@"
"""
OLD_CURL = """#!/bin/sh
echo "curl 7.82.0 (x86_64-pc-linux-gnu) libcurl/7.82.0 OpenSSL/3.0.2"
"""


@dataclass
class Watched:
    """Three vantages with a wrapper in front of curl, and an inventory that uses them."""

    lab: LabState
    inventory: Path
    logs: Path


@pytest.fixture
def watched(loopback_lab: LabState, tmp_path: Path) -> Iterator[Watched]:
    inventory, started, logs = start_wrapped(
        loopback_lab, tmp_path, LOGGING_CURL, ["ams", "sfo", "sgp"]
    )
    try:
        yield Watched(loopback_lab, inventory, logs)
    finally:
        for vantage in started:
            vantage.stop()


def test_token_is_never_on_a_command_line_in_a_log_or_in_the_report(
    watched: Watched, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"

    result = run_cli(["verify", WGET, "-i", str(watched.inventory), "--report", str(report)])

    assert result.code == 0, result.stderr
    argv = (watched.logs / "argv.log").read_text()
    configs = (watched.logs / "stdin.log").read_text()
    tokens = set(re.findall(r'Authorization: Bearer ([^"\s]+)"', configs))
    # Every request of the 23 (challenge, token, index, 7 manifests, 14 blobs) on each of
    # the three vantages went through the wrapper...
    assert configs.count("\nurl = ") + configs.startswith("url = ") >= 3 * 23, (
        "the wrapper did not see every request"
    )
    # ...in one curl per level of the tree: challenge, token, index, the 7 manifests, the 14
    # blobs.
    assert argv.count("-K -") == 3 * 5
    assert tokens, "no token was sent at all: the test would prove nothing"
    places = {
        "a curl command line": argv,
        "the report": report.read_text(),
        "tofu3's output": result.stdout + result.stderr,
        "the registry log": (watched.lab.directory / "registry.log").read_text(),
    }
    for vantage_dir in tmp_path.iterdir():
        if (vantage_dir / "sshd.log").exists():
            places[f"{vantage_dir.name}'s sshd log"] = (vantage_dir / "sshd.log").read_text()
    for token in tokens:
        for where, text in places.items():
            assert token not in text, f"the token reached {where}"
    assert "Authorization" not in argv and "Bearer" not in argv


def test_vantage_with_curl_older_than_7_83_is_refused_with_the_version_found(
    loopback_lab: LabState, tmp_path: Path
) -> None:
    inventory, started, _ = start_wrapped(loopback_lab, tmp_path, OLD_CURL, ["sfo"])
    try:
        result = run_cli(["verify", WGET, "-i", str(inventory)])
    finally:
        for vantage in started:
            vantage.stop()

    assert result.code == 2
    assert "sfo" in result.stderr
    assert "7.82.0" in result.stderr and "too old" in result.stderr
    assert "ACCEPTED" not in result.stdout
