"""``tofu3 demo`` tells the whole story on a real lab and leaves nothing running."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_demo_accepts_then_rejects_the_tampered_layer_and_stops_the_lab(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"

    result = run_cli(["demo"], lab_dir=lab_dir)

    assert result.code == 0, result.stdout + result.stderr
    accepted = result.stdout.find("ACCEPTED ghcr.io/homebrew/core/wget:1.24.5")
    rejected = result.stdout.find("REJECTED ghcr.io/homebrew/core/wget:1.24.5")
    assert 0 <= accepted < rejected, result.stdout
    verdict_line = result.stdout[rejected:].splitlines()[0]
    assert "layer" in verdict_line and "sgp" in verdict_line
    assert "ghcr.io/homebrew/core/wget@sha256:" in result.stdout[accepted:rejected]
    demo_dir = tmp_path / "lab-demo"
    assert (demo_dir / "client_ed25519").exists(), "the demo did not use its own lab directory"
    leftovers = subprocess.run(
        ["pgrep", "-f", str(demo_dir)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == [], f"the demo left lab processes running: {leftovers}"
    status = run_cli(["lab", "status"], lab_dir=tmp_path / "lab-demo")
    assert "running" not in status.stdout
