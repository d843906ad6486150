"""The lab's record of itself: what one lab directory holds running (``state.json``), and
what ``tofu3 lab status`` reports about it. Plain values, read and written atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from tofu3.atomic import write_atomic
from tofu3.lab.errors import LabError

STATE_SCHEMA = "tofu3.lab-state/v1"


class LabMode(str, Enum):
    """Where the lab's vantages live."""

    LOOPBACK = "loopback"  # own loopback addresses on the host's network; any user
    NETNS = "netns"  # own network namespaces with own /etc/hosts; root only


@dataclass(frozen=True)
class VantageRecord:
    """A started lab vantage, as recorded in ``state.json``."""

    name: str
    address: str  # where its sshd listens
    port: int
    source_ip: str  # the address its curl connects from: how the registry tells vantages apart
    host_key: str
    pid: int
    start_ticks: int | None
    netns: str | None


@dataclass(frozen=True)
class RegistryRecord:
    """The started lab registry, as recorded in ``state.json``."""

    pid: int
    start_ticks: int | None
    ports: Mapping[str, tuple[str, int]]  # role ("registry", "auth", "cdn") -> (address, port)


@dataclass(frozen=True)
class LabState:
    """What one lab directory holds running. ``complete`` is false while ``lab up`` runs."""

    directory: Path
    mode: LabMode
    created: str
    ca_cert: Path
    client_key: Path
    registry: RegistryRecord | None = None
    vantages: tuple[VantageRecord, ...] = ()
    complete: bool = False

    @property
    def inventory_path(self) -> Path:
        """Where ``lab up`` writes the lab's inventory."""
        return self.directory / "inventory.yaml"

    def vantage(self, name: str) -> VantageRecord:
        """The vantage called ``name``."""
        for record in self.vantages:
            if record.name == name:
                return record
        known = ", ".join(record.name for record in self.vantages)
        raise LabError(f"no lab vantage named {name!r} (the lab has: {known})")

    def to_json(self) -> dict[str, Any]:
        """The ``state.json`` document."""
        return {
            "schema": STATE_SCHEMA,
            "directory": str(self.directory),
            "mode": self.mode.value,
            "created": self.created,
            "complete": self.complete,
            "ca_cert": str(self.ca_cert),
            "client_key": str(self.client_key),
            "registry": None
            if self.registry is None
            else {
                "pid": self.registry.pid,
                "start_ticks": self.registry.start_ticks,
                "ports": {role: list(end) for role, end in self.registry.ports.items()},
            },
            "vantages": [
                {
                    "name": v.name,
                    "address": v.address,
                    "port": v.port,
                    "source_ip": v.source_ip,
                    "host_key": v.host_key,
                    "pid": v.pid,
                    "start_ticks": v.start_ticks,
                    "netns": v.netns,
                }
                for v in self.vantages
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> LabState:
        """Read a ``state.json`` document; LabError if it is not one this version wrote."""
        try:
            if data["schema"] != STATE_SCHEMA:
                raise ValueError(f"schema {data['schema']!r}")
            registry = data["registry"]
            return cls(
                directory=Path(data["directory"]),
                mode=LabMode(data["mode"]),
                created=str(data["created"]),
                complete=bool(data["complete"]),
                ca_cert=Path(data["ca_cert"]),
                client_key=Path(data["client_key"]),
                registry=None
                if registry is None
                else RegistryRecord(
                    pid=int(registry["pid"]),
                    start_ticks=_optional_int(registry["start_ticks"]),
                    ports={
                        str(role): (str(end[0]), int(end[1]))
                        for role, end in registry["ports"].items()
                    },
                ),
                vantages=tuple(
                    VantageRecord(
                        name=str(v["name"]),
                        address=str(v["address"]),
                        port=int(v["port"]),
                        source_ip=str(v["source_ip"]),
                        host_key=str(v["host_key"]),
                        pid=int(v["pid"]),
                        start_ticks=_optional_int(v["start_ticks"]),
                        netns=None if v["netns"] is None else str(v["netns"]),
                    )
                    for v in data["vantages"]
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise LabError(f"lab state is not readable ({error})") from error


@dataclass(frozen=True)
class ProcessStatus:
    """One process the lab started, and whether it still runs."""

    kind: str  # "sshd" or "registry"
    name: str
    pid: int
    alive: bool
    endpoints: tuple[str, ...]  # "address:port", with the role for the registry's


@dataclass(frozen=True)
class LabStatus:
    """What ``tofu3 lab status`` reports."""

    directory: Path
    mode: LabMode | None  # None: no lab in this directory
    processes: tuple[ProcessStatus, ...] = ()
    complete: bool = False

    @property
    def up(self) -> bool:
        """A complete lab whose every process runs."""
        return self.complete and bool(self.processes) and all(p.alive for p in self.processes)


def read_state(directory: Path) -> LabState | None:
    path = directory / "state.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LabError(f"cannot read {path}: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LabError(f"{path} is not JSON ({error}); stop its processes and remove it") from error
    return LabState.from_json(data)


def write_state(state: LabState) -> None:
    text = json.dumps(state.to_json(), indent=2) + "\n"
    write_atomic(state.directory / "state.json", text.encode("utf-8"), 0o600)


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
