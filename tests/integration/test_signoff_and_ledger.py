"""Signed-off reports, attestations and the ledger, end to end against the lab (loopback:
three real sshd vantages, real curl, the lab registry). What tofu3 signs, the real
ssh-keygen verifies; a report changed by one byte fails; a tag moved on every vantage
between two verifications is caught and shown by ``tofu3 history``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ALPINE, WGET, CliResult, Lab
from tests.unit.ssh_keys import public_line, ssh_keygen_verify, write_key_pair
from tofu3.lab.manager import LabMode, lab_down, lab_up
from tofu3.report.schema import validate
from tofu3.signing.dsse import read_envelopes, verify_envelope
from tofu3.signing.keys import PublicKey

pytestmark = pytest.mark.integration

NAMESPACE = "tofu3-report@tofu3.dev"
SIGNER = "reviewer@example.org"
SONOMA = ("--platform", "arm64_sonoma")
VANTAGES = ("ams", "sfo", "sgp")


@pytest.fixture(scope="module")
def loopback_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A loopback lab for this module."""
    directory = tmp_path_factory.mktemp("lab-signoff")
    try:
        state = lab_up(directory, LabMode.LOOPBACK)
    except BaseException:
        lab_down(directory)
        raise
    try:
        yield Lab(state)
    finally:
        lab_down(directory)


@pytest.fixture
def lab(loopback_lab: Lab) -> Iterator[Lab]:
    """The module's lab, honest before and after the test."""
    for vantage in VANTAGES:
        loopback_lab.tamper(vantage, None)
    yield loopback_lab
    for vantage in VANTAGES:
        loopback_lab.tamper(vantage, None)


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    """An empty ledger for the test."""
    return {"TOFU3_STATE_DIR": str(tmp_path / "state")}


def _verify(lab: Lab, env: dict[str, str], *args: str) -> CliResult:
    return lab.run("verify", WGET, "-i", str(lab.inventory), *SONOMA, *args, env=env)


def _allowed_signers(tmp_path: Path, key: Path) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(f'{SIGNER} namespaces="{NAMESPACE}" {public_line(key)}\n')
    return path


def _ssh_keygen_verify(
    allowed: Path, report: Path, data: bytes
) -> subprocess.CompletedProcess[bytes]:
    return ssh_keygen_verify(allowed, SIGNER, NAMESPACE, Path(f"{report}.sig"), data)


def _flip(data: bytes, marker: bytes) -> bytes:
    at = data.index(marker)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_signed_off_report_verifies_with_ssh_keygen_and_fails_once_a_byte_changes(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    report = tmp_path / "report.json"
    result = _verify(
        lab, state, "--report", str(report), "--sign-key", str(key), "--signer", SIGNER
    )
    assert result.code == 0, result.stderr
    data = report.read_bytes()
    allowed = _allowed_signers(tmp_path, key)

    good = _ssh_keygen_verify(allowed, report, data)
    changed = _ssh_keygen_verify(allowed, report, _flip(data, b'"accepted"'))

    assert good.returncode == 0, good.stderr
    assert f'Good "{NAMESPACE}" signature for {SIGNER}'.encode() in good.stdout
    assert changed.returncode != 0
    document = json.loads(data)
    assert validate(document, strict=True) == []
    assert document["signoff"]["identity"] == SIGNER
    checked = lab.run("report", "verify", str(report), "--allowed-signers", str(allowed))
    assert checked.code == 0, checked.stderr
    assert "the verdict follows from the observations" in checked.stdout
    report.write_bytes(_flip(data, b'"accepted"'))
    refused = lab.run("report", "verify", str(report), "--allowed-signers", str(allowed))
    assert refused.code == 1
    assert "signature does not verify" in refused.stderr


def test_markdown_html_and_attestation_say_what_the_json_report_says(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_pair(tmp_path, "ecdsa-p256")
    paths = {name: tmp_path / name for name in ("r.json", "r.md", "r.html", "a.intoto.jsonl")}
    result = _verify(
        lab,
        state,
        *("--report", str(paths["r.json"]), "--markdown", str(paths["r.md"])),
        *("--html", str(paths["r.html"]), "--attestation", str(paths["a.intoto.jsonl"])),
        *("--sign-key", str(key), "--signer", SIGNER),
    )
    assert result.code == 0, result.stderr
    document = json.loads(paths["r.json"].read_text())
    markdown = paths["r.md"].read_text()
    page = paths["r.html"].read_text()
    manifest = next(a for a in document["artifacts"] if a["kind"] == "manifest")
    layer = next(a for a in document["artifacts"] if a["kind"] == "layer")
    bottle_hex = layer["digest"].removeprefix("sha256:")

    assert markdown.startswith("# ACCEPTED: `ghcr.io/homebrew/core/wget:1.24.5`")
    assert f"docker pull {document['pinned_reference']}" in markdown
    assert manifest["annotations"]["sh.brew.bottle.digest"] == bottle_hex
    assert f'sha256 arm64_sonoma: "{bottle_hex}"' in markdown
    for vantage in document["vantages"]:
        assert (
            f"| `{vantage['name']}` | `{vantage['host']}` | `{vantage['curl_version']}` |"
            in markdown
        )
    assert f"docker pull {document['pinned_reference']}" in page
    assert "<script" not in page

    envelope = read_envelopes(paths["a.intoto.jsonl"].read_bytes())[0]
    assert verify_envelope(envelope, [PublicKey.from_openssh(public_line(key))])
    statement = json.loads(base64.b64decode(envelope.to_json()["payload"]))
    predicate = statement["predicate"]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["TOFU3_3OF3"]
    assert predicate["timeVerified"] == document["generated_at"]
    assert predicate["resourceUri"] == "oci://ghcr.io/homebrew/core/wget:1.24.5"
    assert predicate["verifier"]["id"] and predicate["policy"]["uri"]
    root_hex = document["resolved"]["digest"].removeprefix("sha256:")
    assert {"name": "ghcr.io/homebrew/core/wget", "digest": {"sha256": root_hex}} in statement[
        "subject"
    ]
    allowed = _allowed_signers(tmp_path, key)
    checked = lab.run(
        "report", "verify", str(paths["a.intoto.jsonl"]), "--allowed-signers", str(allowed)
    )
    assert checked.code == 0, checked.stderr
    assert "PASSED" in checked.stdout


def test_a_rejected_verification_is_still_reported_signed_and_recorded(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    lab.tamper("sgp", "blob")
    key = write_key_pair(tmp_path, "rsa")
    report = tmp_path / "report.json"
    markdown = tmp_path / "report.md"

    result = _verify(
        lab, state, "--report", str(report), "--markdown", str(markdown), "--sign-key", str(key)
    )

    assert result.code == 1
    assert (
        _ssh_keygen_verify(_allowed_signers(tmp_path, key), report, report.read_bytes()).returncode
        == 0
    )
    assert json.loads(report.read_text())["verdict"] == "rejected"
    assert markdown.read_text().startswith("# REJECTED:")
    assert "docker pull" not in markdown.read_text()
    history = lab.run("history", WGET, "--json", env=state)
    entries = history.json()
    assert [e["verdict"] for e in entries] == ["rejected"]
    assert "DIGEST_MISMATCH" in entries[0]["findings"]


def test_a_report_signed_by_ssh_keygen_verifies_with_tofu3(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_pair(tmp_path, "rsa")
    report = tmp_path / "report.json"
    assert _verify(lab, state, "--report", str(report)).code == 0
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(report)],
        check=True,
        capture_output=True,
        timeout=30,
    )

    checked = lab.run(
        "report",
        "verify",
        str(report),
        "--allowed-signers",
        str(_allowed_signers(tmp_path, key)),
        "--identity",
        SIGNER,
    )
    wrong_identity = lab.run(
        "report",
        "verify",
        str(report),
        "--allowed-signers",
        str(_allowed_signers(tmp_path, key)),
        "--identity",
        "someone@else.org",
    )

    assert checked.code == 0, checked.stderr
    assert f"signature for {SIGNER} with RSA key" in checked.stdout
    assert wrong_identity.code == 1


def test_tofu3_report_sign_signs_a_true_report_and_refuses_an_edited_one(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    lab.tamper("sfo", "blob")
    key = write_key_pair(tmp_path, "ed25519")
    report = tmp_path / "report.json"
    assert _verify(lab, state, "--report", str(report)).code == 1

    signed = lab.run("report", "sign", str(report), "--key", str(key), "--signer", SIGNER)
    assert signed.code == 0, signed.stderr
    assert (
        _ssh_keygen_verify(_allowed_signers(tmp_path, key), report, report.read_bytes()).returncode
        == 0
    )

    document = json.loads(report.read_text())
    document["verdict"], document["exit_code"], document["findings"] = "accepted", 0, []
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document, indent=2))
    refused = lab.run("report", "sign", str(edited), "--key", str(key))
    assert refused.code == 1
    assert "not signed" in refused.stderr
    assert not Path(f"{edited}.sig").exists()


def test_a_key_in_ssh_agent_signs_the_report_off(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_pair(tmp_path, "rsa")
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert agent.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        env = {**state, "SSH_AUTH_SOCK": str(socket)}
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            env={**os.environ, **env},
            check=True,
            timeout=30,
            capture_output=True,
        )
        report = tmp_path / "report.json"
        result = _verify(
            lab, env, "--report", str(report), "--sign-key", f"{key}.pub", "--signer", SIGNER
        )
    finally:
        agent.terminate()
        agent.wait(timeout=10)

    assert result.code == 0, result.stderr
    assert (
        _ssh_keygen_verify(_allowed_signers(tmp_path, key), report, report.read_bytes()).returncode
        == 0
    )


def test_a_tag_moved_on_every_vantage_is_caught_and_shown_by_history(
    lab: Lab, state: dict[str, str]
) -> None:
    first = _verify(lab, state, "--json")
    assert first.code == 0, first.stderr
    accepted: dict[str, Any] = first.json()
    for vantage in VANTAGES:
        lab.tamper(vantage, "tag")

    moved = _verify(lab, state, "--json")
    accepted_move = _verify(lab, state, "--json", "--accept-tag-move")
    again = _verify(lab, state, "--json")
    for vantage in VANTAGES:
        lab.tamper(vantage, None)
    rolled_back = _verify(lab, state, "--json")
    history = lab.run("history", WGET, env=state)
    entries = lab.run("history", WGET, "--json", env=state).json()

    old, new = accepted["resolved"]["digest"], moved.json()["resolved"]["digest"]
    assert old != new
    assert moved.code == 1
    finding = next(f for f in moved.json()["findings"] if f["code"] == "TAG_MOVED")
    assert finding["severity"] == "critical"
    assert old in finding["message"] and new in finding["message"]
    assert accepted["generated_at"] in finding["message"]
    assert moved.json()["tag_history"]["previous_accepted"]["digest"] == old
    assert accepted_move.code == 0, accepted_move.stderr
    assert [f["code"] for f in accepted_move.json()["findings"]] == ["TAG_MOVED"]
    assert again.code == 0 and again.json()["findings"] == []
    assert rolled_back.code == 1  # moving back is a move too
    assert [(e["verdict"], e["digest"], e["tag_move_accepted"]) for e in entries] == [
        ("accepted", old, False),
        ("rejected", new, False),
        ("accepted", new, True),
        ("accepted", new, False),
        ("rejected", old, False),
    ]
    assert history.code == 0
    assert history.stdout.count("TAG_MOVED") == 2
    assert "tag move accepted" in history.stdout
    assert old in history.stdout and new in history.stdout


def test_an_attestation_without_a_key_is_a_usage_error_before_any_vantage_is_contacted(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    result = _verify(lab, state, "--attestation", str(tmp_path / "a.jsonl"))

    assert result.code == 2
    assert "--attestation needs --sign-key" in result.stderr
    assert not (tmp_path / "a.jsonl").exists()


def test_lab_verifications_never_reach_the_users_ledger(lab: Lab, tmp_path: Path) -> None:
    home_state = tmp_path / "xdg-state"
    env = {"TOFU3_STATE_DIR": "", "XDG_STATE_HOME": str(home_state)}

    result = _verify(lab, env)
    in_lab = lab.run("history", WGET, "--json", "-i", str(lab.inventory), env=env).json()
    in_home = lab.run("history", WGET, "--json", env=env).json()

    assert result.code == 0, result.stderr
    assert (lab.directory / "ledger.sqlite3").is_file()
    assert [e["verdict"] for e in in_lab][-1] == "accepted"
    assert in_home == []


def test_several_references_make_one_signed_array_and_one_ledger_entry_each(
    lab: Lab, state: dict[str, str], tmp_path: Path
) -> None:
    key = write_key_pair(tmp_path, "ed25519")
    report, attestation = tmp_path / "report.json", tmp_path / "a.intoto.jsonl"
    result = lab.run(
        *("verify", WGET, ALPINE, "-i", str(lab.inventory), "--platform", "linux/amd64"),
        *("--report", str(report), "--attestation", str(attestation)),
        *("--sign-key", str(key), "--signer", SIGNER),
        env=state,
    )
    allowed = _allowed_signers(tmp_path, key)

    assert result.code == 0, result.stderr
    documents = json.loads(report.read_text())
    assert [d["reference"] for d in documents] == [WGET, ALPINE]
    assert _ssh_keygen_verify(allowed, report, report.read_bytes()).returncode == 0
    checked = lab.run("report", "verify", str(report), "--allowed-signers", str(allowed))
    assert checked.code == 0, checked.stderr
    assert checked.stdout.count("the verdict follows from the observations") == 2
    assert len(read_envelopes(attestation.read_bytes())) == 2
    for reference in (WGET, ALPINE):
        entries = lab.run("history", reference, "--json", env=state).json()
        assert [e["verdict"] for e in entries] == ["accepted"]
