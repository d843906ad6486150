"""SSH as users run it: vantages named by ~/.ssh/config aliases, reached through jump hosts or a
ProxyCommand, trusted through hashed known_hosts or ssh-agent keys; and none of it a way
around the strict host-key policy. Real sshd vantages, real curl, the lab registry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import WGET
from tests.integration.ssh_setup import (
    Coordinator,
    coordinator,
    fingerprint_of,
    known_hosts_name,
    ssh_lab,
)
from tofu3.lab.sshd import current_user, end_process, process_start_ticks

pytestmark = pytest.mark.integration
__all__ = ["coordinator", "ssh_lab"]

RELAY = """\
import os, socket, sys, threading
# A ProxyCommand: connect to HOST PORT, note it in LOG, relay stdin/stdout both ways.
connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))
with open(sys.argv[3], "a") as log:
    log.write(f"relayed to {sys.argv[1]}:{sys.argv[2]}\\n")
def upstream():
    while data := os.read(0, 65536):
        connection.sendall(data)
    connection.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := connection.recv(65536):
    os.write(1, data)
"""


def _accepted_logins(log: Path) -> int:
    return len(re.findall(r"Accepted publickey for ", log.read_text(errors="replace")))


def test_vantages_named_by_ssh_config_aliases_are_verified(coordinator: Coordinator) -> None:
    # The inventory names each vantage by an alias alone: HostName, Port, User and
    # IdentityFile come from the ssh_config (the inventory has no defaults either).
    inventory = coordinator.inventory(coordinator.all_aliases())

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 0, result.stderr
    assert "ACCEPTED" in result.stdout
    assert "host: ams-alias" in inventory.read_text()
    assert "port:" not in inventory.read_text()


def test_ssh_config_values_apply_and_inventory_values_override_them(
    coordinator: Coordinator,
) -> None:
    ams = coordinator.lab.vantage("ams")
    changes = coordinator.all_aliases()
    # ams's alias comes first in the file, so its wrong Port and User win over the good ones
    # written after it, unless the inventory sets its own.
    coordinator.config_lines[:0] = ["Host ams-alias", "    Port 9", "    User nobody-tofu3"]
    wrong = coordinator.inventory(changes, "wrong.yaml")
    changes["ams"].update(port=ams.port, user=current_user())
    overridden = coordinator.inventory(changes, "overridden.yaml")

    refused = coordinator.run("verify", WGET, "-i", str(wrong))
    accepted = coordinator.run("verify", WGET, "-i", str(overridden))

    assert refused.code == 3, refused.stderr
    assert "ams" in refused.stderr
    assert accepted.code == 0, accepted.stderr


def test_vantage_behind_a_jump_host_is_verified_through_it(coordinator: Coordinator) -> None:
    jump = coordinator.start_jump("bastion", "127.0.0.61")
    coordinator.trust(known_hosts_name(jump.address, jump.port), jump.host_public_key)
    changes = coordinator.all_aliases()
    coordinator.config_lines[:0] = ["Host ams-alias", "    ProxyJump bastion"]
    coordinator.host(
        "bastion",
        HostName=jump.address,
        Port=jump.port,
        User=current_user(),
        IdentityFile=coordinator.client_key,
    )
    inventory = coordinator.inventory(changes)

    accepted = coordinator.run("verify", WGET, "-i", str(inventory))
    logins = _accepted_logins(jump.log_path)
    jump.stop()
    without_jump = coordinator.run("verify", WGET, "-i", str(inventory))

    assert accepted.code == 0, accepted.stderr
    assert logins >= 1, "the jump host never saw a login"
    # With the jump host gone, the vantage behind it cannot be reached: the route is real.
    assert without_jump.code == 3, without_jump.stderr
    assert "jump host 'bastion'" in without_jump.stderr


def test_a_chain_of_jump_hosts_is_followed_in_order(coordinator: Coordinator) -> None:
    first = coordinator.start_jump("first", "127.0.0.62")
    second = coordinator.start_jump("second", "127.0.0.63")
    for jump in (first, second):
        coordinator.trust(known_hosts_name(jump.address, jump.port), jump.host_public_key)
        coordinator.host(
            jump.name,
            HostName=jump.address,
            Port=jump.port,
            User=current_user(),
            IdentityFile=coordinator.client_key,
        )
    changes = coordinator.all_aliases()
    coordinator.config_lines[:0] = ["Host sfo-alias", "    ProxyJump first,second"]
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 0, result.stderr
    assert _accepted_logins(first.log_path) >= 1
    assert _accepted_logins(second.log_path) >= 1


def test_jump_host_with_an_unknown_key_is_refused_and_nothing_is_added(
    coordinator: Coordinator,
) -> None:
    jump = coordinator.start_jump("bastion", "127.0.0.64")
    changes = coordinator.all_aliases()
    coordinator.config_lines[:0] = ["Host sgp-alias", "    ProxyJump bastion"]
    coordinator.host(
        "bastion", HostName=jump.address, Port=jump.port, IdentityFile=coordinator.client_key
    )
    # The vantage behind it has a pinned key: the jump host still needs its own.
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 2, result.stderr
    assert "jump host 'bastion'" in result.stderr
    assert "unknown host key" in result.stderr
    assert fingerprint_of(jump.host_public_key) in result.stderr
    expected_line = f"{known_hosts_name(jump.address, jump.port)} {jump.host_public_key}"
    assert expected_line in result.stderr
    assert not coordinator.known_hosts.exists(), "a host key was added"
    assert _accepted_logins(jump.log_path) == 0, "logged in to an unverified jump host"


def test_jump_host_whose_key_changed_is_refused(coordinator: Coordinator) -> None:
    jump = coordinator.start_jump("bastion", "127.0.0.65")
    other_key = coordinator.lab.vantage("ams").host_key
    coordinator.trust(known_hosts_name(jump.address, jump.port), other_key)
    changes = coordinator.all_aliases()
    coordinator.config_lines[:0] = ["Host sgp-alias", "    ProxyJump bastion"]
    coordinator.host(
        "bastion", HostName=jump.address, Port=jump.port, IdentityFile=coordinator.client_key
    )
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 2, result.stderr
    assert "does not match" in result.stderr
    assert fingerprint_of(jump.host_public_key) in result.stderr
    assert _accepted_logins(jump.log_path) == 0


def test_vantage_reached_through_a_proxy_command(coordinator: Coordinator) -> None:
    sfo = coordinator.lab.vantage("sfo")
    relay = coordinator.home / "relay.py"
    relay.write_text(RELAY)
    log = coordinator.home / "relay.log"
    changes = coordinator.all_aliases()
    # The HostName cannot be resolved: only the ProxyCommand knows where sfo is.
    coordinator.config_lines[:0] = [
        "Host sfo-alias",
        "    HostName sfo.behind-a-proxy.invalid",
        f"    ProxyCommand {sys.executable} {relay} {sfo.address} %p {log}",
    ]
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 0, result.stderr
    assert f"relayed to {sfo.address}:{sfo.port}" in log.read_text()


def test_hashed_known_hosts_entries_are_trusted(coordinator: Coordinator) -> None:
    changes: dict[str, dict[str, object]] = {}
    for vantage in coordinator.lab.vantages:
        coordinator.trust(known_hosts_name(vantage.address, vantage.port), vantage.host_key)
        changes[vantage.name] = {"host_key": None, "user": current_user()}
        changes[vantage.name]["identity_file"] = str(coordinator.client_key)
    subprocess.run(
        ["ssh-keygen", "-H", "-f", str(coordinator.known_hosts)], capture_output=True, check=True
    )
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    hashed = coordinator.known_hosts.read_text()
    assert hashed.count("|1|") == 3
    assert all(v.address not in hashed for v in coordinator.lab.vantages)
    assert result.code == 0, result.stderr


def test_an_alias_cannot_borrow_a_known_hosts_entry_under_its_own_name(
    coordinator: Coordinator,
) -> None:
    changes = coordinator.all_aliases()
    ams = coordinator.lab.vantage("ams")
    # The right key, but filed under the alias: ssh looks keys up under the HostName.
    coordinator.trust("ams-alias", ams.host_key)
    coordinator.trust(f"[ams-alias]:{ams.port}", ams.host_key)
    changes["ams"]["host_key"] = None
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 2, result.stderr
    assert "unknown host key" in result.stderr
    assert "vantage 'ams'" in result.stderr


def test_host_key_alias_names_the_known_hosts_entry(coordinator: Coordinator) -> None:
    changes = coordinator.all_aliases()
    ams = coordinator.lab.vantage("ams")
    coordinator.config_lines[:0] = ["Host ams-alias", "    HostKeyAlias ams.keys.example"]
    coordinator.trust("ams.keys.example", ams.host_key)
    changes["ams"]["host_key"] = None
    inventory = coordinator.inventory(changes)

    result = coordinator.run("verify", WGET, "-i", str(inventory))

    assert result.code == 0, result.stderr


@pytest.fixture
def ssh_agent(coordinator: Coordinator) -> Iterator[str]:
    """An ssh-agent holding the lab's client key; its socket path. Ended by pid."""
    socket_path = coordinator.home / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ticks = process_start_ticks(agent.pid)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(
            ["ssh-add", str(coordinator.client_key)],
            env={**os.environ, "SSH_AUTH_SOCK": str(socket_path)},
            capture_output=True,
            check=True,
        )
        yield str(socket_path)
    finally:
        end_process(agent.pid, ticks)
        agent.wait()


def test_keys_from_ssh_agent_log_in(coordinator: Coordinator, ssh_agent: str) -> None:
    changes: dict[str, dict[str, object]] = {}
    for vantage in coordinator.lab.vantages:
        # No identity_file anywhere and no key in HOME: only the agent holds one.
        changes[vantage.name] = {"user": current_user()}
    inventory = coordinator.inventory(changes)

    without_agent = coordinator.run("verify", WGET, "-i", str(inventory))
    with_agent = coordinator.run("verify", WGET, "-i", str(inventory), SSH_AUTH_SOCK=ssh_agent)

    assert without_agent.code == 3, without_agent.stderr
    assert "No authentication methods available" in without_agent.stderr
    assert with_agent.code == 0, with_agent.stderr
