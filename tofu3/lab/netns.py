"""The lab in network namespaces (root only): each vantage on its own little network.

In loopback mode the vantages share the host's network and tell themselves apart only by the
source address curl binds. Here each vantage is a network namespace with one veth link to the
host, its own address, its own ``/etc/hosts`` (``/etc/netns/NAME/hosts``, which ``ip netns
exec`` mounts over ``/etc/hosts``) and a route to the lab's service addresses and nowhere else.
The names users type (``ghcr.io`` …) resolve, as on a real machine, through that hosts file.

Layout, all inside 198.18.0.0/16 (the benchmarking range, RFC 2544, never routed)::

    host: t3lab0          198.18.0.1 registry, 198.18.0.2 auth, 198.18.0.3 CDN  (:443)
    host: veth t3h<i>     198.18.<i>.1/30   <->   namespace tofu3-<name>: t3n<i> 198.18.<i>.2/30
    namespace route:      198.18.0.0/24 via 198.18.<i>.1 (no default route)

Every object is named with a lab prefix, so leftovers of an earlier lab can be found and, if
nothing runs in them any more, removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tofu3.lab.errors import LabError

NETNS_PREFIX = "tofu3-"
SERVICE_INTERFACE = "t3lab0"  # holds the service addresses: a dummy, or an empty bridge
HOST_INTERFACE_PREFIX = "t3h"
NAMESPACE_INTERFACE_PREFIX = "t3n"
NETNS_ETC = Path("/etc/netns")

SERVICE_NETWORK = "198.18.0.0/24"
SERVICE_ADDRESSES: dict[str, str] = {
    "registry": "198.18.0.1",
    "auth": "198.18.0.2",
    "cdn": "198.18.0.3",
}
"""The lab registry's roles and the host address each listens on (port 443)."""

SERVICE_HOSTS: dict[str, str] = {
    "ghcr.io": "registry",
    "registry-1.docker.io": "registry",
    "auth.docker.io": "auth",
    "pkg-containers.githubusercontent.com": "cdn",
    "production.cloudflare.docker.com": "cdn",
}
"""The real host names the lab stands in for, and which lab role answers for each."""

MAX_VANTAGES = 200  # 198.18.<i>.0/30 for i in 1..200 stays clear of the service /24

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_HOST_INTERFACE = re.compile(re.escape(HOST_INTERFACE_PREFIX) + r"[0-9]+\Z")


@dataclass(frozen=True)
class NamespaceLink:
    """One vantage's namespace and its link to the host."""

    vantage: str
    index: int  # 1-based; picks the /30 198.18.<index>.0
    netns: str
    host_interface: str
    namespace_interface: str
    host_address: str  # the host's end of the link; the namespace's gateway to the services
    address: str  # the namespace's own address: where its sshd listens, curl's source address

    @property
    def hosts_file(self) -> Path:
        """The file ``ip netns exec`` mounts over ``/etc/hosts`` inside the namespace."""
        return NETNS_ETC / self.netns / "hosts"


def ip_command() -> str:
    """The ``ip`` program, found even when sbin directories are missing from PATH."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/bin:/bin"
    found = shutil.which("ip", path=path)
    if found is None:
        raise LabError("the ip command (iproute2) is needed for the network-namespace lab")
    return found


def netns_name(vantage: str) -> str:
    """The network namespace a vantage runs in."""
    return NETNS_PREFIX + vantage


def exec_prefix(netns: str) -> list[str]:
    """The command prefix that runs a program inside ``netns`` with its /etc/netns files.

    ``ip netns exec`` replaces itself with the program (it does not fork), so the pid of the
    started process is the program's own pid.
    """
    return [ip_command(), "netns", "exec", netns]


def netns_supported() -> bool:
    """Whether this process can run the namespace lab: root, and ``ip netns`` works."""
    if os.geteuid() != 0:
        return False
    try:
        result = subprocess.run(
            [ip_command(), "netns", "list"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (LabError, OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def plan_network(vantages: Sequence[str]) -> tuple[NamespaceLink, ...]:
    """The namespace, interfaces and addresses for each vantage, in order (pure)."""
    if len(vantages) > MAX_VANTAGES:
        raise LabError(f"the namespace lab has room for {MAX_VANTAGES} vantages")
    if len(set(vantages)) != len(vantages):
        raise LabError("vantage names must be unique")
    links = []
    for index, vantage in enumerate(vantages, start=1):
        if not _NAME.match(vantage) or len(netns_name(vantage)) > 64:
            raise LabError(f"not a usable vantage name for a namespace: {vantage!r}")
        links.append(
            NamespaceLink(
                vantage=vantage,
                index=index,
                netns=netns_name(vantage),
                host_interface=f"{HOST_INTERFACE_PREFIX}{index}",
                namespace_interface=f"{NAMESPACE_INTERFACE_PREFIX}{index}",
                host_address=f"198.18.{index}.1",
                address=f"198.18.{index}.2",
            )
        )
    return tuple(links)


def hosts_file_text(link: NamespaceLink, addresses: Mapping[str, str] = SERVICE_ADDRESSES) -> str:
    """The /etc/hosts a vantage's namespace sees: localhost and the lab's stand-in names, each
    at the address of the role that answers for it (``addresses``: role -> address)."""
    lines = [
        f"# Written by `tofu3 lab up` for network namespace {link.netns}.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost",
    ]
    for role, address in addresses.items():
        names = [host for host, host_role in SERVICE_HOSTS.items() if host_role == role]
        lines.append(f"{address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def setup_network(vantages: Sequence[str]) -> tuple[NamespaceLink, ...]:
    """Create the lab network for ``vantages`` and return its links.

    Leftovers of an earlier lab are removed first if nothing runs in them; if something does,
    this refuses rather than pull the network from under a lab that is still up. On any
    failure everything created so far is removed again.
    """
    if os.geteuid() != 0:
        raise LabError("the network-namespace lab needs root; use the loopback lab instead")
    links = plan_network(vantages)
    busy = namespaces_in_use()
    if busy:
        described = "; ".join(f"{ns} (pids {', '.join(map(str, pids))})" for ns, pids in busy)
        raise LabError(
            "network namespaces of another tofu3 lab are still in use: "
            f"{described}. Stop that lab with `tofu3 lab down` first."
        )
    teardown_network()
    try:
        _add_service_interface()
        for address in SERVICE_ADDRESSES.values():
            _ip("addr", "add", f"{address}/32", "dev", SERVICE_INTERFACE)
        _ip("link", "set", SERVICE_INTERFACE, "up")
        for link in links:
            _add_namespace(link)
    except BaseException as error:
        # Undo what was made; the error that stopped the set-up is the one worth reporting.
        with contextlib.suppress(LabError):
            teardown_network([link.vantage for link in links])
        if isinstance(error, OSError):
            raise LabError(f"cannot set up the lab network: {error}") from error
        raise
    return links


def write_hosts_file(link: NamespaceLink, addresses: Mapping[str, str] = SERVICE_ADDRESSES) -> None:
    """(Re)write the namespace's /etc/hosts with ``addresses`` (role -> address).

    In place, not by rename: every process started with ``ip netns exec`` (the vantage's
    sshd, and so every session it starts) has this file's inode bind-mounted over its
    /etc/hosts, and would never see a new inode. The text is small and goes in one write.
    """
    data = hosts_file_text(link, addresses).encode()
    fd = os.open(link.hosts_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.chmod(link.hosts_file, 0o644)


def add_service_addresses(addresses: Sequence[str]) -> None:
    """Put more addresses on the service interface (another registry's listeners)."""
    for address in addresses:
        _ip("addr", "replace", f"{address}/32", "dev", SERVICE_INTERFACE)


def remove_service_addresses(addresses: Sequence[str]) -> list[str]:
    """Take addresses off the service interface again; those already gone are fine."""
    removed = []
    for address in addresses:
        if _ip_ok("addr", "del", f"{address}/32", "dev", SERVICE_INTERFACE):
            removed.append(f"address {address}")
    return removed


def _add_service_interface() -> None:
    # A dummy interface is the natural home for local-only addresses, but some kernels
    # (minimal VM kernels, as on CI machines) are built without it; an empty bridge holds
    # local addresses just as well.
    if _ip_ok("link", "add", SERVICE_INTERFACE, "type", "dummy"):
        return
    _ip("link", "add", SERVICE_INTERFACE, "type", "bridge")


def _add_namespace(link: NamespaceLink) -> None:
    # The hosts file must exist before anything is started with `ip netns exec`.
    link.hosts_file.parent.mkdir(parents=True, exist_ok=True)
    write_hosts_file(link)
    _ip("netns", "add", link.netns)
    _ip(
        "link", "add", link.host_interface, "type", "veth",
        "peer", "name", link.namespace_interface, "netns", link.netns,
    )  # fmt: skip
    _ip("addr", "add", f"{link.host_address}/30", "dev", link.host_interface)
    _ip("link", "set", link.host_interface, "up")
    inside = ("-n", link.netns)
    _ip(*inside, "link", "set", "lo", "up")
    _ip(*inside, "addr", "add", f"{link.address}/30", "dev", link.namespace_interface)
    _ip(*inside, "link", "set", link.namespace_interface, "up")
    # The only way out of the namespace: to the lab's services. No default route.
    _ip(*inside, "route", "add", SERVICE_NETWORK, "via", link.host_address)


def teardown_network(vantages: Sequence[str] | None = None) -> list[str]:
    """Remove the lab network and return what was removed; removing nothing is fine.

    With ``vantages``, remove those vantages' namespaces and links; without, every lab-named
    object found (leftovers of a lab whose state is lost). The service interface goes either
    way. Processes still inside a namespace are not touched: stop them first, by pid.
    """
    if os.geteuid() != 0:
        return []
    removed: list[str] = []
    failed: list[str] = []
    existing_links = set(_link_names())
    existing_netns = set(_netns_names())
    if vantages is None:
        host_interfaces = sorted(n for n in existing_links if _HOST_INTERFACE.match(n))
        namespaces = sorted(n for n in existing_netns if n.startswith(NETNS_PREFIX))
        etc_dirs = sorted(p.name for p in _listdir(NETNS_ETC) if p.name.startswith(NETNS_PREFIX))
    else:
        planned = plan_network(vantages)
        host_interfaces = [link.host_interface for link in planned]
        namespaces = [link.netns for link in planned]
        etc_dirs = namespaces
    # Deleting one end of a veth pair deletes the other, inside the namespace.
    steps = [(f"link {n}", ("link", "del", n)) for n in host_interfaces if n in existing_links]
    steps += [(f"netns {n}", ("netns", "del", n)) for n in namespaces if n in existing_netns]
    if SERVICE_INTERFACE in existing_links:
        steps.append((f"link {SERVICE_INTERFACE}", ("link", "del", SERVICE_INTERFACE)))
    for what, command in steps:
        result = _run_ip(*command)
        if result.returncode == 0:
            removed.append(what)
        else:
            failed.append(f"{what}: {result.stderr.strip()}")
    for name in etc_dirs:
        directory = NETNS_ETC / name
        if directory.is_dir():
            try:
                shutil.rmtree(directory)
                removed.append(f"directory {directory}")
            except OSError as error:
                failed.append(f"directory {directory}: {error}")
    with contextlib.suppress(OSError):
        NETNS_ETC.rmdir()  # only when empty; a directory of nothing serves no one
    if failed:
        raise LabError("could not remove the lab network: " + "; ".join(failed))
    return removed


def leftovers() -> list[str]:
    """Lab-named network objects that exist now."""
    if os.geteuid() != 0:
        return []
    found = [f"netns {n}" for n in _netns_names() if n.startswith(NETNS_PREFIX)]
    found += [
        f"link {n}" for n in _link_names() if _HOST_INTERFACE.match(n) or n == SERVICE_INTERFACE
    ]
    found += [f"directory {p}" for p in _listdir(NETNS_ETC) if p.name.startswith(NETNS_PREFIX)]
    return found


def namespaces_in_use() -> list[tuple[str, list[int]]]:
    """Lab namespaces that still have processes in them, with those pids."""
    busy = []
    for namespace in _netns_names():
        if not namespace.startswith(NETNS_PREFIX):
            continue
        result = _run_ip("netns", "pids", namespace)
        pids = [int(word) for word in result.stdout.split() if word.isdigit()]
        if pids:
            busy.append((namespace, pids))
    return busy


def _listdir(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _run_ip(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [ip_command(), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"ip {' '.join(args)}: {error}") from error


def _ip(*args: str) -> None:
    result = _run_ip(*args)
    if result.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _ip_ok(*args: str) -> bool:
    return _run_ip(*args).returncode == 0


def _link_names() -> list[str]:
    return [str(entry.get("ifname", "")) for entry in _json_list("link", "show")]


def _netns_names() -> list[str]:
    return [str(entry.get("name", "")) for entry in _json_list("netns", "list")]


def _json_list(*args: str) -> list[dict[str, object]]:
    result = _run_ip("-j", *args)
    if result.returncode != 0:
        raise LabError(f"ip -j {' '.join(args)} failed: {result.stderr.strip()}")
    if not result.stdout.strip():
        return []  # `ip -j netns list` prints nothing at all when there are none
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise LabError(f"ip -j {' '.join(args)} printed something unexpected") from error
    if not isinstance(parsed, list):
        raise LabError(f"ip -j {' '.join(args)} printed something unexpected")
    return [entry for entry in parsed if isinstance(entry, dict)]
