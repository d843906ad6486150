"""The lab manager behind ``tofu3 lab up|down|status|inventory|tamper``.

A lab is a directory holding everything one lab needs: the CA and server certificate, the
client key, one sub-directory per vantage, and ``state.json``, the record of what was started
(pids with their start times, addresses, ports). ``state.json`` is rewritten after every
process starts, so even a ``lab up`` that was killed half-way leaves a record from which
``lab down`` stops exactly what it started, by pid, and nothing else.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from tofu3.atomic import write_atomic
from tofu3.errors import Tofu3Error
from tofu3.inventory import load_inventory_text
from tofu3.lab.errors import LabError
from tofu3.lab.impostor import Impostor, poison_hosts, read_impostor, start_impostor, stop_impostor
from tofu3.lab.latency import LATENCY_FILE
from tofu3.lab.latency import render as render_latency
from tofu3.lab.netns import (
    SERVICE_ADDRESSES,
    SERVICE_HOSTS,
    NamespaceLink,
    netns_supported,
    plan_network,
    setup_network,
    teardown_network,
)
from tofu3.lab.pki import ensure_pki
from tofu3.lab.registry import RegistryProcess, start_registry
from tofu3.lab.sshd import (
    current_user,
    end_process,
    ensure_client_key,
    free_port,
    process_alive,
    start_vantage,
)
from tofu3.lab.state import (
    LabMode,
    LabState,
    LabStatus,
    ProcessStatus,
    RegistryRecord,
    VantageRecord,
    read_state,
    write_state,
)
from tofu3.lab.tamper import ALL_CLIENTS, TAMPER_FILE, TAMPER_KINDS, read_table

__all__ = [
    "EVERY_VANTAGE",
    "TAMPER_KINDS",
    "VANTAGE_NAMES",
    "LabError",
    "LabMode",
    "LabState",
    "LabStatus",
    "ProcessStatus",
    "RegistryRecord",
    "VantageRecord",
    "lab_dir",
    "lab_down",
    "lab_impostor_down",
    "lab_impostor_up",
    "lab_inventory",
    "lab_poison",
    "lab_status",
    "lab_tamper",
    "lab_up",
    "write_inventory",
]

VANTAGE_NAMES = ("ams", "sfo", "sgp")
LOOPBACK_SERVICE_ADDRESS = "127.0.0.1"
SERVICE_PORT = 443  # in a namespace lab the services sit on the real HTTPS port
VANTAGE_START_ATTEMPTS = 3  # a free port found by probing can be taken before sshd binds it


def lab_dir() -> Path:
    """The lab directory: ``$TOFU3_LAB_DIR``, else ``$XDG_STATE_HOME/tofu3/lab``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state``.
    """
    explicit = os.environ.get("TOFU3_LAB_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative XDG_STATE_HOME.
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "tofu3" / "lab"


def default_mode() -> LabMode:
    """Namespaces when this process may make them (root, working ``ip netns``), else loopback."""
    return LabMode.NETNS if netns_supported() else LabMode.LOOPBACK


def lab_up(directory: Path | None = None, mode: LabMode | None = None) -> LabState:
    """Start the lab in ``directory`` (default :func:`lab_dir`) and return its state.

    A lab already up there is returned as it is. Leftovers of one that is not (some process
    gone) are stopped first. If anything fails, whatever this call started is stopped again.
    """
    directory = (directory or lab_dir()).expanduser().resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(directory):
        existing = read_state(directory)
        if existing is not None:
            if _all_alive(existing) and existing.complete:
                if mode is not None and mode is not existing.mode:
                    raise LabError(
                        f"a {existing.mode.value} lab is already up in {directory}; "
                        "stop it with `tofu3 lab down` first"
                    )
                return existing
            _stop(existing)
        return _start(directory, mode or default_mode())


def lab_down(directory: Path | None = None) -> list[str]:
    """Stop the lab in ``directory``: exactly the processes it started, by pid.

    Returns a line for each thing stopped or removed; an empty list if there was no lab.
    """
    directory = (directory or lab_dir()).expanduser().resolve()
    if not directory.is_dir():
        return []
    with _locked(directory):
        state = read_state(directory)
        return [] if state is None else _stop(state)


def lab_status(directory: Path | None = None) -> LabStatus:
    """Each process of the lab in ``directory`` with whether it runs."""
    directory = (directory or lab_dir()).expanduser().resolve()
    state = read_state(directory)
    if state is None:
        return LabStatus(directory=directory, mode=None)
    processes = [
        ProcessStatus(
            kind="sshd",
            name=v.name,
            pid=v.pid,
            alive=process_alive(v.pid, v.start_ticks),
            endpoints=(f"{v.address}:{v.port}",),
        )
        for v in state.vantages
    ]
    if state.registry is not None:
        registry = state.registry
        processes.append(
            ProcessStatus(
                kind="registry",
                name="registry",
                pid=registry.pid,
                alive=process_alive(registry.pid, registry.start_ticks),
                endpoints=tuple(f"{role} {a}:{p}" for role, (a, p) in registry.ports.items()),
            )
        )
    return LabStatus(directory, state.mode, tuple(processes), state.complete)


def lab_inventory(directory: Path | None = None) -> Path:
    """The inventory of the lab in ``directory``; LabError unless that lab is up."""
    state = _require_up(directory)
    if not state.inventory_path.is_file():
        raise LabError(f"{state.inventory_path} is missing: run `tofu3 lab down` and `up` again")
    return state.inventory_path


EVERY_VANTAGE = "all"
"""The vantage name that arms a tamper switch for every client of the lab registry."""


def lab_tamper(vantage: str, kind: str | None, directory: Path | None = None) -> dict[str, str]:
    """Make the lab registry serve ``vantage`` tampered content of ``kind``, or honest (None).

    ``kind`` is one of TAMPER_KINDS (see :mod:`tofu3.lab.tamper`). ``vantage`` "all" (or "*")
    arms ``kind`` for every client and replaces the whole table, so everyone is served the
    same lie; "all" with None makes everyone honest again. A vantage's own switch, set
    afterwards, wins over the all-clients one. Returns the whole tamper table: source ip (or
    "*") -> kind.
    """
    if kind is not None and kind not in TAMPER_KINDS:
        raise LabError(f"unknown tamper kind {kind!r} (expected one of: {', '.join(TAMPER_KINDS)})")
    state = _require_up(directory)
    everyone = vantage in (EVERY_VANTAGE, ALL_CLIENTS)
    source_ip = None if everyone else state.vantage(vantage).source_ip
    with _locked(state.directory):
        path = state.directory / TAMPER_FILE
        table = _read_tamper(path)
        if source_ip is None:
            table = {} if kind is None else {ALL_CLIENTS: kind}
        elif kind is None:
            table.pop(source_ip, None)
        else:
            table[source_ip] = kind
        # The registry reads this file on every request: it must never see half of it.
        write_atomic(path, (json.dumps(table, indent=2, sort_keys=True) + "\n").encode(), 0o644)
    return table


def lab_latency(delay_ms: int, directory: Path | None = None) -> int:
    """Make the lab registry wait ``delay_ms`` before every response it sends (registry, token
    service, CDN), or not at all (0). Returns the delay now in force."""
    state = _require_up(directory)
    with _locked(state.directory):
        path = state.directory / LATENCY_FILE
        if delay_ms == 0:
            path.unlink(missing_ok=True)
        else:
            # Read on every request: the registry must never see half of it.
            write_atomic(path, render_latency(delay_ms), 0o644)
    return delay_ms


def lab_impostor_up(directory: Path | None = None) -> Impostor:
    """Start an impostor registry beside the lab in ``directory`` (see
    :mod:`tofu3.lab.impostor`); ``lab down`` stops it too."""
    state = _require_up(directory)
    with _locked(state.directory):
        return start_impostor(state.directory, netns=state.mode is LabMode.NETNS)


def lab_impostor_down(directory: Path | None = None) -> list[str]:
    """Stop the impostor registry of the lab in ``directory``, if one runs."""
    directory = (directory or lab_dir()).expanduser().resolve()
    if not directory.is_dir():
        return []
    with _locked(directory):
        return stop_impostor(directory)


def lab_poison(vantage: str, poisoned: bool, directory: Path | None = None) -> None:
    """Make ``vantage``'s resolver send the lab's names to the impostor (``poisoned``), or
    restore its honest /etc/hosts. Network-namespace labs only: in a loopback lab the
    vantages share the host's resolver, so poison one through its inventory instead
    (:func:`tofu3.lab.impostor.connect_to_impostor`)."""
    state = _require_up(directory)
    if state.mode is not LabMode.NETNS:
        raise LabError("only a netns lab gives each vantage a resolver of its own to poison")
    record = state.vantage(vantage)
    if poisoned and read_impostor(state.directory) is None:
        raise LabError("start the impostor registry first (lab_impostor_up)")
    link = plan_network(VANTAGE_NAMES)[VANTAGE_NAMES.index(record.name)]
    with _locked(state.directory):
        poison_hosts(link, poisoned)


def write_inventory(
    state: LabState,
    path: Path,
    curl_args_extra: Mapping[str, Sequence[str]] | None = None,
    connect_overrides: Mapping[str, tuple[str, int]] | None = None,
) -> Path:
    """Write an inventory for the lab's vantages to ``path``.

    ``curl_args_extra`` maps a vantage name to curl options appended to that vantage's own.
    ``connect_overrides`` maps "host" (port 443) or "host:port" to the (address, port) curl
    should connect to instead, on top of (and replacing) the lab's own mapping: how a test
    points the same vantages at another registry. The text is checked with the inventory
    loader before it is written, so a file tofu3 would refuse is never written.
    """
    extra = dict(curl_args_extra or {})
    unknown = sorted(set(extra) - {v.name for v in state.vantages})
    if unknown:
        raise LabError(f"curl_args_extra names no lab vantage: {', '.join(unknown)}")
    connect = _lab_connect_to(state)
    for host, target in (connect_overrides or {}).items():
        connect[host if ":" in host else f"{host}:{SERVICE_PORT}"] = target

    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    lines = [
        "# Generated by `tofu3 lab up`; rewritten by every `lab up`, so edits do not last.",
        f"# Lab directory: {state.directory} ({state.mode.value} mode)",
        "version: 1",
        "defaults:",
        f"  user: {q(current_user())}",
        f"  identity_file: {q(str(state.client_key))}",
        "vantages:",
    ]
    for v in state.vantages:
        args = ["--cacert", str(state.ca_cert)]
        if state.mode is LabMode.LOOPBACK:
            # The registry tells vantages apart by source address, so each binds its own.
            args += ["--interface", v.source_ip]
        # A vantage's own options come first: curl uses the first --connect-to that matches,
        # so this is how a test sends one vantage elsewhere.
        args += list(extra.get(v.name, ()))
        for host, (address, port) in connect.items():
            args += ["--connect-to", f"{host}:{address}:{port}"]
        where = f"netns {v.netns}" if v.netns else state.mode.value
        lines += [
            f"  - name: {q(v.name)}",
            f"    host: {q(v.address)}",
            f"    port: {v.port}",
            f"    host_key: {q(v.host_key)}",
            f"    curl_args: [{', '.join(q(a) for a in args)}]",
            f"    note: {q(f'lab vantage ({where})')}",
        ]
    text = "\n".join(lines) + "\n"
    try:
        load_inventory_text(text, source=str(path))
    except Tofu3Error as error:
        raise LabError(f"the lab inventory would not load: {error.diagnostics()}") from error
    write_atomic(path, text.encode("utf-8"), 0o644)
    return path


# Internals.


def _start(directory: Path, mode: LabMode) -> LabState:
    if mode is LabMode.NETNS and not netns_supported():
        raise LabError("the netns lab needs root and a working `ip netns`; use --mode loopback")
    # A new lab starts honest and fast, whatever an earlier one was told.
    (directory / TAMPER_FILE).unlink(missing_ok=True)
    (directory / LATENCY_FILE).unlink(missing_ok=True)
    client = ensure_client_key(directory)
    with contextlib.ExitStack() as undo:
        try:
            if mode is LabMode.NETNS:
                links = setup_network(VANTAGE_NAMES)
                undo.callback(_remove_network_quietly)
                pki = ensure_pki(directory, extra_ips=tuple(SERVICE_ADDRESSES.values()))
                services = {role: (a, SERVICE_PORT) for role, a in SERVICE_ADDRESSES.items()}
            else:
                links = ()
                pki = ensure_pki(directory)
                # Port 0: the registry binds free ports itself and reports them.
                services = {role: (LOOPBACK_SERVICE_ADDRESS, 0) for role in SERVICE_ADDRESSES}
            state = LabState(
                directory=directory,
                mode=mode,
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                ca_cert=pki.ca_cert,
                client_key=client.private_key,
            )
            write_state(state)
            undo.callback(_forget_state, directory)

            registry = _start_registry(directory, services)
            undo.callback(_stop_registry, registry.pid, registry.start_ticks)
            state = replace(
                state,
                registry=RegistryRecord(
                    pid=registry.pid,
                    start_ticks=registry.start_ticks,
                    ports=dict(registry.ports),
                ),
            )
            write_state(state)

            for index, name in enumerate(VANTAGE_NAMES):
                record = _start_one_vantage(
                    directory, name, index, links[index] if links else None, client.public_key
                )
                undo.callback(end_process, record.pid, record.start_ticks)
                state = replace(state, vantages=(*state.vantages, record))
                write_state(state)

            state = replace(state, complete=True)
            write_inventory(state, state.inventory_path)
            write_state(state)
        except LabError:
            raise
        except Tofu3Error as error:
            raise LabError(f"the lab did not start: {error.diagnostics()}") from error
        except Exception as error:
            # The lab is an edge: whatever broke, what was started is stopped (the ExitStack
            # unwinds) and the user gets one lab error rather than a traceback.
            raise LabError(f"the lab did not start: {type(error).__name__}: {error}") from error
        undo.pop_all()
    return state


def _start_one_vantage(
    directory: Path, name: str, index: int, link: NamespaceLink | None, client_public_key: str
) -> VantageRecord:
    vantage_dir = directory / "vantages" / name
    if link is not None:
        vantage = start_vantage(
            vantage_dir, name, link.address, 22, client_public_key, netns=link.netns
        )
    else:
        address = f"127.0.0.{11 + index}"
        for attempt in range(VANTAGE_START_ATTEMPTS):
            try:
                vantage = start_vantage(
                    vantage_dir, name, address, free_port(address), client_public_key
                )
                break
            except LabError:
                if attempt == VANTAGE_START_ATTEMPTS - 1:
                    raise
    return VantageRecord(
        name=name,
        address=vantage.address,
        port=vantage.port,
        source_ip=vantage.address,
        host_key=vantage.host_public_key,
        pid=vantage.pid,
        start_ticks=vantage.start_ticks,
        netns=vantage.netns,
    )


def _start_registry(directory: Path, services: Mapping[str, tuple[str, int]]) -> RegistryProcess:
    registry = start_registry(
        directory,
        registry=services["registry"],
        auth=services["auth"],
        cdn=services["cdn"],
    )
    _REGISTRIES[registry.pid] = registry
    return registry


def _stop_registry(pid: int, start_ticks: int | None) -> bool:
    # A registry this process started is stopped through its own handle, which also reaps it.
    registry = _REGISTRIES.pop(pid, None)
    if registry is not None and process_alive(pid, start_ticks):
        registry.stop()
        return True
    return end_process(pid, start_ticks)


# Registry handles started by this process, kept so they are stopped (and reaped) through
# their own stop() when this process also stops the lab.
_REGISTRIES: dict[int, RegistryProcess] = {}


def _stop(state: LabState) -> list[str]:
    """Stop what ``state`` records, vantages first; then forget the lab."""
    stopped: list[str] = []
    problems: list[str] = []
    try:
        stopped += stop_impostor(state.directory)
    except LabError as error:
        problems.append(str(error))
    for v in state.vantages:
        try:
            if end_process(v.pid, v.start_ticks):
                stopped.append(f"sshd {v.name} (pid {v.pid})")
        except LabError as error:
            problems.append(str(error))
    if state.registry is not None:
        try:
            if _stop_registry(state.registry.pid, state.registry.start_ticks):
                stopped.append(f"registry (pid {state.registry.pid})")
        except LabError as error:
            problems.append(str(error))
    if problems:
        # Keep the record: the next `lab down` must still know these pids.
        raise LabError("the lab did not stop cleanly: " + "; ".join(problems))
    if state.mode is LabMode.NETNS:
        stopped += teardown_network(VANTAGE_NAMES)
    _forget_state(state.directory)
    return stopped


def _remove_network_quietly() -> None:
    # Only on the way out of a failed start: the error that stopped it is the one to report.
    with contextlib.suppress(LabError):
        teardown_network(VANTAGE_NAMES)


def _forget_state(directory: Path) -> None:
    for name in ("state.json", "inventory.yaml", TAMPER_FILE, LATENCY_FILE):
        (directory / name).unlink(missing_ok=True)


def _all_alive(state: LabState) -> bool:
    pids = [(v.pid, v.start_ticks) for v in state.vantages]
    if state.registry is not None:
        pids.append((state.registry.pid, state.registry.start_ticks))
    return bool(pids) and all(process_alive(pid, ticks) for pid, ticks in pids)


def _require_up(directory: Path | None) -> LabState:
    directory = (directory or lab_dir()).expanduser().resolve()
    state = read_state(directory)
    if state is None or not state.complete:
        raise LabError(f"no lab is up in {directory}: run `tofu3 lab up`")
    if not _all_alive(state):
        raise LabError(
            f"the lab in {directory} is not running any more (a process has exited): "
            "run `tofu3 lab down` and `tofu3 lab up`"
        )
    return state


def _read_tamper(path: Path) -> dict[str, str]:
    try:
        return read_table(path)
    except (OSError, ValueError) as error:
        raise LabError(f"cannot read {path}: {error}") from error


def _lab_connect_to(state: LabState) -> dict[str, tuple[str, int]]:
    """curl --connect-to entries that send the real host names to the lab registry."""
    if state.mode is LabMode.NETNS or state.registry is None:
        return {}  # names resolve through the namespace's own /etc/hosts to port 443
    ports = state.registry.ports
    return {f"{host}:{SERVICE_PORT}": ports[role] for host, role in SERVICE_HOSTS.items()}


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the lab directory's lock: one ``lab up``/``down``/``tamper`` at a time."""
    with (directory / "lab.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
