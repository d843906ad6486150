"""An impostor registry, and a vantage whose names resolve to it: DNS poisoning in the lab.

The impostor is a second lab registry process serving another tree, consistent in itself
(every digest right), to every client, with a certificate of its own issued by the same lab
CA, as a mis-issued certificate from a public CA would be: TLS alone cannot tell it from the
real registry. Poisoning a vantage sends that vantage's registry, token and CDN names to it:

- netns mode: the vantage's own ``/etc/netns/tofu3-NAME/hosts`` names the impostor's
  addresses (IMPOSTOR_ADDRESSES on the lab's service interface, port 443), which is what a
  poisoned resolver does;
- loopback mode: the vantage's curl gets ``--connect-to`` options to the impostor's ports
  (:func:`connect_to_impostor`, for the inventory), the closest a shared resolver allows.

``impostor.json`` in the lab directory records the impostor's pid, so ``lab down`` stops it
by pid like everything else the lab starts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tofu3.atomic import write_atomic
from tofu3.lab.errors import LabError
from tofu3.lab.netns import (
    SERVICE_ADDRESSES,
    SERVICE_HOSTS,
    NamespaceLink,
    add_service_addresses,
    remove_service_addresses,
    write_hosts_file,
)
from tofu3.lab.pki import LAB_IPS, LAB_NAMES, issue_server_cert
from tofu3.lab.registry import start_registry
from tofu3.lab.sshd import end_process

IMPOSTOR_ADDRESSES: dict[str, str] = {
    "registry": "198.18.0.4",
    "auth": "198.18.0.5",
    "cdn": "198.18.0.6",
}
"""Where the impostor listens in netns mode (port 443), beside the real services."""

IMPOSTOR_DIRECTORY = "impostor"
IMPOSTOR_RECORD = "impostor.json"
_SERVICE_PORT = 443


@dataclass(frozen=True)
class Impostor:
    """A running impostor registry."""

    pid: int
    start_ticks: int | None
    ports: Mapping[str, tuple[str, int]]  # role -> (address, port)
    netns: bool  # whether its addresses were added to the lab's service interface


def start_impostor(lab_directory: Path, *, netns: bool) -> Impostor:
    """Start the impostor for the lab in ``lab_directory`` (one at a time) and record it."""
    if read_impostor(lab_directory) is not None:
        raise LabError("an impostor registry is already running for this lab")
    directory = lab_directory / IMPOSTOR_DIRECTORY
    directory.mkdir(mode=0o700, exist_ok=True)
    # The lab CA, and a certificate of the impostor's own that it signed.
    for name in ("ca.pem", "ca-key.pem"):
        shutil.copy2(lab_directory / name, directory / name)
    issue_server_cert(
        directory,
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        names=LAB_NAMES,
        ips=LAB_IPS,
    )
    if netns:
        add_service_addresses(list(IMPOSTOR_ADDRESSES.values()))
        listen = {role: (address, _SERVICE_PORT) for role, address in IMPOSTOR_ADDRESSES.items()}
    else:
        listen = {role: ("127.0.0.1", 0) for role in IMPOSTOR_ADDRESSES}
    try:
        process = start_registry(
            directory,
            registry=listen["registry"],
            auth=listen["auth"],
            cdn=listen["cdn"],
            content="alt",
        )
    except BaseException:
        if netns:
            remove_service_addresses(list(IMPOSTOR_ADDRESSES.values()))
        raise
    impostor = Impostor(process.pid, process.start_ticks, dict(process.ports), netns)
    record = {
        "pid": impostor.pid,
        "start_ticks": impostor.start_ticks,
        "ports": {role: list(end) for role, end in impostor.ports.items()},
        "netns": netns,
    }
    write_atomic(lab_directory / IMPOSTOR_RECORD, json.dumps(record).encode(), 0o600)
    return impostor


def read_impostor(lab_directory: Path) -> Impostor | None:
    """The impostor recorded for the lab in ``lab_directory``, if any."""
    try:
        data = json.loads((lab_directory / IMPOSTOR_RECORD).read_text(encoding="utf-8"))
        ticks = data["start_ticks"]
        return Impostor(
            pid=int(data["pid"]),
            start_ticks=None if ticks is None else int(ticks),
            ports={str(k): (str(v[0]), int(v[1])) for k, v in data["ports"].items()},
            netns=bool(data["netns"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise LabError(f"{lab_directory / IMPOSTOR_RECORD} is not readable ({error})") from error


def stop_impostor(lab_directory: Path) -> list[str]:
    """Stop the recorded impostor (by pid, checked against reuse), take its addresses off
    the service interface, and forget it. Returns what was stopped or removed."""
    impostor = read_impostor(lab_directory)
    if impostor is None:
        return []
    done = []
    if end_process(impostor.pid, impostor.start_ticks):
        done.append(f"impostor registry (pid {impostor.pid})")
    if impostor.netns:
        done += remove_service_addresses(list(IMPOSTOR_ADDRESSES.values()))
    (lab_directory / IMPOSTOR_RECORD).unlink(missing_ok=True)
    return done


def poison_hosts(link: NamespaceLink, poisoned: bool) -> None:
    """Point the namespace's names at the impostor (``poisoned``), or back at the lab."""
    write_hosts_file(link, IMPOSTOR_ADDRESSES if poisoned else SERVICE_ADDRESSES)


def connect_to_impostor(impostor: Impostor) -> list[str]:
    """curl options that send every lab name to the impostor (loopback mode's poisoning)."""
    args = []
    for host, role in SERVICE_HOSTS.items():
        address, port = impostor.ports[role]
        args += ["--connect-to", f"{host}:{_SERVICE_PORT}:{address}:{port}"]
    return args
