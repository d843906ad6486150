"""The probe's choice of hash tool, run by the real ``sh`` against real tools: openssl when it
passes the known-answer test for sha256 and sha512, else sha256sum, else shasum; and the
chosen tool's command hashes bytes correctly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tofu3.errors import VantageRefused
from tofu3.remote.probe import PROBE_COMMAND, parse_probe

_TOOLS = ("curl", "head", "grep", "uname", "sha256sum", "sha512sum", "openssl", "cat")


def _bin(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A directory of symlinks to the real tools the probe may use, minus ``without``."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in _TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed for this test"
        if tool not in without:
            (directory / tool).symlink_to(found)
    return directory


def _fake_openssl(directory: Path, body: str) -> None:
    """Replace openssl with a script (``$1`` is ``dgst``, ``$2`` the algorithm)."""
    path = directory / "openssl"
    path.unlink(missing_ok=True)
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _probe(directory: Path) -> str:
    result = subprocess.run(
        ["/bin/sh", "-c", PROBE_COMMAND],
        capture_output=True,
        text=True,
        env={"PATH": str(directory)},
        timeout=30,
        check=False,
    )
    return result.stdout


def _hash_with(directory: Path, command: str, data: bytes) -> str:
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        input=data,
        capture_output=True,
        env={"PATH": str(directory)},
        timeout=30,
        check=True,
    )
    return result.stdout.decode()


def test_a_working_openssl_is_preferred_and_hashes_right(tmp_path: Path) -> None:
    directory = _bin(tmp_path)

    facts = parse_probe(_probe(directory), "ams")

    assert facts.hash_tool == "openssl"
    data = os.urandom(300_000)
    assert hashlib.sha256(data).hexdigest() in _hash_with(
        directory, facts.hash_command("sha256"), data
    )
    assert hashlib.sha512(data).hexdigest() in _hash_with(
        directory, facts.hash_command("sha512"), data
    )


@pytest.mark.parametrize(
    "fake",
    [
        # A wrong sha256: a broken or tampered build.
        'echo "SHA2-256(stdin)= ' + "0" * 64 + '"',
        # Right sha256, but no sha512 (a cut-down build): sha512 digests must work too.
        'if [ "$2" = -sha256 ]; then '
        'echo "SHA2-256(stdin)= ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; '
        "else echo 'dgst: unknown option' >&2; exit 1; fi",
        # Exits with an error (a FIPS build refusing, say).
        "echo 'error' >&2; exit 1",
    ],
    ids=["wrong-sha256", "no-sha512", "fails"],
)
def test_an_openssl_that_fails_the_known_answer_test_is_passed_over(
    tmp_path: Path, fake: str
) -> None:
    directory = _bin(tmp_path)
    _fake_openssl(directory, fake)

    facts = parse_probe(_probe(directory), "ams")

    assert facts.hash_tool == "sha256sum"
    data = os.urandom(100_000)
    assert hashlib.sha256(data).hexdigest() in _hash_with(
        directory, facts.hash_command("sha256"), data
    )


def test_without_openssl_sha256sum_is_used(tmp_path: Path) -> None:
    directory = _bin(tmp_path, without=("openssl",))

    assert parse_probe(_probe(directory), "ams").hash_tool == "sha256sum"


def test_without_any_hash_tool_the_vantage_is_refused(tmp_path: Path) -> None:
    directory = _bin(tmp_path, without=("openssl", "sha256sum", "sha512sum"))

    output = _probe(directory)

    assert "TOFU3-HASH" not in output
    with pytest.raises(VantageRefused, match="no sha256sum, shasum or openssl"):
        parse_probe(output, "ams")
