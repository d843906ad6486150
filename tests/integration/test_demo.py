"""``tofu3 demo`` tells the whole story on a real lab and leaves nothing running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli
from tofu3.lab.sshd import process_alive

pytestmark = pytest.mark.integration


def test_demo_accepts_then_rejects_the_tampered_layer_and_stops_the_lab(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    pids: list[int] = []

    result = run_cli(["demo"], lab_dir=lab_dir)

    assert result.code == 0, result.stdout + result.stderr
    accepted = result.stdout.find("ACCEPTED ghcr.io/homebrew/core/wget:1.24.5")
    rejected = result.stdout.find("REJECTED ghcr.io/homebrew/core/wget:1.24.5")
    assert 0 <= accepted < rejected, result.stdout
    verdict_line = result.stdout[rejected:].splitlines()[0]
    assert "layer" in verdict_line and "sgp" in verdict_line
    assert "ghcr.io/homebrew/core/wget@sha256:" in result.stdout[accepted:rejected]
    state_file = lab_dir / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        pids = [v["pid"] for v in state.get("vantages", [])]
    assert not any(process_alive(pid) for pid in pids), "the demo left lab processes running"
    status = run_cli(["lab", "status"], lab_dir=lab_dir)
    assert "running" not in status.stdout
