"""The probe's choice of hash tool, made by the session's program in the real ``sh`` against
real tools: openssl when it passes the known-answer test for sha256 and sha512, else
sha256sum, else shasum; and the chosen tool hashes the bytes a blob download streams."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.unit.local_https import LocalRegistry, registry
from tests.unit.local_vantage import HASH_TOOLS, PROGRAM_TOOLS, Vantage, tool_dir, vantage_in
from tofu3.errors import VantageRefused
from tofu3.remote import probe
from tofu3.remote.port import BlobRequest, Request

__all__ = ["registry"]  # a fixture, imported for pytest


def _bin(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A PATH of symlinks to the real tools the program may use, minus ``without``."""
    return tool_dir(tmp_path / "bin", [t for t in PROGRAM_TOOLS + HASH_TOOLS if t not in without])


def _fake_openssl(directory: Path, body: str) -> None:
    """Replace openssl with a script (``$1`` is ``dgst``, ``$2`` the algorithm)."""
    path = directory / "openssl"
    path.unlink(missing_ok=True)
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _digests(vantage: Vantage, registry: LocalRegistry, data: bytes) -> list[str]:
    url = registry.serve(f"/random/{hashlib.sha256(data).hexdigest()}", data)
    downloads = vantage.session.download(
        [
            BlobRequest(Request(url), "sha256", "blob a"),
            BlobRequest(Request(url), "sha512", "blob b"),
        ],
        jobs=2,
    )
    return [d.digest for d in downloads]


def _expected(data: bytes) -> list[str]:
    return [
        f"sha256:{hashlib.sha256(data).hexdigest()}",
        f"sha512:{hashlib.sha512(data).hexdigest()}",
    ]


def test_a_working_openssl_is_preferred_and_hashes_right(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    path = _bin(tmp_path)
    data = os.urandom(300_000)

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        assert vantage.session.facts.hash_tool == "openssl"
        assert _digests(vantage, registry, data) == _expected(data)


@pytest.mark.parametrize(
    "fake",
    [
        # A wrong sha256: a broken or tampered build.
        'echo "SHA2-256(stdin)= ' + "0" * 64 + '"',
        # Right sha256, but no sha512 (a cut-down build): sha512 digests must work too.
        'if [ "$2" = -sha256 ]; then '
        'echo "SHA2-256(stdin)= ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; '
        "else echo 'dgst: unknown option' >&2; exit 1; fi",
        # Right for "abc" both ways, but in a form tofu3 would not read (no "= ").
        'if [ "$2" = -sha256 ]; then '
        "echo ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad; "
        "else echo ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f; fi",
        # Exits with an error (a FIPS build refusing, say).
        "echo 'error' >&2; exit 1",
    ],
    ids=["wrong-sha256", "no-sha512", "unreadable-output", "fails"],
)
def test_an_openssl_that_fails_the_known_answer_test_is_passed_over(
    registry: LocalRegistry, tmp_path: Path, fake: str
) -> None:
    path = _bin(tmp_path)
    _fake_openssl(path, fake)
    data = os.urandom(100_000)

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        assert vantage.session.facts.hash_tool == "sha256sum"
        assert _digests(vantage, registry, data) == _expected(data)


def test_without_openssl_sha256sum_is_used(registry: LocalRegistry, tmp_path: Path) -> None:
    path = _bin(tmp_path, without=("openssl",))
    data = os.urandom(50_000)

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        assert vantage.session.facts.hash_tool == "sha256sum"
        assert _digests(vantage, registry, data) == _expected(data)


def test_without_openssl_or_sha256sum_shasum_is_used(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    path = _bin(tmp_path, without=("openssl", "sha256sum", "sha512sum"))
    data = os.urandom(50_000)

    with vantage_in(tmp_path, curl_args=registry.curl_args, env={"PATH": str(path)}) as vantage:
        assert vantage.session.facts.hash_tool == "shasum"
        assert _digests(vantage, registry, data) == _expected(data)


def test_without_any_hash_tool_the_vantage_is_refused(tmp_path: Path) -> None:
    path = _bin(tmp_path, without=HASH_TOOLS)

    with (
        pytest.raises(VantageRefused, match="no sha256sum, shasum or openssl"),
        vantage_in(tmp_path, env={"PATH": str(path)}),
    ):
        pass


def test_a_shell_without_a_printf_builtin_is_refused_before_any_secret_goes_through_it() -> None:
    frame = (
        "curl=curl 8.5.0\nhash=sha256sum\ndir=/tmp/tofu3-x\ntried=\nsystem=Linux\n"
        "printf=/usr/bin/printf"
    )

    with pytest.raises(VantageRefused, match="printf built in"):
        probe.parse_probe(frame, "ams")
