"""Attacks and faults at the vantages and in what the user gives tofu3: vantages that hang or
die, two inventory entries that are one machine, and values that try to reach a shell. Real
sshd vantages, real curl, the lab registry. A vantage that cannot finish leaves the verdict
inconclusive, never accepted; input that could reach a shell is refused before anything runs.

(A vantage down, unknown or mismatched host keys: test_verify_lab.py. An old curl and the
token on a command line: test_vantage_safety.py.)"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.attacks import (
    AttackLab,
    HangAtAuthServer,
    SilentListener,
    TcpRelay,
    command_of,
    descendants,
    finish,
    replacement_vantage,
    signal_all,
    start_verify,
    wait_until_held,
)
from tests.integration.conftest import WGET, run_cli
from tests.integration.vantage_tmp import (
    level_directories,
    new_level_directories,
    remove_new_level_directories,
)
from tofu3.lab.manager import LabMode, lab_down, lab_up
from tofu3.lab.sshd import process_alive

pytestmark = pytest.mark.integration

ONE_BOTTLE = ("--platform", "arm64_sonoma")
# The defaults these tests shorten: a hang must end by the option, not by the default.
DEFAULT_CONNECT_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def vantage_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackLab]:
    directory = tmp_path_factory.mktemp("vantage-attack-lab")
    try:
        yield AttackLab(lab_up(directory, LabMode.LOOPBACK))
    finally:
        lab_down(directory)


@pytest.fixture
def lab(vantage_lab: AttackLab) -> Iterator[AttackLab]:
    vantage_lab.tamper("all", None)
    yield vantage_lab
    vantage_lab.tamper("all", None)


# Vantages that hang or die: bounded, and inconclusive.


def test_vantage_that_hangs_before_the_ssh_banner_is_bounded_and_inconclusive(
    lab: AttackLab, tmp_path: Path
) -> None:
    listener = SilentListener("127.0.0.13")
    try:
        inventory = lab.edited_inventory(
            tmp_path / "inventory.yaml", "sgp", host=listener.address, port=listener.port
        )
        run = lab.verify(WGET, *ONE_BOTTLE, "--connect-timeout", "1", inventory=inventory)
    finally:
        listener.close()

    assert run.code == 3 and run.verdict == "inconclusive"
    assert run.blamed("VANTAGE_UNREACHABLE") == {"sgp"}
    assert (
        "timed out: no SSH handshake (banner and key exchange) within 1 s"
        in (run.vantage("sgp")["error"])
    )
    assert run.vantage("ams")["ok"] and run.vantage("sfo")["ok"], run.report["vantages"]
    assert run.seconds < DEFAULT_CONNECT_TIMEOUT, "the hang lasted past --connect-timeout"


def test_vantage_that_hangs_at_authentication_is_bounded_and_inconclusive(
    lab: AttackLab, tmp_path: Path
) -> None:
    server = HangAtAuthServer("127.0.0.13", tmp_path)
    try:
        inventory = lab.edited_inventory(
            tmp_path / "inventory.yaml",
            "sgp",
            host=server.address,
            port=server.port,
            host_key=server.host_key,
        )
        run = lab.verify(WGET, *ONE_BOTTLE, "--connect-timeout", "1", inventory=inventory)
    finally:
        server.close()

    assert run.code == 3 and run.verdict == "inconclusive"
    assert run.blamed("VANTAGE_UNREACHABLE") == {"sgp"}
    assert "timed out during authentication" in run.vantage("sgp")["error"]
    assert run.seconds < DEFAULT_CONNECT_TIMEOUT


def test_vantage_that_freezes_in_the_middle_of_a_download_is_bounded_and_inconclusive(
    lab: AttackLab, tmp_path: Path
) -> None:
    # The CDN holds sgp's layer half-sent; then the whole vantage stops (SIGSTOP): not even
    # curl's progress meter comes back any more.
    lab.tamper("sgp", "stall")
    directories = level_directories()
    with replacement_vantage(lab, "sgp", tmp_path) as (inventory, sgp):
        since = len(lab.registry_log())
        process = start_verify(lab.directory, WGET, inventory, *ONE_BOTTLE, "--stall-timeout", "2")
        frozen: list[tuple[int, int | None]] = []
        try:
            wait_until_held(lab, process, after=since)
            frozen = descendants(sgp.pid)
            signal_all(frozen, signal.SIGSTOP)
            result = finish(process)
        finally:
            signal_all(frozen, signal.SIGKILL)
            if process.poll() is None:
                process.kill()
                process.wait()
            # Killed with SIGKILL, sgp's command could not remove its FIFOs.
            remove_new_level_directories(directories)

    report = result.json()
    assert result.code == 3 and report["verdict"] == "inconclusive"
    sgp_entry = next(v for v in report["vantages"] if v["name"] == "sgp")
    assert sgp_entry["error_code"] == "VANTAGE_TIMEOUT"
    assert "nothing came back" in sgp_entry["error"]
    assert report["pinned_reference"] is None


def test_vantage_killed_in_the_middle_of_a_download_is_inconclusive_never_accepted(
    lab: AttackLab, tmp_path: Path
) -> None:
    lab.tamper("sgp", "stall")
    directories = level_directories()
    with replacement_vantage(lab, "sgp", tmp_path) as (inventory, sgp):
        since = len(lab.registry_log())
        process = start_verify(lab.directory, WGET, inventory, *ONE_BOTTLE)
        try:
            wait_until_held(lab, process, after=since)
            session = descendants(sgp.pid)
            # The vantage's sshd dies, and the session's sshd with it; what they ran (the
            # shell, curl, the hasher) must end by itself once its connection is gone.
            daemons = [(sgp.pid, sgp.start_ticks)]
            daemons += [
                (pid, ticks) for pid, ticks in session if command_of(pid).startswith("sshd")
            ]
            signal_all(daemons, signal.SIGKILL)
            result = finish(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        left = [(pid, ticks) for pid, ticks in session if process_alive(pid, ticks)]
        kept = new_level_directories(directories)
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [(pid, ticks) for pid, ticks in left if process_alive(pid, ticks)]

    report = result.json()
    assert result.code == 3 and report["verdict"] == "inconclusive"
    sgp_entry = next(v for v in report["vantages"] if v["name"] == "sgp")
    assert sgp_entry["ok"] is False
    assert sgp_entry["error_code"] == "VANTAGE_FAILED"
    assert "connection was lost" in sgp_entry["error"]
    assert report["pinned_reference"] is None
    assert len(session) > len(daemons) - 1, "the download was not running when sgp died"
    assert left == [], [command_of(pid) for pid, _ in left]
    # Its connection gone, sgp's command removed its FIFOs itself.
    assert kept == set()


# Two entries, one machine.


def test_two_inventory_entries_with_the_same_host_and_port_are_refused(
    lab: AttackLab, tmp_path: Path
) -> None:
    ams = lab.state.vantage("ams")
    inventory = lab.edited_inventory(
        tmp_path / "inventory.yaml", "sgp", host=ams.address, port=ams.port, host_key=ams.host_key
    )
    logins = lab.sshd_log_count("Accepted publickey")

    result = run_cli(["verify", WGET, "-i", str(inventory), "--json"], lab_dir=lab.directory)

    assert result.code == 2
    assert "not independent" in result.stderr and "'sgp'" in result.stderr
    assert result.stdout == ""
    assert lab.sshd_log_count("Accepted publickey") == logins, "a vantage was contacted"


def test_two_names_for_one_host_and_port_are_refused_before_anything_runs(
    lab: AttackLab, tmp_path: Path
) -> None:
    # 127.11 is 127.0.0.11 written another way: the inventory cannot tell, the connection can.
    ams = lab.state.vantage("ams")
    assert ams.address == "127.0.0.11"
    inventory = lab.edited_inventory(
        tmp_path / "inventory.yaml", "sgp", host="127.11", port=ams.port, host_key=ams.host_key
    )
    commands, since = lab.sshd_log_count("Starting session"), len(lab.registry_log())

    result = run_cli(["verify", WGET, "-i", str(inventory), "--json"], lab_dir=lab.directory)

    assert result.code == 2
    assert f"both reach 127.0.0.11:{ams.port}" in result.stderr
    assert "not independent" in result.stderr
    assert result.stdout == ""
    assert lab.sshd_log_count("Starting session") == commands, "a command ran on a vantage"
    assert lab.registry_log()[since:] == [], "a vantage ran curl"


def test_one_machine_behind_two_addresses_is_refused_by_its_host_key(
    lab: AttackLab, tmp_path: Path
) -> None:
    # A port forward on another address to ams's sshd: a different address and port, the
    # same machine, and the same host key.
    ams = lab.state.vantage("ams")
    relay = TcpRelay("127.0.0.13", (ams.address, ams.port))
    try:
        inventory = lab.edited_inventory(
            tmp_path / "inventory.yaml",
            "sgp",
            host=relay.address,
            port=relay.port,
            host_key=ams.host_key,
        )
        commands = lab.sshd_log_count("Starting session")

        result = run_cli(["verify", WGET, "-i", str(inventory), "--json"], lab_dir=lab.directory)
    finally:
        relay.close()

    assert result.code == 2
    assert "present the same SSH host key" in result.stderr and "'sgp'" in result.stderr
    assert result.stdout == ""
    assert lab.sshd_log_count("Starting session") == commands, "a command ran on a vantage"


# Input that tries to reach a shell: refused before anything runs anywhere. Each case writes
# {marker} where a shell would create a file.

SHELL_ATTEMPTS = [
    pytest.param(["ghcr.io/homebrew/core/wget:1.24.5; touch {marker}"], {}, id="reference"),
    pytest.param(["ghcr.io/homebrew/core/wget:$(touch {marker})"], {}, id="reference-subshell"),
    pytest.param(["ghcr.io/homebrew/core/wget@sha256:`touch {marker}`"], {}, id="digest"),
    pytest.param([WGET, "--platform", "linux/amd64;touch {marker}"], {}, id="platform"),
    pytest.param([WGET], {"host": "127.0.0.13;touch {marker}"}, id="inventory-host"),
    pytest.param([WGET], {"user": "root$(touch {marker})"}, id="inventory-user"),
    pytest.param(
        [WGET], {"curl_args": ["--cacert", "/tmp/ca.pem;touch {marker}"]}, id="inventory-curl-args"
    ),
]


@pytest.mark.parametrize(("args", "changes"), SHELL_ATTEMPTS)
def test_shell_metacharacters_are_refused_before_anything_runs_on_any_vantage(
    lab: AttackLab, tmp_path: Path, args: list[str], changes: dict[str, object]
) -> None:
    marker = tmp_path / "shell-ran"
    filled = {k: _with_marker(v, marker) for k, v in changes.items()}
    inventory = lab.edited_inventory(tmp_path / "inventory.yaml", "sgp", **filled)
    logins, since = lab.sshd_log_count("Accepted publickey"), len(lab.registry_log())

    result = run_cli(
        ["verify", *(a.format(marker=marker) for a in args), "-i", str(inventory), "--json"],
        lab_dir=lab.directory,
    )

    assert result.code == 2, result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    time.sleep(0.2)  # a command that did run would have had time to leave its mark
    assert not marker.exists()
    assert lab.sshd_log_count("Accepted publickey") == logins, "a vantage was logged in to"
    assert lab.registry_log()[since:] == [], "a vantage ran curl"


def _with_marker(value: object, marker: Path) -> object:
    if isinstance(value, str):
        return value.format(marker=marker)
    if isinstance(value, list):
        return [_with_marker(item, marker) for item in value]
    return value
