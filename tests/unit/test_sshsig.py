"""Report signatures in OpenSSH's SSHSIG format: what tofu3 signs, the real ssh-keygen
verifies, and the other way round; a report changed by one byte, a signature for another
namespace, a SHA-1 RSA signature or an unprotected key file are all refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.unit.ssh_keys import KEY_KINDS, public_line, ssh_keygen_verify, write_key_pair
from tofu3.errors import SignatureError, SigningKeyError
from tofu3.signing import sshsig, wire
from tofu3.signing.keys import FileSigner, PublicKey, verify_signature
from tofu3.signing.loader import load_signer

REPORT = b'{\n  "schema": "tofu3.report/v1",\n  "verdict": "accepted"\n}\n'
IDENTITY = "reviewer@example.org"


def _allowed_signers(directory: Path, key: Path, options: str = "") -> Path:
    path = directory / "allowed_signers"
    path.write_text(f"{IDENTITY} {options} {public_line(key)}\n".replace("  ", " "))
    return path


def _ssh_keygen_verify(
    allowed: Path, signature: Path, message: bytes, namespace: str = sshsig.REPORT_NAMESPACE
) -> subprocess.CompletedProcess[bytes]:
    return ssh_keygen_verify(allowed, IDENTITY, namespace, signature, message)


def _flip_one_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_report_signed_by_tofu3_verifies_with_ssh_keygen(tmp_path: Path, kind: str) -> None:
    key = write_key_pair(tmp_path, kind)
    signature = tmp_path / "report.json.sig"
    signature.write_bytes(sshsig.sign(REPORT, load_signer(str(key))))

    result = _ssh_keygen_verify(_allowed_signers(tmp_path, key), signature, REPORT)

    assert result.returncode == 0, result.stderr
    assert f'Good "{sshsig.REPORT_NAMESPACE}" signature for {IDENTITY}'.encode() in result.stdout


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "rsa"])
def test_report_changed_by_one_byte_fails_with_ssh_keygen_and_tofu3(
    tmp_path: Path, kind: str
) -> None:
    key = write_key_pair(tmp_path, kind)
    signed = sshsig.sign(REPORT, load_signer(str(key)))
    signature = tmp_path / "report.json.sig"
    signature.write_bytes(signed)
    allowed = _allowed_signers(tmp_path, key)

    for at in (0, REPORT.index(b"accepted"), len(REPORT) - 1):
        changed = _flip_one_byte(REPORT, at)
        assert _ssh_keygen_verify(allowed, signature, changed).returncode != 0
        with pytest.raises(SignatureError):
            sshsig.verify(changed, signed)
    assert sshsig.verify(REPORT, signed).openssh() == public_line(key)


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_ssh_keygen_signature_verifies_with_tofu3(tmp_path: Path, kind: str) -> None:
    key = write_key_pair(tmp_path, kind)
    report = tmp_path / "report.json"
    report.write_bytes(REPORT)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", sshsig.REPORT_NAMESPACE, str(report)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    armored = (tmp_path / "report.json.sig").read_bytes()

    signer_key = sshsig.verify(REPORT, armored)

    assert signer_key.openssh() == public_line(key)
    with pytest.raises(SignatureError):
        sshsig.verify(REPORT + b" ", armored)


def test_a_signature_made_for_another_namespace_is_refused(tmp_path: Path) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    report = tmp_path / "report.json"
    report.write_bytes(REPORT)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", "file", str(report)],
        check=True,
        capture_output=True,
        timeout=30,
    )

    with pytest.raises(SignatureError, match="namespace 'file'"):
        sshsig.verify(REPORT, (tmp_path / "report.json.sig").read_bytes())


def test_rsa_reports_are_signed_with_rsa_sha2_512(tmp_path: Path) -> None:
    signed = sshsig.sign(REPORT, load_signer(str(write_key_pair(tmp_path, "rsa"))))

    parsed = sshsig.parse(signed)

    assert parsed.hash_algorithm == "sha512"
    assert wire.Reader(parsed.signature, "signature").text() == "rsa-sha2-512"


def test_a_sha1_rsa_signature_is_refused(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = FileSigner(private).public_key
    data = b"anything"
    sha1 = private.sign(data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (the attack)
    blob = wire.string("ssh-rsa") + wire.string(sha1)

    with pytest.raises(SignatureError, match="ssh-rsa"):
        verify_signature(public, data, blob)


def test_an_encrypted_key_asks_for_its_passphrase_and_refuses_a_wrong_one(
    tmp_path: Path,
) -> None:
    key = write_key_pair(tmp_path, "ed25519", passphrase=b"correct horse")
    asked: list[str] = []

    def right() -> bytes:
        asked.append("right")
        return b"correct horse"

    signer = load_signer(str(key), right)
    assert asked == ["right"]
    assert sshsig.verify(REPORT, sshsig.sign(REPORT, signer)).openssh() == public_line(key)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_signer(str(key), lambda: b"battery staple")
    with pytest.raises(SigningKeyError, match="encrypted"):
        load_signer(str(key), None)


def test_a_private_key_readable_by_others_is_refused_as_ssh_does(tmp_path: Path) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    key.chmod(0o644)

    with pytest.raises(SigningKeyError, match="too open"):
        load_signer(str(key))


@pytest.mark.parametrize(
    "armored",
    [
        b"",
        b"-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n",
        wire.armor(b"SSHSIG" + wire.uint32(2)),
        wire.armor(b"SSHSIG" + wire.uint32(1) + wire.string(b"\x00\x00")),
        wire.armor(b"NOTSIG" + wire.uint32(1)),
    ],
    ids=["empty", "bad-base64", "version-2", "truncated-key", "no-preamble"],
)
def test_malformed_signatures_are_signature_errors(armored: bytes) -> None:
    with pytest.raises(SignatureError):
        sshsig.verify(REPORT, armored)


def test_public_keys_round_trip_and_print_ssh_keygen_fingerprints(tmp_path: Path) -> None:
    key = write_key_pair(tmp_path, "ecdsa-p256")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(key.with_name(key.name + ".pub"))],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()

    public = PublicKey.from_openssh(public_line(key))

    assert public.fingerprint == listed[1]
    assert public.label == "ECDSA"
