"""``tofu3 lab latency``: the lab registry (token service and CDN too) waits before every
response, and a verification through it still comes out right."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import WGET, run_cli
from tofu3.lab.manager import LabState

pytestmark = pytest.mark.integration

ONE_BOTTLE = ("--platform", "arm64_sonoma")


@pytest.fixture
def slow_lab(loopback_lab: LabState) -> Iterator[LabState]:
    """The shared loopback lab; fast again afterwards, whatever the test did."""
    try:
        yield loopback_lab
    finally:
        run_cli(["lab", "latency", "off"], lab_dir=loopback_lab.directory)


def _log(lab: LabState) -> list[str]:
    return (lab.directory / "registry.log").read_text(encoding="utf-8").splitlines()


def test_every_response_waits_and_the_verification_still_agrees(slow_lab: LabState) -> None:
    lab = slow_lab
    armed = run_cli(["lab", "latency", "300ms"], lab_dir=lab.directory)
    assert armed.code == 0, armed.stderr
    assert "waits 300 ms before every response" in armed.stderr
    status = run_cli(["lab", "status"], lab_dir=lab.directory)
    assert "latency  the registry waits 300 ms" in status.stdout
    since = len(_log(lab))

    started = time.monotonic()
    slow = run_cli(["verify", WGET, *ONE_BOTTLE, "-i", str(lab.inventory_path), "--json"])
    elapsed = time.monotonic() - started

    assert slow.code == 0, slow.stderr
    lines = _log(lab)[since:]
    assert lines
    assert all("delay=300ms" in line for line in lines)
    assert {line.split()[1] for line in lines} >= {"registry", "cdn"}
    # A lower bound only: at least the challenge, the token and the index, one after the
    # other, each waited its 300 ms.
    assert elapsed >= 0.9

    off = run_cli(["lab", "latency", "off"], lab_dir=lab.directory)
    assert off.code == 0 and "answers at once again" in off.stderr
    since = len(_log(lab))
    fast = run_cli(["verify", WGET, *ONE_BOTTLE, "-i", str(lab.inventory_path), "--json"])
    assert fast.code == 0, fast.stderr
    assert not any("delay=" in line for line in _log(lab)[since:])


@pytest.mark.parametrize("delay", ["fast", "20000ms", "-1"])
def test_a_delay_that_is_not_one_is_a_usage_error(slow_lab: LabState, delay: str) -> None:
    result = run_cli(["lab", "latency", delay], lab_dir=slow_lab.directory)

    assert result.code == 2
    assert "lab latency:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (slow_lab.directory / "latency.json").exists()
