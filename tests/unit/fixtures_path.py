"""Where the test fixtures live: the shared real-world captures and this repo's own files."""

from __future__ import annotations

from tests.shared_fixtures import GHCR_WGET_INDEX, REPO, SHARED_FIXTURES

__all__ = ["GHCR_WGET_INDEX", "LOCAL_FIXTURES", "REPO", "SHARED_FIXTURES", "local_fixture"]

LOCAL_FIXTURES = REPO / "tests" / "fixtures"
# From the fixture's README: the sha256 of index.json exactly as ghcr.io served it.
GHCR_WGET_INDEX_DIGEST = "sha256:f7dd153445ffd9ec96cc95d8829cd4afca6ca04b20acbd52cbbd13cfe9aeda5b"
# The seven Homebrew bottle tags of wget 1.24.5, in the index's order.
GHCR_WGET_BOTTLE_TAGS = (
    "arm64_monterey",
    "arm64_sonoma",
    "arm64_ventura",
    "monterey",
    "sonoma",
    "ventura",
    "x86_64_linux",
)


def local_fixture(name: str) -> bytes:
    """The exact bytes of tests/fixtures/NAME."""
    return (LOCAL_FIXTURES / name).read_bytes()
