"""Building blocks for tests of SSH as users run it: a loopback lab, an empty HOME with its own
known_hosts, an ssh_config (through $TOFU3_SSH_CONFIG), inventories derived from the lab's,
and extra sshd jump hosts. Every sshd a test starts here is stopped by pid."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import CLI_TIMEOUT, CliResult, run_cli
from tofu3.lab.manager import LabMode, LabState, VantageRecord, lab_down, lab_up
from tofu3.lab.sshd import SshdVantage, current_user, ensure_client_key, free_port, start_vantage


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """A loopback lab (real sshd vantages, the lab registry) for one test module."""
    directory = tmp_path_factory.mktemp("ssh-lab")
    try:
        yield lab_up(directory, LabMode.LOOPBACK)
    finally:
        lab_down(directory)


def fingerprint_of(key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of ``TYPE BASE64``."""
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """How ssh names a host in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


@dataclass
class Coordinator:
    """A coordinator's SSH set-up: an empty HOME (so no stray key or known_hosts helps), an
    ssh_config, and the environment a tofu3 run gets."""

    lab: LabState
    home: Path
    config_lines: list[str] = field(default_factory=list)
    jumps: list[SshdVantage] = field(default_factory=list)

    @property
    def ssh_config(self) -> Path:
        return self.home / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.lab.client_key

    def env(self, **extra: str) -> dict[str, str]:
        """HOME, the ssh_config, and no ssh-agent unless a test brings one."""
        self.ssh_config.write_text("\n".join(self.config_lines) + "\n")
        return {
            "HOME": str(self.home),
            "TOFU3_SSH_CONFIG": str(self.ssh_config),
            "SSH_AUTH_SOCK": "",
            **extra,
        }

    def host(self, alias: str, **options: object) -> None:
        """Add ``Host alias`` with ``options`` (ssh_config keyword -> value)."""
        self.config_lines.append(f"Host {alias}")
        self.config_lines += [f"    {key} {value}" for key, value in options.items()]

    def alias_for(self, vantage: VantageRecord, alias: str, **options: object) -> None:
        """A Host alias that reaches ``vantage`` with the lab's client key."""
        settings: dict[str, object] = {
            "HostName": vantage.address,
            "Port": vantage.port,
            "User": current_user(),
            "IdentityFile": self.client_key,
        }
        settings.update(options)
        self.host(alias, **settings)

    def trust(self, name: str, key_line: str) -> None:
        """Add a known_hosts line."""
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.known_hosts.open("a") as handle:
            handle.write(f"{name} {key_line}\n")

    def start_jump(self, name: str, address: str) -> SshdVantage:
        """A jump host: an sshd that lets the lab's client key open direct-tcpip channels."""
        client = ensure_client_key(self.lab.directory)
        jump = start_vantage(
            self.home / name,
            name,
            address,
            free_port(address),
            client.public_key,
            allow_forwarding=True,
        )
        self.jumps.append(jump)
        return jump

    def stop_jumps(self) -> None:
        for jump in self.jumps:
            jump.stop()
        self.jumps.clear()

    def inventory(self, changes: dict[str, dict[str, Any]], name: str = "inventory.yaml") -> Path:
        """The lab inventory with each named vantage's keys changed (None removes a key),
        and without the lab's defaults (user, identity_file): the ssh_config supplies them."""
        document = yaml.safe_load(self.lab.inventory_path.read_text())
        document.pop("defaults", None)
        for vantage in document["vantages"]:
            for key, value in changes.get(vantage["name"], {}).items():
                if value is None:
                    vantage.pop(key, None)
                else:
                    vantage[key] = value
        path = self.home / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def all_aliases(self) -> dict[str, dict[str, Any]]:
        """Inventory changes that name every lab vantage by an alias (``NAME-alias``)."""
        changes: dict[str, dict[str, Any]] = {}
        for vantage in self.lab.vantages:
            alias = f"{vantage.name}-alias"
            self.alias_for(vantage, alias)
            changes[vantage.name] = {"host": alias, "port": None}
        return changes

    def run(self, *args: str, **extra_env: str) -> CliResult:
        return run_cli(args, lab_dir=self.lab.directory, env=self.env(**extra_env))

    def run_without_terminal(self, *args: str) -> CliResult:
        """tofu3 with stdin from /dev/null: certainly not a terminal."""
        environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **self.env()}
        completed = subprocess.run(
            [sys.executable, "-m", "tofu3", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=environment,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def coordinator(ssh_lab: LabState, tmp_path: Path) -> Iterator[Coordinator]:
    """A fresh coordinator set-up for one test; its jump hosts are stopped after it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    setup = Coordinator(lab=ssh_lab, home=home)
    try:
        yield setup
    finally:
        setup.stop_jumps()
