"""``tofu3 report sign|verify`` and ``tofu3 history`` as a user runs them (the real console
entry point in a child process), on reports built from known verdicts: no lab needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.unit.bottle_verdicts import WHEN, honest, one_vantage_served_another_layer
from tests.unit.ssh_keys import public_line, write_key_pair
from tofu3.report.document import Signoff, build_document, render_document
from tofu3.signing.keys import PublicKey
from tofu3.verdict import Verdict

SIGNER = "reviewer@example.org"


def _tofu3(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tofu3", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "TOFU3_STATE_DIR": str(state)},
    )


def _report(path: Path, verdict: Verdict, signoff: Signoff | None = None) -> Path:
    document = build_document(verdict, generated_at=WHEN, signoff=signoff)
    path.write_text(render_document(document))
    return path


def _allowed(tmp_path: Path, key: Path) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(f"{SIGNER} {public_line(key)}\n")
    return path


def test_report_sign_refuses_a_report_that_names_another_signing_key(tmp_path: Path) -> None:
    named = PublicKey.from_openssh(public_line(write_key_pair(tmp_path, "ed25519", name="named")))
    other = write_key_pair(tmp_path, "ed25519", name="other")
    signoff = Signoff(SIGNER, named.openssh(), named.fingerprint, "tofu3-report@tofu3.dev")
    report = _report(tmp_path / "report.json", honest(), signoff)

    result = _tofu3("report", "sign", str(report), "--key", str(other), state=tmp_path)

    assert result.returncode == 1
    assert f"names {named.fingerprint}" in result.stderr
    assert not (tmp_path / "report.json.sig").exists()


def test_require_accepted_turns_a_good_signature_on_a_rejection_into_a_failure(
    tmp_path: Path,
) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    report = _report(tmp_path / "report.json", one_vantage_served_another_layer())
    signed = _tofu3("report", "sign", str(report), "--key", str(key), state=tmp_path)
    assert signed.returncode == 0, signed.stderr
    allowed = str(_allowed(tmp_path, key))

    plain = _tofu3("report", "verify", str(report), "--allowed-signers", allowed, state=tmp_path)
    gate = _tofu3(
        "report",
        "verify",
        str(report),
        "--allowed-signers",
        allowed,
        "--require-accepted",
        state=tmp_path,
    )

    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[1].startswith("REJECTED ghcr.io/homebrew/core/wget:1.24.5")
    assert gate.returncode == 1
    assert "--require-accepted" in gate.stderr


def test_a_malformed_allowed_signers_file_is_a_usage_error(tmp_path: Path) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    report = _report(tmp_path / "report.json", honest())
    assert _tofu3("report", "sign", str(report), "--key", str(key), state=tmp_path).returncode == 0
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"{SIGNER} namespaces=unquoted {public_line(key)}\n")

    result = _tofu3(
        "report", "verify", str(report), "--allowed-signers", str(allowed), state=tmp_path
    )

    assert result.returncode == 2
    assert "allowed_signers:1" in result.stderr


def test_a_signature_by_a_key_nobody_allowed_fails(tmp_path: Path) -> None:
    signer = write_key_pair(tmp_path, "ecdsa-p256", name="signer")
    allowed_key = write_key_pair(tmp_path, "ecdsa-p256", name="allowed")
    report = _report(tmp_path / "report.json", honest())
    assert (
        _tofu3("report", "sign", str(report), "--key", str(signer), state=tmp_path).returncode == 0
    )

    result = _tofu3(
        "report",
        "verify",
        str(report),
        "--allowed-signers",
        str(_allowed(tmp_path, allowed_key)),
        state=tmp_path,
    )

    assert result.returncode == 1
    assert "no allowed signer holds ECDSA key" in result.stderr


def test_history_of_a_reference_never_verified_is_empty(tmp_path: Path) -> None:
    table = _tofu3("history", "docker.io/library/alpine:3.19", state=tmp_path)
    as_json = _tofu3("history", "alpine:3.19", "--json", state=tmp_path)

    assert table.returncode == 0
    assert "no verification of docker.io/library/alpine:3.19 is recorded" in table.stderr
    assert json.loads(as_json.stdout) == []
