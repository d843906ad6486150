"""Ctrl-C in the middle of a verification: the report still records what was seen, written
atomically; nothing keeps running on any vantage; a second Ctrl-C changes none of that."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import WGET
from tests.integration.vantage_tmp import level_directories, new_level_directories
from tests.integration.wrapped import start_wrapped
from tofu3.lab.manager import LabState

pytestmark = pytest.mark.integration

STALL_SECONDS = 987  # a duration nothing else on the machine sleeps for
STALLING_CURL = f"""#!/bin/sh
# Passes every request to the real curl, except blob downloads, which hang: the moment to
# press Ctrl-C.
cfg=$(cat)
case "$cfg" in
  */blobs/*) touch {{log}}/stalled.$$; sleep {STALL_SECONDS} ;;
esac
printf '%s' "$cfg" | /usr/bin/curl "$@"
"""
WAIT_SECONDS = 60


@dataclass
class Stalling:
    inventory: Path
    logs: Path


@pytest.fixture
def stalling(loopback_lab: LabState, tmp_path: Path) -> Iterator[Stalling]:
    inventory, started, logs = start_wrapped(
        loopback_lab, tmp_path, STALLING_CURL, ["ams", "sfo", "sgp"]
    )
    try:
        yield Stalling(inventory, logs)
    finally:
        for vantage in started:
            vantage.stop()


def _sleepers() -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"sleep {STALL_SECONDS}"], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


def _start_verify(inventory: Path, report: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tofu3", "verify", WGET, "--platform", "sonoma",
         "-i", str(inventory), "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def _wait_for_stall(logs: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if len(list(logs.glob("stalled.*"))) >= 3 and len(_sleepers()) >= 3:
            return
        if process.poll() is not None:
            pytest.fail(f"verify ended before stalling: {process.communicate()}")
        time.sleep(0.2)
    process.kill()
    process.wait()
    pytest.fail("the vantages never reached the blob downloads")


def _wait_no_sleepers() -> list[str]:
    deadline = time.monotonic() + 15
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.2)
    return _sleepers()


@pytest.mark.parametrize("presses", [1, 2], ids=["one-ctrl-c", "two-ctrl-c"])
def test_ctrl_c_mid_download_records_the_report_and_leaves_nothing_running(
    stalling: Stalling, tmp_path: Path, presses: int
) -> None:
    report = tmp_path / "report.json"
    directories = level_directories()
    process = _start_verify(stalling.inventory, report)
    try:
        _wait_for_stall(stalling.logs, process)
        for _ in range(presses):
            process.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # 130 is tofu3 saying "interrupted"; -SIGINT is a second Ctrl-C ending it outright.
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    assert _wait_no_sleepers() == [], "a download kept running on a vantage"
    assert new_level_directories(directories) == set(), "a vantage kept its FIFOs"
    assert not list(tmp_path.glob(".report.json.*")), "a half-written report was left"
    if presses == 1:
        document = json.loads(report.read_text())
        assert document["verdict"] == "inconclusive"
        assert {f["code"] for f in document["findings"]} == {"INTERRUPTED"}
        assert {f["vantage"] for f in document["findings"]} == {"ams", "sfo", "sgp"}
        # What had been seen before the interrupt is kept.
        assert any(a["kind"] == "index" for a in document["artifacts"])
    elif report.exists():
        # A second Ctrl-C may stop the report from being written, never half-write it.
        assert json.loads(report.read_text())["verdict"] == "inconclusive"
