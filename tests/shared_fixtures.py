"""Where the real captures in shared/fixtures are: beside the repository (as in CI and a
developer's checkout), or where $TOFU3_SHARED_FIXTURES says."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _shared_fixtures() -> Path:
    explicit = os.environ.get("TOFU3_SHARED_FIXTURES")
    return Path(explicit) if explicit else REPO.parent / "shared" / "fixtures"


SHARED_FIXTURES = _shared_fixtures()
WGET_FIXTURES = SHARED_FIXTURES / "ghcr-homebrew-wget-1.24.5"
GHCR_WGET_INDEX = WGET_FIXTURES / "index.json"
VENTURA_BOTTLE = WGET_FIXTURES / "wget--1.24.5.ventura.bottle.tar.gz"
