"""Vantages whose PATH starts with a directory of wrappers: how tests watch or slow down
what runs on a vantage (a logging curl, an old curl, a curl that stalls)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tofu3.lab.manager import LabState
from tofu3.lab.sshd import SshdVantage, ensure_client_key, free_port, start_vantage


def start_wrapped(
    lab: LabState, directory: Path, script: str, names: list[str]
) -> tuple[Path, list[SshdVantage], Path]:
    """Start one vantage per name with ``script`` as its curl; return an inventory using
    them (with the lab's curl options), the vantages, and the log directory."""
    bin_dir = directory / "bin"
    logs = directory / "logs"
    bin_dir.mkdir(parents=True)
    logs.mkdir()
    wrapper = bin_dir / "curl"
    wrapper.write_text(script.format(log=logs))
    wrapper.chmod(0o755)
    client = ensure_client_key(lab.directory)
    document = yaml.safe_load(lab.inventory_path.read_text())
    started: list[SshdVantage] = []
    try:
        for index, entry in enumerate(document["vantages"]):
            if entry["name"] not in names:
                continue
            address = f"127.0.0.{31 + index}"
            vantage = start_vantage(
                directory / entry["name"],
                entry["name"],
                address,
                free_port(address),
                client.public_key,
                path_prefix=bin_dir,
            )
            started.append(vantage)
            entry.update(host=address, port=vantage.port, host_key=vantage.host_public_key)
    except BaseException:
        for vantage in started:
            vantage.stop()
        raise
    inventory = directory / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(document))
    return inventory, started, logs
