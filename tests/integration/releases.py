"""A release file for the tests: its bytes, a backdoored twin of the same length, and the
HTTPS routes that serve it directly and as a GitHub-like release asset (302 to a signed CDN
URL), with an inventory that sends each vantage's curl to one server or another."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.integration.file_server import FileServer, Route
from tofu3.digest import digest_bytes
from tofu3.lab.manager import LabState, write_inventory

RELEASES = "releases.example.org"
GITHUB = "github.example"
CDN = "objects.example-cdn.net"
HOSTS = (RELEASES, GITHUB, CDN)
TARBALL = b"".join(b"tool 1.2 %06d\n" % i for i in range(20_000))
BACKDOORED = TARBALL.replace(b"tool 1.2 000042", b"evil 1.2 000042")
PLAIN_URL = f"https://{RELEASES}/tool-1.2.tar.gz"
ASSET_PATH = "/owner/tool/releases/download/v1.2/tool-1.2.tar.gz"
ASSET_URL = f"https://{GITHUB}{ASSET_PATH}"
CDN_PATH = "/github-production-release-asset/1234/tool-1.2.tar.gz"
CDN_SIGNATURE = "X-Amz-Signature=d3adb33f"
VANTAGE_IPS = {"127.0.0.11", "127.0.0.12", "127.0.0.13"}


def sha256(data: bytes) -> str:
    """The sha256 digest of ``data`` (``sha256:HEX``)."""
    return digest_bytes(data)


def routes(data: bytes) -> dict[tuple[str, str], Route]:
    """A release served directly, and as a GitHub asset: 302 to a signed CDN URL."""
    return {
        (RELEASES, "/tool-1.2.tar.gz"): Route(body=data),
        (RELEASES, "/downgrade.tar.gz"): Route(redirect=f"http://{CDN}{CDN_PATH}"),
        (GITHUB, ASSET_PATH): Route(redirect=f"https://{CDN}{CDN_PATH}?{CDN_SIGNATURE}"),
        (CDN, CDN_PATH): Route(body=data),
    }


def inventory(
    lab: LabState, path: Path, origin: FileServer, detours: Mapping[str, FileServer] | None = None
) -> Path:
    """The lab inventory with every vantage's curl sent to ``origin`` for the release hosts,
    except the vantages in ``detours``."""
    extra = {v.name: (detours or {}).get(v.name, origin).connect_to(HOSTS) for v in lab.vantages}
    return write_inventory(lab, path, curl_args_extra=extra)
