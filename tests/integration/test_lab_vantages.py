"""The lab's vantages are real sshd daemons that let in only a client pinning their host key,
run curl, live where the lab says (loopback address or network namespace) and are gone,
every process of them, once stopped."""

from __future__ import annotations

import base64
import os
import shlex
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from tests.integration.loopback import stop_lab
from tofu3.inventory import load_inventory
from tofu3.lab import netns
from tofu3.lab.errors import LabError
from tofu3.lab.manager import (
    LabMode,
    LabState,
    lab_down,
    lab_inventory,
    lab_status,
    lab_tamper,
    lab_up,
)
from tofu3.lab.sshd import (
    ClientKey,
    SshdVantage,
    current_user,
    end_process,
    ensure_client_key,
    free_port,
    process_alive,
    start_vantage,
)
from tofu3.remote.ssh import SshConnection

pytestmark = pytest.mark.integration

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

StartVantage = Callable[..., SshdVantage]


@pytest.fixture
def client_key(tmp_path: Path) -> ClientKey:
    """The lab client key, made in this test's directory."""
    return ensure_client_key(tmp_path)


@pytest.fixture
def started_vantages(tmp_path: Path, client_key: ClientKey) -> Iterator[StartVantage]:
    """Start vantages on demand; every one is stopped afterwards, even if the test failed."""
    started: list[SshdVantage] = []

    def start(
        name: str, address: str, port: int | None = None, netns: str | None = None
    ) -> SshdVantage:
        vantage = start_vantage(
            tmp_path / name,
            name,
            address,
            free_port(address) if port is None else port,
            client_key.public_key,
            netns=netns,
        )
        started.append(vantage)
        return vantage

    yield start
    for vantage in started:
        vantage.stop()


def connect_pinned(
    host: str, port: int, host_key: str, client_key: Path, user: str | None = None
) -> paramiko.SSHClient:
    """An SSH client that accepts only ``host_key`` (never adds or trusts on first use)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_type, blob = host_key.split()[:2]
    entry = host if port == 22 else f"[{host}]:{port}"
    client.get_host_keys().add(
        entry, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    )
    client.connect(
        host,
        port=port,
        username=user or current_user(),
        key_filename=str(client_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """Run ``command`` on the vantage; (exit status, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=30)
    out = stdout.read().decode("utf-8", "replace")
    err = stderr.read().decode("utf-8", "replace")
    return stdout.channel.recv_exit_status(), out, err


def test_vantage_runs_curl_for_a_client_pinning_its_host_key(
    started_vantages: StartVantage, client_key: ClientKey
) -> None:
    vantage = started_vantages("ams", "127.0.0.11")
    assert vantage.host_public_key.startswith("ssh-ed25519 AAAA")
    assert process_alive(vantage.pid, vantage.start_ticks)

    client = connect_pinned(
        vantage.address, vantage.port, vantage.host_public_key, client_key.private_key
    )
    try:
        status, out, err = run(client, "curl --version")
    finally:
        client.close()

    assert status == 0, err
    assert out.startswith("curl ")


def test_a_client_pinning_another_host_key_is_refused(
    started_vantages: StartVantage, client_key: ClientKey
) -> None:
    genuine = started_vantages("ams", "127.0.0.11")
    other = started_vantages("sfo", "127.0.0.12")
    assert genuine.host_public_key != other.host_public_key

    # What a path attacker would present: a working sshd, but not the pinned one.
    with pytest.raises(paramiko.BadHostKeyException):
        connect_pinned(genuine.address, genuine.port, other.host_public_key, client_key.private_key)


def test_stopped_vantage_leaves_no_process(started_vantages: StartVantage) -> None:
    vantage = started_vantages("ams", "127.0.0.11")

    assert vantage.stop() is True

    assert not process_alive(vantage.pid, vantage.start_ticks)
    assert not Path(f"/proc/{vantage.pid}").exists()  # not even a zombie
    # Stopping twice is harmless and says there was nothing left to stop.
    assert vantage.stop() is False


def test_a_vantage_that_cannot_listen_is_reported_and_not_left_running(
    started_vantages: StartVantage, tmp_path: Path
) -> None:
    first = started_vantages("ams", "127.0.0.11")

    with pytest.raises(LabError, match="sfo"):
        started_vantages("sfo", "127.0.0.11", first.port)  # the port is taken

    assert sshd_pids_using(tmp_path / "sfo" / "sshd_config") == []


def sshd_pids_using(config: Path) -> list[int]:
    """Pids of running processes whose command line names ``config``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in cmdline and process_alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


# Network namespaces (root; CI runs as root, so these run there).


@pytest.fixture
def probe_network() -> Iterator[tuple[netns.NamespaceLink, ...]]:
    """One lab namespace, removed afterwards whatever happened."""
    links = netns.setup_network(["probe"])
    try:
        yield links
    finally:
        netns.teardown_network(["probe"])


def netns_list() -> str:
    return subprocess.run(
        [netns.ip_command(), "netns", "list"], capture_output=True, text=True, check=True
    ).stdout


@root_only
@pytest.mark.root
def test_namespace_vantage_resolves_lab_names_and_routes_only_to_the_lab(
    probe_network: tuple[netns.NamespaceLink, ...],
    started_vantages: StartVantage,
    client_key: ClientKey,
) -> None:
    (link,) = probe_network
    assert link.address == "198.18.1.2"
    vantage = started_vantages("probe", link.address, 22, netns=link.netns)

    client = connect_pinned(link.address, 22, vantage.host_public_key, client_key.private_key)
    try:
        status, hosts, err = run(client, "getent hosts ghcr.io")
        assert status == 0, err
        route_status, routes, _ = run(client, "ip route show")
        _, _, curl_err = run(client, "curl -sS --max-time 3 https://192.0.2.1/ ; echo rc=$?")
    finally:
        client.close()

    assert hosts.split()[0] == "198.18.0.1"
    assert route_status == 0
    destinations = {line.split()[0] for line in routes.splitlines() if line.strip()}
    assert destinations == {"198.18.0.0/24", "198.18.1.0/30"}  # no default route
    assert "192.0.2.1" in curl_err  # ... so anything else is unreachable


@root_only
@pytest.mark.root
def test_namespace_teardown_leaves_nothing_behind(
    started_vantages: StartVantage,
) -> None:
    (link,) = netns.setup_network(["probe"])
    try:
        vantage = started_vantages("probe", link.address, 22, netns=link.netns)
        assert "tofu3-probe" in netns_list()
        # A namespace with a process in it is not pulled away by a second lab.
        with pytest.raises(LabError, match="in use"):
            netns.setup_network(["probe"])
        vantage.stop()
    finally:
        removed = netns.teardown_network(["probe"])

    assert "netns tofu3-probe" in removed
    assert "tofu3-" not in netns_list()
    assert netns.leftovers() == []
    assert netns.teardown_network(["probe"]) == []  # idempotent


# The whole lab.


@pytest.fixture
def loopback_lab(tmp_path: Path) -> Iterator[LabState]:
    """A loopback lab in this test's directory, stopped afterwards whatever happened."""
    directory = tmp_path / "lab"
    try:
        yield lab_up(directory, mode=LabMode.LOOPBACK)
    finally:
        stop_lab(directory)


def test_lab_up_starts_three_vantages_pinned_in_its_inventory(loopback_lab: LabState) -> None:
    state = loopback_lab
    assert [v.name for v in state.vantages] == ["ams", "sfo", "sgp"]
    assert [v.source_ip for v in state.vantages] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert all(process_alive(v.pid, v.start_ticks) for v in state.vantages)
    assert lab_status(state.directory).up

    registry = state.registry
    assert registry is not None
    inventory = load_inventory(lab_inventory(state.directory))
    assert len(inventory.vantages) == 3
    for entry, record in zip(inventory.vantages, state.vantages, strict=True):
        assert entry.host_key == record.host_key
        assert (entry.host, entry.port) == (record.address, record.port)
        assert entry.curl_args[:4] == (
            "--cacert",
            str(state.ca_cert),
            "--interface",
            record.source_ip,
        )
        assert f"ghcr.io:443:127.0.0.1:{registry.ports['registry'][1]}" in entry.curl_args

    # Starting again while it is up gives back the same lab.
    assert lab_up(state.directory) == state


def test_lab_vantage_reaches_the_lab_registry_under_the_real_name(loopback_lab: LabState) -> None:
    inventory = load_inventory(lab_inventory(loopback_lab.directory))
    vantage = inventory.vantages[0]
    assert vantage.identity_file is not None and vantage.host_key is not None
    client = connect_pinned(
        vantage.host, vantage.port, vantage.host_key, Path(vantage.identity_file)
    )
    try:
        command = shlex.join(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *vantage.curl_args,
             "https://ghcr.io/v2/"]
        )  # fmt: skip
        status, out, err = run(client, command)
    finally:
        client.close()

    assert status == 0, err
    assert out == "401"  # the registry's Bearer challenge, over TLS the lab CA vouches for


def test_tamper_arms_and_disarms_one_vantage_by_source_address(loopback_lab: LabState) -> None:
    tamper_file = loopback_lab.directory / "tamper.json"

    assert lab_tamper("sfo", "blob", loopback_lab.directory) == {"127.0.0.12": "blob"}
    assert lab_tamper("sgp", "tag", loopback_lab.directory) == {
        "127.0.0.12": "blob",
        "127.0.0.13": "tag",
    }
    assert '"127.0.0.12": "blob"' in tamper_file.read_text()

    assert lab_tamper("sfo", None, loopback_lab.directory) == {"127.0.0.13": "tag"}
    with pytest.raises(LabError, match="no lab vantage named"):
        lab_tamper("lhr", "blob", loopback_lab.directory)
    with pytest.raises(LabError, match="unknown tamper kind"):
        lab_tamper("ams", "config", loopback_lab.directory)


def test_lab_down_stops_every_process_it_started(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    try:
        state = lab_up(directory, mode=LabMode.LOOPBACK)
        registry = state.registry
        assert registry is not None
        pids = [(v.pid, v.start_ticks) for v in state.vantages]
        pids.append((registry.pid, registry.start_ticks))

        stopped = lab_down(directory)
    finally:
        stop_lab(directory)

    assert len(stopped) == 4
    assert not any(process_alive(pid, ticks) for pid, ticks in pids)
    assert not (directory / "state.json").exists()
    assert lab_down(directory) == []
    with pytest.raises(LabError, match="no lab is up"):
        lab_inventory(directory)


def test_a_stale_lab_is_cleaned_and_started_again(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    try:
        first = lab_up(directory, mode=LabMode.LOOPBACK)
        # One vantage dies behind the lab's back.
        end_process(first.vantages[1].pid, first.vantages[1].start_ticks)
        assert not lab_status(directory).up

        second = lab_up(directory, mode=LabMode.LOOPBACK)

        assert lab_status(directory).up
        assert not any(process_alive(v.pid, v.start_ticks) for v in first.vantages)
        # Host keys are kept, so pins made against the first lab still hold.
        assert [v.host_key for v in second.vantages] == [v.host_key for v in first.vantages]
    finally:
        stop_lab(directory)


@root_only
@pytest.mark.root
def test_namespace_lab_serves_the_real_names_from_inside_each_namespace(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    try:
        state = lab_up(directory, mode=LabMode.NETNS)
        assert [v.address for v in state.vantages] == ["198.18.1.2", "198.18.2.2", "198.18.3.2"]
        inventory = load_inventory(lab_inventory(directory))
        for vantage in inventory.vantages:
            assert vantage.curl_args == ("--cacert", str(state.ca_cert))
            assert vantage.identity_file is not None and vantage.host_key is not None
            client = connect_pinned(
                vantage.host, vantage.port, vantage.host_key, Path(vantage.identity_file)
            )
            try:
                command = shlex.join(
                    ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                     *vantage.curl_args, "https://ghcr.io/v2/"]
                )  # fmt: skip
                status, out, err = run(client, command)
            finally:
                client.close()
            assert status == 0, err
            assert out == "401 198.18.0.1"
    finally:
        stop_lab(directory)

    assert "tofu3-" not in netns_list()
    assert netns.leftovers() == []


def test_ssh_connections_turn_off_nagle_as_openssh_does(loopback_lab: LabState) -> None:
    # Each command is a few small messages, each waiting for the answer to the one before:
    # with Nagle's algorithm and delayed ACKs, each could wait 40 ms more.
    vantage = load_inventory(lab_inventory(loopback_lab.directory)).vantages[0]
    connection = SshConnection.connect(vantage)
    try:
        transport = connection._client.get_transport()
        assert transport is not None
        sock = transport.sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        session = connection.start_session(vantage.curl_args)
        assert session.open().curl_version
    finally:
        connection.close()
