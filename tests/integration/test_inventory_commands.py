"""``tofu3 inventory check`` and ``tofu3 inventory pin`` against real sshd vantages and the lab
registry: what check shows and how it exits, and that pin trusts nothing unseen, writes only
host_key lines, and leaves an inventory that verifies."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import CLI_TIMEOUT, WGET, CliResult
from tests.integration.ssh_setup import (
    Coordinator,
    coordinator,
    fingerprint_of,
    known_hosts_name,
    ssh_lab,
)
from tofu3.lab.sshd import current_user, free_port

pytestmark = pytest.mark.integration
__all__ = ["coordinator", "ssh_lab"]


def _local_curl_version() -> str:
    first = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    return first.stdout.split()[1]


def _row(table: str, vantage: str) -> str:
    """The table row of ``vantage`` (its first column)."""
    return next(line for line in table.splitlines() if line.split()[:1] == [vantage])


def _unpinned_inventory(coordinator: Coordinator) -> Path:
    """The lab's vantages in a hand-written inventory with comments and no host keys."""
    lab = coordinator.lab
    lines = [
        "# My vantages. Comments and layout must survive `tofu3 inventory pin`.",
        "version: 1",
        "defaults:",
        f"  user: {current_user()}   # the lab's sshd lets in only this user",
        f"  identity_file: {lab.client_key}",
        "vantages:",
    ]
    document = yaml.safe_load(lab.inventory_path.read_text())
    for index, entry in enumerate(document["vantages"]):
        vantage = lab.vantage(entry["name"])
        args = json.dumps(entry["curl_args"])
        if index == 1:
            lines += [
                f"  # {vantage.name}: written as a flow mapping",
                f"  - {{name: {vantage.name}, host: {vantage.address}, port: {vantage.port}, "
                f"curl_args: {args}}}",
            ]
            continue
        lines += [
            f"  # {vantage.name}: a block mapping",
            f"  - name: {vantage.name}",
            f"    host: {vantage.address}    # loopback",
            f"    port: {vantage.port}",
            f"    curl_args: {args}",
            f'    note: "lab vantage {vantage.name}"',
        ]
    path = coordinator.home / "mine.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_shows_each_vantage_host_key_curl_hash_tool_and_registry(
    coordinator: Coordinator,
) -> None:
    inventory = coordinator.lab.inventory_path

    table = coordinator.run("inventory", "check", "-i", str(inventory))
    as_json = coordinator.run("inventory", "check", "-i", str(inventory), "--json")

    assert table.code == 0, table.stderr
    curl = _local_curl_version()
    for vantage in coordinator.lab.vantages:
        row = _row(table.stdout, vantage.name)
        assert fingerprint_of(vantage.host_key) in row
        assert curl in row
        assert "openssl" in row  # openssl passes the known-answer test here
        assert "401" in row  # the lab's ghcr.io answers /v2/ with its Bearer challenge
        assert row.rstrip().endswith("ok")
    assert as_json.code == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["schema"] == "tofu3.inventory-check/v1"
    assert document["usable"] is True
    assert document["registry"] == "ghcr.io"
    assert [v["name"] for v in document["vantages"]] == ["ams", "sfo", "sgp"]
    for entry in document["vantages"]:
        expected = fingerprint_of(coordinator.lab.vantage(entry["name"]).host_key)
        assert entry["host_key_fingerprint"] == expected
        assert entry["curl_version"] == curl
        assert entry["registry_status"] == 401
        assert entry["ok"] is True
        assert entry["error"] is None


def test_check_exits_3_when_a_vantage_is_unreachable(coordinator: Coordinator) -> None:
    sfo = coordinator.lab.vantage("sfo")
    inventory = coordinator.inventory(
        {"sfo": {"port": free_port(sfo.address)}, "ams": {}, "sgp": {}}
    )
    coordinator.host("*", User=current_user(), IdentityFile=coordinator.client_key)

    result = coordinator.run("inventory", "check", "-i", str(inventory), "--json")

    assert result.code == 3, result.stderr
    states = {v["name"]: v for v in json.loads(result.stdout)["vantages"]}
    assert states["sfo"]["problem"] == "unreachable"
    assert "connection refused" in states["sfo"]["error"]
    assert states["ams"]["ok"] is True
    assert states["sgp"]["ok"] is True


def test_check_exits_3_when_a_vantage_cannot_reach_the_registry(
    coordinator: Coordinator,
) -> None:
    sgp = coordinator.lab.vantage("sgp")
    document = yaml.safe_load(coordinator.lab.inventory_path.read_text())
    closed = free_port("127.0.0.1")
    for entry in document["vantages"]:
        if entry["name"] == "sgp":
            # curl takes the first --connect-to that matches: ghcr.io goes nowhere for sgp.
            entry["curl_args"][:0] = ["--connect-to", f"ghcr.io:443:127.0.0.1:{closed}"]
    inventory = coordinator.home / "blocked.yaml"
    inventory.write_text(yaml.safe_dump(document))

    result = coordinator.run("inventory", "check", "-i", str(inventory))

    assert result.code == 3, result.stderr
    row = _row(result.stdout, "sgp")
    assert fingerprint_of(sgp.host_key) in row  # logged in fine...
    assert "unreachable" in row  # ...but the registry did not answer
    assert "registry ghcr.io not reachable" in result.stderr


def test_check_exits_2_for_an_unknown_host_key_and_still_checks_the_others(
    coordinator: Coordinator,
) -> None:
    document = yaml.safe_load(coordinator.lab.inventory_path.read_text())
    document["vantages"][2].pop("host_key")
    inventory = coordinator.home / "nokey.yaml"
    inventory.write_text(yaml.safe_dump(document))

    result = coordinator.run("inventory", "check", "-i", str(inventory), "--json")

    assert result.code == 2, result.stderr
    states = {v["name"]: v for v in json.loads(result.stdout)["vantages"]}
    assert states["sgp"]["problem"] == "configuration"
    assert "unknown host key" in states["sgp"]["error"]
    assert states["ams"]["ok"] is True
    assert states["sfo"]["ok"] is True


def test_check_exits_2_for_an_inventory_with_an_unknown_key(coordinator: Coordinator) -> None:
    text = coordinator.lab.inventory_path.read_text().replace("    port:", "    prot:", 1)
    inventory = coordinator.home / "typo.yaml"
    inventory.write_text(text)

    result = coordinator.run("inventory", "check", "-i", str(inventory))

    assert result.code == 2
    assert "unknown key 'prot'" in result.stderr
    assert result.stdout == ""


def test_check_refuses_two_aliases_of_one_machine(coordinator: Coordinator) -> None:
    changes = coordinator.all_aliases()
    ams = coordinator.lab.vantage("ams")
    # sfo's alias leads to ams's sshd: two names, one machine, one network path.
    coordinator.config_lines[:0] = [
        "Host sfo-alias",
        f"    HostName {ams.address}",
        f"    Port {ams.port}",
    ]
    inventory = coordinator.inventory(changes)

    result = coordinator.run("inventory", "check", "-i", str(inventory))

    assert result.code == 2, result.stderr
    assert "'sfo' reaches the same host as 'ams'" in result.stderr


def test_pin_yes_writes_host_keys_preserving_comments_and_the_result_verifies(
    coordinator: Coordinator,
) -> None:
    inventory = _unpinned_inventory(coordinator)
    before = inventory.read_text()

    result = coordinator.run("inventory", "pin", "-i", str(inventory), "--yes")

    assert result.code == 0, result.stderr
    after = inventory.read_text()
    for vantage in coordinator.lab.vantages:
        assert fingerprint_of(vantage.host_key) in result.stdout
        assert f'host_key: "{vantage.host_key}"' in after
    # Block mappings gained one line each; the flow mapping gained one entry in its line;
    # every other line, comments included, is as it was and in the same order.
    sfo_key = coordinator.lab.vantage("sfo").host_key
    old_flow = next(line for line in before.splitlines() if line.startswith("  - {"))
    new_flow = old_flow.removesuffix("}") + f', host_key: "{sfo_key}"}}'
    expected = before.replace(old_flow, new_flow).splitlines()
    remaining = [line for line in after.splitlines() if not line.startswith("    host_key: ")]
    assert remaining == expected
    assert after.count("\n    host_key: ") == 2
    assert not coordinator.known_hosts.exists() or coordinator.known_hosts.read_text() == ""
    verified = coordinator.run("verify", WGET, "-i", str(inventory))
    assert verified.code == 0, verified.stderr


def test_pin_without_a_terminal_and_without_yes_refuses(coordinator: Coordinator) -> None:
    inventory = _unpinned_inventory(coordinator)
    before = inventory.read_bytes()

    result = coordinator.run_without_terminal("inventory", "pin", "-i", str(inventory))

    assert result.code == 2
    assert "no terminal" in result.stderr
    assert inventory.read_bytes() == before
    # It still shows what it would have trusted, to check out of band.
    assert fingerprint_of(coordinator.lab.vantage("ams").host_key) in result.stdout


def _pin_on_a_terminal(coordinator: Coordinator, inventory: Path, answer: bytes) -> CliResult:
    """Run ``inventory pin`` with a pseudo-terminal as stdin, answering the prompt."""
    leader, follower = pty.openpty()
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **coordinator.env()}
    process = subprocess.Popen(
        [sys.executable, "-m", "tofu3", "inventory", "pin", "-i", str(inventory)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    os.close(follower)
    try:
        # Answer only once the question has been asked: stderr carries the prompt.
        asked = b""
        deadline = time.monotonic() + 60
        assert process.stderr is not None
        while b"[y/N]" not in asked and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1.0)
            if ready:
                chunk = os.read(process.stderr.fileno(), 4096)
                if not chunk:
                    break
                asked += chunk
        os.write(leader, answer + b"\n")
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return CliResult(process.returncode, stdout.decode(), (asked + stderr).decode())


def test_pin_asks_on_the_terminal_and_writes_only_after_yes(coordinator: Coordinator) -> None:
    inventory = _unpinned_inventory(coordinator)
    before = inventory.read_bytes()

    declined = _pin_on_a_terminal(coordinator, inventory, b"n")
    unchanged = inventory.read_bytes()
    confirmed = _pin_on_a_terminal(coordinator, inventory, b"y")

    assert "[y/N]" in declined.stderr
    assert declined.code == 2, declined.stderr
    assert unchanged == before
    assert confirmed.code == 0, confirmed.stderr
    assert inventory.read_text().count("host_key: ") == 3


def test_pin_refuses_a_key_that_contradicts_known_hosts(coordinator: Coordinator) -> None:
    inventory = _unpinned_inventory(coordinator)
    ams = coordinator.lab.vantage("ams")
    wrong_key = coordinator.lab.vantage("sfo").host_key
    coordinator.trust(known_hosts_name(ams.address, ams.port), wrong_key)

    result = coordinator.run("inventory", "pin", "-i", str(inventory), "--yes")

    assert result.code == 2, result.stderr
    assert "does not match the key known_hosts has" in result.stderr
    after = yaml.safe_load(inventory.read_text())
    keys = {entry["name"]: entry.get("host_key") for entry in after["vantages"]}
    assert keys["ams"] is None
    assert keys["sfo"] == coordinator.lab.vantage("sfo").host_key
    assert keys["sgp"] == coordinator.lab.vantage("sgp").host_key
