"""tofu3 on vantages built like real ones: whatever the login shell (bash, zsh, fish, tcsh,
busybox ash on a busybox-only PATH), whatever the rc files print, with /tmp read-only, under
dropbear, under ``MaxSessions 1``: an honest lab is accepted, a lie to that vantage rejected
and blamed on it, rc-file noise never reaches the report, and nothing tofu3 started on the
vantage outlives it, Ctrl-C included.

In each test one lab vantage (``sgp``) is replaced by a vantage of the kind under test
(real_vantages.py). Root only: the vantages log in system users made for the purpose. As for
the other root tests, that is a skip without root, which under CI=true counts as a failure
(tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml

from tests.integration.conftest import CliResult
from tests.integration.real_vantages import (
    BUSYBOX,
    FAKE_DIGEST,
    NOISE,
    ODD,
    Kind,
    OddVantage,
    RealVantageSetup,
    odd_vantage,
    real_vantage_setup,
    run_verify,
    start_verify,
    temp_entries_of,
)
from tofu3.lab.manager import lab_tamper
from tofu3.lab.sshd import process_alive

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="system users and a root sshd need root"),
]
__all__ = ["odd_vantage", "real_vantage_setup"]

ALL_KINDS = pytest.mark.parametrize(
    "odd_vantage", list(Kind), indirect=True, ids=[kind.value for kind in Kind]
)
NOISY_KINDS = [Kind.NOISY_BASH, Kind.NOISY_ZSH]
INTERRUPT_WAIT = 20.0
"""Seconds for the odd vantage to reach a stalled download, and for tofu3 to end on SIGINT."""


# The vantages are what they claim to be (this checks the test set-up, not tofu3).


def _check_version(pattern_start: str) -> Callable[[subprocess.CompletedProcess[str]], None]:
    def check(result: subprocess.CompletedProcess[str]) -> None:
        assert result.stdout.strip().startswith(pattern_start), result

    return check


def _check_noise(result: subprocess.CompletedProcess[str]) -> None:
    assert "probe-ok" in result.stdout, result
    assert NOISE in result.stdout and FAKE_DIGEST in result.stdout, result
    assert NOISE in result.stderr, result


def _check_readonly_tmp(result: subprocess.CompletedProcess[str]) -> None:
    assert "tmp=1 vartmp=0" in result.stdout, result
    assert "Read-only file system" in result.stderr, result


def _check_plain(result: subprocess.CompletedProcess[str]) -> None:
    assert result.stdout.strip() == "probe-ok", result


PROBES: dict[Kind, tuple[str, Callable[[subprocess.CompletedProcess[str]], None]]] = {
    Kind.BASH: ("echo $BASH_VERSION", _check_version("5.")),
    Kind.ZSH: ("echo $ZSH_VERSION", _check_version("5.")),
    Kind.FISH: ("echo $FISH_VERSION", _check_version("3.")),
    Kind.TCSH: ("echo $tcsh", _check_version("6.")),
    Kind.NOISY_BASH: ("echo probe-ok", _check_noise),
    Kind.NOISY_ZSH: ("echo probe-ok", _check_noise),
    Kind.READONLY_TMP: (
        "touch /tmp/t3rv-probe-$$; t=$?; touch /var/tmp/t3rv-probe-$$; v=$?; "
        'rm -f /var/tmp/t3rv-probe-$$; echo "tmp=$t vartmp=$v"',
        _check_readonly_tmp,
    ),
    Kind.DROPBEAR: ("echo probe-ok", _check_plain),
    Kind.MAX_SESSIONS_1: ("echo probe-ok", _check_plain),
}


def _check_busybox(odd: OddVantage, setup: RealVantageSetup) -> None:
    command = (
        'echo "PATH=$PATH"; readlink /proc/$$/exe; '
        "for c in bash dash openssl coreutils shasum python3; do "
        'command -v "$c" >/dev/null && echo "found $c"; done; '
        "command -v sha256sum; command -v curl; echo done"
    )
    result = odd.ssh(command)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result
    assert lines[0] == f"PATH={setup.busybox_bin}", result
    assert lines[1] == str(BUSYBOX.resolve()), result  # the login shell is busybox ash
    assert not [line for line in lines if line.startswith("found ")], result
    assert lines[2:] == [f"{setup.busybox_bin}/sha256sum", f"{setup.busybox_bin}/curl", "done"]
    assert Path(f"{setup.busybox_bin}/sha256sum").resolve() == BUSYBOX.resolve()


def _check_max_sessions(odd: OddVantage) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_host_keys(str(odd.known_hosts))
    client.connect(odd.address, port=odd.port, username=odd.user.name,
                   key_filename=str(odd.client_key), look_for_keys=False, allow_agent=False,
                   timeout=10, banner_timeout=10, auth_timeout=10)  # fmt: skip
    try:
        transport = client.get_transport()
        assert transport is not None
        first = transport.open_session(timeout=10)
        with pytest.raises(paramiko.ChannelException):
            transport.open_session(timeout=10)
        first.close()
    finally:
        client.close()


@ALL_KINDS
def test_vantage_is_built_as_claimed(
    odd_vantage: OddVantage, real_vantage_setup: RealVantageSetup
) -> None:
    odd = odd_vantage
    assert odd.user.kind is odd.kind
    if odd.kind is Kind.BUSYBOX:
        _check_busybox(odd, real_vantage_setup)
    else:
        command, check = PROBES[odd.kind]
        result = odd.ssh(command)
        assert result.returncode == 0, result
        check(result)
    if odd.kind is Kind.DROPBEAR:
        with socket.create_connection((odd.address, odd.port), timeout=5) as connection:
            assert connection.recv(64).startswith(b"SSH-2.0-dropbear"), "not dropbear"
    if odd.kind is Kind.MAX_SESSIONS_1:
        _check_max_sessions(odd)
    odd.assert_nothing_left()


# tofu3 on them.


def _report(result: CliResult, odd: OddVantage) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {result.code}):\n{result.stdout}\n{result.stderr}")
    if odd.kind in NOISY_KINDS:
        assert NOISE not in result.stdout, "rc-file noise reached the JSON report"
        assert FAKE_DIGEST not in result.stdout, "a digest an rc file printed reached the report"
    return document


def _summary(document: dict[str, Any]) -> str:
    vantages = [
        f"{v['name']}: ok={v['ok']} {v.get('error_code')} {v.get('error')}"
        for v in document.get("vantages", [])
    ]
    findings = [f"{f['code']} {f.get('vantage')}: {f['message']}" for f in document["findings"]]
    return "\n".join([f"verdict {document['verdict']}", *vantages, *findings[:10]])


@ALL_KINDS
def test_honest_lab_is_accepted(odd_vantage: OddVantage) -> None:
    result = run_verify(odd_vantage)
    document = _report(result, odd_vantage)
    assert result.code == 0, _summary(document) + "\n" + result.stderr[-2000:]
    assert document["verdict"] == "accepted"
    assert {v["name"]: v["ok"] for v in document["vantages"]} == {
        "ams": True,
        "sfo": True,
        ODD: True,
    }, _summary(document)
    odd_vantage.assert_nothing_left()


@ALL_KINDS
def test_blob_served_to_the_odd_vantage_is_rejected_and_blamed_on_it(
    odd_vantage: OddVantage,
) -> None:
    lab_tamper(ODD, "blob", odd_vantage.lab.directory)
    result = run_verify(odd_vantage)
    document = _report(result, odd_vantage)
    assert result.code == 1, _summary(document) + "\n" + result.stderr[-2000:]
    assert document["verdict"] == "rejected"
    blamed = {f["vantage"] for f in document["findings"] if f["code"] == "DIGEST_MISMATCH"}
    assert blamed == {ODD}, _summary(document)
    odd_vantage.assert_nothing_left()


@pytest.mark.parametrize(
    "odd_vantage", NOISY_KINDS, indirect=True, ids=[kind.value for kind in NOISY_KINDS]
)
def test_rc_noise_is_not_in_a_report_of_a_failing_vantage(odd_vantage: OddVantage) -> None:
    # A vantage whose curl fails is where its own output is most likely quoted in the report.
    lab_tamper(ODD, "redirect-http", odd_vantage.lab.directory)
    result = run_verify(odd_vantage)
    document = _report(result, odd_vantage)  # asserts the noise is not in it
    assert result.code == 1, _summary(document)
    # The refused redirect of a blob, not an earlier step the noise broke.
    refused = [f for f in document["findings"] if f["code"] == "PROTOCOL_VIOLATION"]
    assert {f["vantage"] for f in refused} == {ODD}, _summary(document)
    assert all("blob" in f["message"] for f in refused), _summary(document)
    assert NOISE not in json.dumps(document)
    odd_vantage.assert_nothing_left()


# Ctrl-C while the odd vantage is downloading.


def _wait_until_held(odd: OddVantage, log_offset: int, process: subprocess.Popen[bytes]) -> None:
    """Until the lab registry holds a stalled layer download of the odd vantage's curl."""
    held = f" {odd_source_address(odd)} holding "
    log = odd.lab.directory / "registry.log"
    deadline = time.monotonic() + INTERRUPT_WAIT
    while time.monotonic() < deadline:
        with log.open("rb") as handle:
            handle.seek(log_offset)
            seen = handle.read().decode("utf-8", "replace")
        if held in seen and any(p.comm == "curl" for p in odd.processes()):
            return
        if process.poll() is not None:
            pytest.fail(f"tofu3 ended (exit {process.returncode}) before the stall")
        time.sleep(0.1)
    pytest.fail(f"the {odd.kind.value} vantage never reached a stalled download")


def odd_source_address(odd: OddVantage) -> str:
    """The source address the odd vantage's curl binds (its lab identity)."""
    for vantage in yaml.safe_load(odd.inventory.read_text())["vantages"]:
        if vantage["name"] == ODD:
            args: list[str] = vantage["curl_args"]
            return args[args.index("--interface") + 1]
    raise AssertionError("no odd vantage in the inventory")


@pytest.mark.parametrize(
    "odd_vantage",
    [Kind.DROPBEAR, Kind.BASH, Kind.READONLY_TMP],
    indirect=True,
    ids=["dropbear", "openssh", "readonly-tmp"],
)
def test_ctrl_c_mid_download_leaves_nothing_running_on_the_vantage(
    odd_vantage: OddVantage, tmp_path: Path
) -> None:
    odd = odd_vantage
    lab_tamper(ODD, "stall", odd.lab.directory)
    log_offset = (odd.lab.directory / "registry.log").stat().st_size
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    process = start_verify(odd, stdout, stderr)
    try:
        _wait_until_held(odd, log_offset, process)
        started = [str(p) for p in odd.processes()]
        working = temp_entries_of(odd.user) - odd.temp_before
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=INTERRUPT_WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    errors = stderr.read_text(errors="replace")
    assert code == 130, f"exit {code}\n{errors[-2000:]}"
    assert "Traceback" not in errors, errors
    left = odd.wait_for_no_processes()
    assert not left, (
        "still running on the vantage 5 s after tofu3 ended on Ctrl-C:\n"
        + "\n".join(map(str, left))
        + "\nrunning at the Ctrl-C:\n"
        + "\n".join(started)
    )
    assert not odd.new_temp_entries()
    if odd.kind is Kind.READONLY_TMP:
        # /tmp could not be written: the session worked in /var/tmp, the next on the list.
        assert working, "no working directory seen during the download"
        assert {path.parent for path in working} == {Path("/var/tmp")}, working
    if odd.kind is Kind.DROPBEAR:
        assert process_alive(odd.daemon.pid, odd.daemon.start_ticks), "dropbear died"
        again = odd.ssh("echo still-serving")
        assert again.stdout.strip() == "still-serving", again
        odd.assert_nothing_left()
