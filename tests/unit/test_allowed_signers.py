"""allowed_signers, read as ssh-keygen reads it: principal patterns, namespaces,
validity windows, certificate authorities; and the same answers as the real
``ssh-keygen -Y verify`` for the same file, identity and signature."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.unit.ssh_keys import public_line, ssh_keygen_verify, write_key_pair
from tofu3.errors import AllowedSignersError, SignatureError
from tofu3.signing import sshsig
from tofu3.signing.allowed_signers import (
    match_pattern_list,
    parse_allowed_signers,
    principals_for,
)
from tofu3.signing.keys import PublicKey
from tofu3.signing.loader import load_signer

NS = sshsig.REPORT_NAMESPACE
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
MESSAGE = b"report bytes\n"


@pytest.fixture(scope="module")
def key_line(tmp_path_factory: pytest.TempPathFactory) -> str:
    return public_line(write_key_pair(tmp_path_factory.mktemp("keys"), "ed25519"))


def _allowed(text: str, key: str) -> list[str] | None:
    signers = parse_allowed_signers(text, "allowed_signers")
    try:
        return principals_for(
            signers, PublicKey.from_openssh(key), NS, identity="alice@example.org", when=NOW
        )
    except SignatureError:
        return None


@pytest.mark.parametrize(
    ("patterns", "matches"),
    [
        ("alice@example.org", True),
        ("*@example.org", True),
        ("alice@example.???", True),
        ("bob@example.org,alice@example.org", True),
        ("*@example.org,!alice@example.org", False),
        ("Alice@example.org", False),
        ("alice@example.org.evil", False),
        ("*@evil.org", False),
    ],
)
def test_principal_patterns_match_as_openssh_does(patterns: str, matches: bool) -> None:
    assert match_pattern_list("alice@example.org", patterns) is matches


def test_the_identity_must_be_listed_for_the_key(key_line: str) -> None:
    assert _allowed(f"alice@example.org {key_line}\n", key_line) == ["alice@example.org"]
    assert _allowed(f"bob@example.org {key_line}\n", key_line) is None
    assert _allowed(f'"alice@example.org,carol@example.org" {key_line}\n', key_line) == [
        "alice@example.org"
    ]


def test_another_key_for_the_identity_does_not_count(tmp_path: Path, key_line: str) -> None:
    other = public_line(write_key_pair(tmp_path, "ed25519"))

    assert _allowed(f"alice@example.org {other}\n", key_line) is None


def test_a_namespaces_option_must_list_the_report_namespace(key_line: str) -> None:
    assert _allowed(f'alice@example.org namespaces="{NS}" {key_line}', key_line)
    assert _allowed(f'alice@example.org namespaces="file,git" {key_line}', key_line) is None
    assert _allowed(f'alice@example.org namespaces="tofu3-*" {key_line}', key_line)


def test_validity_windows_are_respected(key_line: str) -> None:
    past = (NOW - timedelta(days=2)).strftime("%Y%m%d")
    future = (NOW + timedelta(days=2)).strftime("%Y%m%d")
    assert _allowed(f'alice@example.org valid-after="{past}Z" {key_line}', key_line)
    assert _allowed(f'alice@example.org valid-after="{future}Z" {key_line}', key_line) is None
    assert _allowed(f'alice@example.org valid-before="{past}Z" {key_line}', key_line) is None
    assert (
        _allowed(
            f'alice@example.org cert-authority,valid-before="{future}0000Z" {key_line}', key_line
        )
        is None
    )  # a CA line only vouches for certificates, never for the plain key


def test_comments_and_blank_lines_are_skipped(key_line: str) -> None:
    text = f"# reviewers\n\n   \nalice@example.org {key_line} alice's laptop\n"

    assert _allowed(text, key_line) == ["alice@example.org"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice@example.org", "missing key"),
        ('alice@example.org unknown-option="x" KEY', "unknown or malformed option"),
        ("alice@example.org namespaces=file KEY", "unknown or malformed option"),
        ('alice@example.org valid-after="2026" KEY', "invalid time"),
        ('alice@example.org valid-after="20260101",valid-before="20250101" KEY', "before"),
        ('"alice@example.org KEY', "unterminated"),
        ("alice@example.org ssh-ed25519 !!!!", "invalid key"),
    ],
)
def test_a_malformed_line_is_an_error_that_names_it(key_line: str, line: str, problem: str) -> None:
    text = f"# first\n{line.replace('KEY', key_line)}\n"

    with pytest.raises(AllowedSignersError, match=rf"allowed_signers:2: .*{problem}"):
        parse_allowed_signers(text, "allowed_signers")


def test_without_an_identity_every_principal_that_holds_the_key_is_found(key_line: str) -> None:
    signers = parse_allowed_signers(
        f"alice@example.org {key_line}\nreviewers {key_line}\n", "allowed_signers"
    )

    found = principals_for(signers, PublicKey.from_openssh(key_line), NS, identity=None, when=NOW)

    assert found == ["alice@example.org", "reviewers"]


@pytest.mark.parametrize(
    "options",
    ["", f'namespaces="{NS}"', 'namespaces="file"', 'valid-before="20000101"', "cert-authority"],
)
@pytest.mark.parametrize("principals", ["alice@example.org", "*@example.org", "bob@example.org"])
def test_tofu3_and_ssh_keygen_agree_on_who_may_sign(
    tmp_path: Path, options: str, principals: str
) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    armored = sshsig.sign(MESSAGE, load_signer(str(key)))
    signature = tmp_path / "message.sig"
    signature.write_bytes(armored)
    text = f"{principals} {options} {public_line(key)}\n".replace("  ", " ")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(text)

    openssh = ssh_keygen_verify(allowed, "alice@example.org", NS, signature, MESSAGE)
    signers = parse_allowed_signers(text, str(allowed))
    public = sshsig.verify(MESSAGE, armored)
    try:
        principals_for(
            signers,
            public,
            NS,
            identity="alice@example.org",
            when=datetime.now(timezone.utc),
        )
        ours = True
    except SignatureError:
        ours = False

    assert ours is (openssh.returncode == 0), openssh.stderr
