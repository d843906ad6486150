"""What ``tofu3 inventory check`` and ``tofu3 inventory pin`` learn from the vantages.

check: log in to every vantage (in parallel, host keys checked strictly as for a
verification), run the probe (curl version, hash tool), and ask the vantage's own curl, with
the vantage's own curl_args, for ``https://REGISTRY/v2/``: any HTTP answer means the registry
is reachable from there.

pin: for vantages without a pinned ``host_key``, learn the key each one offers by key
exchange alone (no login, nothing trusted, nothing written), and say whether known_hosts
agrees. Jump hosts on the way are still checked strictly.

Nothing here prints; each vantage's outcome is a value, so one bad vantage never hides what
the others said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import Enum
from typing import TypeVar

from tofu3.errors import ConfigurationError, InvalidReference, Tofu3Error, TransportError
from tofu3.inventory import Inventory, Vantage
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.protocol import PING, ping_request
from tofu3.reference import DOCKER_HUB_DOMAIN, parse_reference
from tofu3.remote.jump import OfferedHostKey, offered_host_key
from tofu3.remote.port import FetchRequest, FirstRequest
from tofu3.remote.ssh import SshConnection
from tofu3.remote.ssh_config import SshConfig, SshTarget, load_ssh_config, resolve_vantage

DEFAULT_REGISTRY = "ghcr.io"
_REACH_SECONDS = 30
_T = TypeVar("_T")


class Problem(str, Enum):
    """Why a vantage is not usable, by what the user must do about it."""

    NONE = "none"
    CONFIGURATION = "configuration"  # fix the inventory, the config or the vantage (exit 2)
    UNREACHABLE = "unreachable"  # the vantage or the registry could not be reached (exit 3)


@dataclass(frozen=True)
class VantageCheck:
    """One vantage, as ``inventory check`` found it."""

    name: str
    route: str  # user@host:port and how it is reached
    host_key_fingerprint: str = ""
    curl_version: str = ""
    hash_tool: str = ""
    system: str = ""
    registry_status: int | None = None  # the HTTP status /v2/ answered with
    problem: Problem = Problem.NONE
    message: str = ""

    @property
    def usable(self) -> bool:
        """Whether a verification could use this vantage."""
        return self.problem is Problem.NONE


@dataclass(frozen=True)
class InventoryCheck:
    """Every vantage's check, in inventory order."""

    registry: str
    vantages: tuple[VantageCheck, ...]
    warnings: tuple[str, ...] = ()  # about the ssh_config


@dataclass(frozen=True)
class PinCandidate:
    """A vantage without a pinned host key, and the key it offered (None if it could not
    be learnt: then ``problem`` and ``message`` say why)."""

    name: str
    route: str
    offered: OfferedHostKey | None = None
    problem: Problem = Problem.NONE
    message: str = ""


def registry_host(text: str) -> str:
    """The host[:port] the registry API is served from, for a name as users write it
    (``docker.io`` becomes ``registry-1.docker.io``). ConfigurationError when it is not one."""
    try:
        reference = parse_reference(f"{text}/tofu3/check")
    except InvalidReference:
        raise ConfigurationError(f"--registry {text!r}: not a registry host[:port]") from None
    legacy = {DOCKER_HUB_DOMAIN, "index.docker.io"}
    if reference.domain != text and text not in legacy:
        raise ConfigurationError(f"--registry {text!r}: not a registry host[:port]")
    return reference.registry_host


def check_inventory(
    inventory: Inventory,
    registry: str = DEFAULT_REGISTRY,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> InventoryCheck:
    """Check every vantage in parallel (see the module docstring). The ssh_config is the one
    every connection uses ($TOFU3_SSH_CONFIG, else ~/.ssh/config)."""
    host = registry_host(registry)
    config = load_ssh_config()
    targets = _targets(inventory.vantages, config)
    results = _parallel(
        inventory.vantages,
        lambda vantage: _check_one(vantage, targets[vantage.name], host, limits),
    )
    return InventoryCheck(registry=host, vantages=tuple(results), warnings=config.warnings)


def collect_host_keys(
    inventory: Inventory,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[PinCandidate], tuple[str, ...]]:
    """The host key offered by every vantage that has no ``host_key``, in inventory order,
    and the ssh_config's warnings."""
    config = load_ssh_config()
    unpinned = [vantage for vantage in inventory.vantages if vantage.host_key is None]
    targets = _targets(unpinned, config)
    candidates = _parallel(
        unpinned, lambda vantage: _offered_one(vantage, targets[vantage.name], limits)
    )
    return candidates, config.warnings


def _targets(
    vantages: Sequence[Vantage], config: SshConfig
) -> dict[str, SshTarget | ConfigurationError]:
    """Each vantage's resolved target, or why it cannot be resolved. Two vantages that turn
    out to be the same machine (two aliases of one address) are not independent."""
    targets: dict[str, SshTarget | ConfigurationError] = {}
    seen: dict[tuple[str, int, str], str] = {}
    for vantage in vantages:
        try:
            target = resolve_vantage(vantage, config)
        except ConfigurationError as exc:
            targets[vantage.name] = exc
            continue
        other = seen.setdefault(target.route_key(), vantage.name)
        if other != vantage.name:
            targets[vantage.name] = ConfigurationError(
                f"vantage {vantage.name!r} reaches the same host as {other!r} "
                f"({target.describe()}): they are not independent"
            )
            continue
        targets[vantage.name] = target
    return targets


def _check_one(
    vantage: Vantage, target: SshTarget | ConfigurationError, registry: str, limits: Limits
) -> VantageCheck:
    if isinstance(target, ConfigurationError):
        return VantageCheck(
            vantage.name, vantage.address, problem=Problem.CONFIGURATION, message=str(target)
        )
    result = VantageCheck(vantage.name, target.describe())
    try:
        connection = SshConnection.connect(vantage, limits, target)
    except Tofu3Error as exc:
        return _failed(result, exc)
    # The same session a verification opens; its first exchange asks the vantage's own curl,
    # with the vantage's own curl_args, for /v2/ (200 or 401 to anyone: no credentials).
    ping = FetchRequest(ping_request(registry), limits.token_bytes, PING)
    status: int | None = None
    error = ""
    try:
        result = replace(result, host_key_fingerprint=connection.host_key_fingerprint)
        session = connection.start_session(vantage.curl_args)
        facts = session.open([FirstRequest(ping)])
        result = replace(
            result, curl_version=facts.curl_version, hash_tool=facts.hash_tool, system=facts.system
        )
        try:
            (response,) = session.fetch([ping], jobs=1)
            status = response.connection.status
        except TransportError as exc:
            error = exc.diagnostics().removeprefix(f"vantage {vantage.name!r}: ")
    except Tofu3Error as exc:
        return _failed(result, exc)
    finally:
        connection.close()
    if status is None:
        return replace(
            result,
            problem=Problem.UNREACHABLE,
            message=f"vantage {vantage.name!r}: registry {registry} not reachable: {error}",
        )
    return replace(result, registry_status=status)


def _offered_one(
    vantage: Vantage, target: SshTarget | ConfigurationError, limits: Limits
) -> PinCandidate:
    if isinstance(target, ConfigurationError):
        return PinCandidate(
            vantage.name, vantage.address, problem=Problem.CONFIGURATION, message=str(target)
        )
    candidate = PinCandidate(vantage.name, target.describe())
    try:
        offered = offered_host_key(target, vantage.name, limits)
    except Tofu3Error as exc:
        return replace(candidate, problem=_problem(exc), message=exc.diagnostics())
    if offered.known_hosts == "differs":
        return replace(
            candidate,
            offered=offered,
            problem=Problem.CONFIGURATION,
            message=(
                f"vantage {vantage.name!r} offered host key {offered.fingerprint}, which does "
                f"not match the key known_hosts has for {target.known_hosts_name}: not pinning "
                "it (someone may be intercepting; if the host was reinstalled, fix known_hosts)"
            ),
        )
    return replace(candidate, offered=offered)


def _failed(result: VantageCheck, exc: Tofu3Error) -> VantageCheck:
    return replace(result, problem=_problem(exc), message=exc.diagnostics())


def _problem(exc: Tofu3Error) -> Problem:
    if isinstance(exc, TransportError):
        return Problem.UNREACHABLE
    return Problem.CONFIGURATION


def _parallel(vantages: Sequence[Vantage], work: Callable[[Vantage], _T]) -> list[_T]:
    if not vantages:
        return []
    with ThreadPoolExecutor(max_workers=len(vantages)) as pool:
        return list(pool.map(work, vantages))
