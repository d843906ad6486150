"""Fixtures for tests that run tofu3 against the real lab: real sshd vantages, real curl,
the lab registry over HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration import loopback
from tofu3.lab.manager import LabMode, LabState, lab_down, lab_tamper, lab_up

WGET = "ghcr.io/homebrew/core/wget:1.24.5"
ALPINE = "docker.io/library/alpine:3.19"
CLI_TIMEOUT = 180


@dataclass(frozen=True)
class CliResult:
    """A finished ``tofu3`` process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (the --json contract: nothing else is there)."""
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Lab:
    """A running lab and helpers to drive tofu3 against it."""

    state: LabState

    @property
    def directory(self) -> Path:
        return self.state.directory

    @property
    def inventory(self) -> Path:
        return self.state.inventory_path

    def tamper(self, vantage: str, kind: str | None) -> None:
        lab_tamper(vantage, kind, self.directory)

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        """Run the real console entry point in a child process."""
        return run_cli(args, lab_dir=self.directory, env=env)


def run_cli(
    args: Sequence[str], *, lab_dir: Path | None = None, env: dict[str, str] | None = None
) -> CliResult:
    """``python -m tofu3 ARGS`` with colour off; returns its exit status and output."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    if lab_dir is not None:
        environment["TOFU3_LAB_DIR"] = str(lab_dir)
    completed = subprocess.run(
        [sys.executable, "-m", "tofu3", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=environment,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def lab_modes() -> list[Any]:
    """The lab modes to parametrise over: loopback always, netns only as root."""
    # CI runs as root, so both modes run there; a developer without root gets loopback only.
    netns = pytest.param(
        LabMode.NETNS,
        marks=pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root"),
        id="netns",
    )
    return [pytest.param(LabMode.LOOPBACK, id="loopback"), netns]


@pytest.fixture
def ledger_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ledger of this test's own: what other tests verified (or accepted as a moved tag)
    cannot change its verdicts. Modules opt in with ``pytest.mark.usefixtures("ledger_dir")``."""
    directory = tmp_path_factory.mktemp("ledger")
    monkeypatch.setenv("TOFU3_STATE_DIR", str(directory))
    return directory


@pytest.fixture(scope="module", params=lab_modes())
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab for one test module, in each mode; every tamper switch is cleared between
    tests by ``honest_lab``."""
    mode: LabMode = request.param
    directory = tmp_path_factory.mktemp(f"lab-{mode.value}")
    try:
        state = lab_up(directory, mode)
    except BaseException:
        lab_down(directory)
        raise
    try:
        yield Lab(state)
    finally:
        lab_down(directory)


@pytest.fixture
def honest_lab(lab: Lab) -> Iterator[Lab]:
    """The module's lab with no tamper switch armed before or after the test."""
    for vantage in lab.state.vantages:
        lab.tamper(vantage.name, None)
    yield lab
    for vantage in lab.state.vantages:
        lab.tamper(vantage.name, None)


@pytest.fixture(scope="module")
def loopback_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """A loopback lab for one test module (vantages told apart by source address)."""
    with loopback.loopback_lab(tmp_path_factory.mktemp("loopback-lab")) as state:
        yield state
