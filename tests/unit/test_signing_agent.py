"""Signing with a key held by a real ssh-agent: the private key stays in the agent, RSA keys
sign with rsa-sha2-512, the key is chosen by its .pub file or fingerprint, and what the agent
signs verifies with the real ssh-keygen. Each test starts its own agent and ends it by pid."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.ssh_keys import public_line, ssh_keygen_verify, write_key_pair
from tofu3.errors import SigningKeyError
from tofu3.signing import sshsig, wire
from tofu3.signing.loader import load_signer

REPORT = b'{"schema": "tofu3.report/v1", "verdict": "accepted"}\n'
IDENTITY = "ci@example.org"


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A running ``ssh-agent -D -a SOCK``; SSH_AUTH_SOCK points at it for the test."""
    socket = tmp_path / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert process.poll() is None, "ssh-agent exited"
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=10)


def _add(key: Path, socket: Path) -> None:
    subprocess.run(
        ["ssh-add", "-q", str(key)],
        env={**os.environ, "SSH_AUTH_SOCK": str(socket)},
        check=True,
        capture_output=True,
        timeout=30,
    )


def _ssh_keygen_accepts(tmp_path: Path, key: Path, armored: bytes) -> bool:
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"{IDENTITY} {public_line(key)}\n")
    signature = tmp_path / "report.json.sig"
    signature.write_bytes(armored)
    result = ssh_keygen_verify(allowed, IDENTITY, sshsig.REPORT_NAMESPACE, signature, REPORT)
    return result.returncode == 0


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "rsa"])
def test_a_key_in_ssh_agent_chosen_by_its_pub_file_signs_what_ssh_keygen_verifies(
    tmp_path: Path, agent: Path, kind: str
) -> None:
    key = write_key_pair(tmp_path, kind)
    _add(key, agent)
    key.unlink()  # the private key is now only in the agent

    signer = load_signer(str(key.with_name(key.name + ".pub")))
    try:
        armored = sshsig.sign(REPORT, signer)
    finally:
        signer.close()

    assert _ssh_keygen_accepts(tmp_path, key, armored)
    algorithm = wire.Reader(sshsig.parse(armored).signature, "signature").text()
    assert algorithm == {"rsa": "rsa-sha2-512"}.get(kind, algorithm)
    assert algorithm != "ssh-rsa"


def test_the_agent_key_is_chosen_by_fingerprint_among_several(tmp_path: Path, agent: Path) -> None:
    first = write_key_pair(tmp_path, "ed25519", name="first")
    second = write_key_pair(tmp_path, "rsa", name="second")
    _add(first, agent)
    _add(second, agent)
    wanted = load_signer(str(second)).public_key

    signer = load_signer(f"agent:{wanted.fingerprint}")
    try:
        assert signer.public_key.blob == wanted.blob
        assert sshsig.verify(REPORT, sshsig.sign(REPORT, signer)).blob == wanted.blob
    finally:
        signer.close()
    with pytest.raises(SigningKeyError, match="several keys"):
        load_signer("agent")


def test_a_key_the_agent_does_not_hold_is_a_signing_key_error(tmp_path: Path, agent: Path) -> None:
    _add(write_key_pair(tmp_path, "ed25519", name="held"), agent)
    absent = write_key_pair(tmp_path, "ed25519", name="absent")

    with pytest.raises(SigningKeyError, match="holds no"):
        load_signer(str(absent.with_name("absent.pub")))


def test_without_an_agent_the_pub_file_cannot_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = write_key_pair(tmp_path, "ed25519")

    with pytest.raises(SigningKeyError, match="SSH_AUTH_SOCK"):
        load_signer(str(key.with_name(key.name + ".pub")))
