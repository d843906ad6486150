"""Where a vantage really is: its inventory ``host`` resolved through ~/.ssh/config, as ssh would.

A vantage's ``host`` may be a Host alias. This module turns a Vantage and the user's ssh_config
into an SshTarget: the address, port and user to connect to, the identity files to offer, the
name its host key is looked up under in known_hosts, and the route (direct, a ProxyCommand, or
a chain of ProxyJump hosts, each resolved through the config in turn). It reads files (the
config and what it includes) but opens no connection.

Parsing is paramiko.SSHConfig's: Host patterns and negations, Match host/originalhost/user/
localuser/exec/canonical/final/all, %h %p %r tokens, first-obtained-value-wins. Around it:

- Include is not understood by paramiko; it is inlined here before paramiko reads the text.
- A Match criterion paramiko does not know (localnetwork, tagged, ...) would count as
  matching there; here such a block never matches, and a warning says so.
- Inventory values override ssh_config values, as ssh's command-line options do: they are put
  first in the text, so that %p and %r in a ProxyCommand see them too.
- The known_hosts name is HostKeyAlias, else [HostName]:Port, never the alias: an alias cannot
  borrow another host's key.

The config file is $TOFU3_SSH_CONFIG when set (tests and CI point it elsewhere; /dev/null turns
it off), else ~/.ssh/config; a missing ~/.ssh/config is an empty one.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from tofu3.errors import ConfigurationError
from tofu3.inventory import Vantage
from tofu3.remote.ssh_config_text import prepare_config_text, read_config_file

SSH_CONFIG_ENV = "TOFU3_SSH_CONFIG"
MAX_JUMPS = 10  # ProxyJump chains are short; a longer one is almost surely a loop
# ProxyJump entries: [user@]host[:port] or ssh://[user@]host[:port]; IPv6 in brackets.
_JUMP_RE = re.compile(
    r"^(?:ssh://)?(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})@)?"
    r"(?P<host>\[[0-9A-Fa-f:.%A-Za-z]+\]|[A-Za-z0-9_.%-]+)(?::(?P<port>[0-9]{1,5}))?/?$"
)


@dataclass(frozen=True)
class SshTarget:
    """One SSH server to log in to, and how to reach it.

    Exactly one route applies: ``proxy_command`` (a local command whose stdin and stdout are
    the connection), ``jump`` (a direct-tcpip channel through that host), or neither (TCP to
    ``hostname:port``).
    """

    alias: str  # as written in the inventory or in a ProxyJump list
    hostname: str
    port: int
    user: str | None
    identity_files: tuple[str, ...] = ()
    host_key_alias: str | None = None
    known_hosts_files: tuple[Path, ...] = ()
    proxy_command: str | None = None
    jump: SshTarget | None = None

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH looks the host key up under: HostKeyAlias verbatim, else the
        HostName, as ``[HostName]:Port`` when the port is not 22."""
        if self.host_key_alias:
            return self.host_key_alias
        host = self.hostname.lower()
        return host if self.port == 22 else f"[{host}]:{self.port}"

    def describe(self) -> str:
        """``user@host:port`` and its route, for people."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        text = f"{user}{host}:{self.port}"
        if self.proxy_command is not None:
            text += " via ProxyCommand"
        elif self.jump is not None:
            text += f" via {self.jump.alias}"
            if self.jump.jump is not None or self.jump.proxy_command is not None:
                text += f" ({self.jump.describe()})"
        return text

    def route_key(self) -> tuple[str, int, str]:
        """What tells two targets apart as machines: address, port and the path to them."""
        via = self.jump.describe() if self.jump else (self.proxy_command or "")
        return (self.hostname.lower(), self.port, via)


@dataclass(frozen=True)
class SshConfig:
    """An ssh_config, its Include lines inlined, ready for lookups."""

    text: str
    source: str
    home: Path
    warnings: tuple[str, ...] = ()

    def lookup(self, host: str, overrides: Mapping[str, str] | None = None) -> dict[str, object]:
        """The options for ``host`` (lower-case keys), with ``overrides`` (ssh_config keyword
        -> value) taking precedence over the file, as ssh's command-line options do."""
        first = "".join(f"{key} {value}\n" for key, value in (overrides or {}).items())
        try:
            options = paramiko.SSHConfig.from_text(first + self.text).lookup(host)
        except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
            raise ConfigurationError(f"{self.source}: {exc}") from None
        except paramiko.ssh_exception.CouldNotCanonicalize as exc:
            raise ConfigurationError(
                f"{self.source}: cannot canonicalize host name {exc}"
            ) from None
        except ImportError as exc:
            # Match exec needs the optional 'invoke' package.
            raise ConfigurationError(f"{self.source}: Match exec cannot run: {exc}") from None
        return dict(options)


def ssh_config_path(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for explicitly ($TOFU3_SSH_CONFIG)."""
    env = os.environ if environ is None else environ
    explicit = env.get(SSH_CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser(), True
    return _home(env) / ".ssh" / "config", False


def load_ssh_config(environ: Mapping[str, str] | None = None) -> SshConfig:
    """Read the ssh_config tofu3 uses ($TOFU3_SSH_CONFIG, else ~/.ssh/config)."""
    env = os.environ if environ is None else environ
    path, explicit = ssh_config_path(env)
    home = _home(env)
    if not explicit and not path.exists():
        return SshConfig(text="", source=str(path), home=home)
    text, warnings = read_config_file(path, home)
    return _checked(SshConfig(text=text, source=str(path), home=home, warnings=warnings))


def parse_ssh_config_text(text: str, home: Path, source: str = "<ssh_config>") -> SshConfig:
    """An SshConfig from text (Include lines resolved against ``home``/.ssh)."""
    prepared, warnings = prepare_config_text(text, home, source)
    return _checked(SshConfig(text=prepared, source=source, home=home, warnings=warnings))


def _checked(config: SshConfig) -> SshConfig:
    try:
        paramiko.SSHConfig.from_text(config.text)  # a syntax error shows now, naming the file
    except paramiko.ssh_exception.ConfigParseError as exc:
        raise ConfigurationError(f"{config.source}: {exc}") from None
    return config


def resolve_vantage(vantage: Vantage, config: SshConfig) -> SshTarget:
    """The target for an inventory vantage: its ``host`` looked up in ``config``, with the
    inventory's ``port``, ``user`` and ``identity_file``, when set, winning over the config's.
    """
    overrides: dict[str, str] = {}
    if vantage.port_given:
        overrides["Port"] = str(vantage.port)
    if vantage.user is not None:
        overrides["User"] = vantage.user
    identity = (str(Path(vantage.identity_file).expanduser()),) if vantage.identity_file else None
    where = f"vantage {vantage.name!r}"
    return _resolve(vantage.host, overrides, config, where=where, identity=identity, depth=0)


def parse_jump_list(value: str, where: str) -> list[tuple[str, str | None, int | None]]:
    """ProxyJump's comma-separated ``[user@]host[:port]`` entries as (host, user, port)."""
    hops: list[tuple[str, str | None, int | None]] = []
    for entry in value.split(","):
        match = _JUMP_RE.match(entry.strip())
        port = int(match["port"]) if match and match["port"] else None
        if match is None or (port is not None and not 0 < port < 65536):
            raise ConfigurationError(
                f"{where}: ProxyJump entry {entry.strip()[:80]!r} is not [user@]host[:port]"
            )
        hops.append((match["host"].strip("[]"), match["user"], port))
    return hops


def _resolve(
    host: str,
    overrides: Mapping[str, str],
    config: SshConfig,
    *,
    where: str,
    identity: tuple[str, ...] | None,
    depth: int,
    own_route: bool = True,
) -> SshTarget:
    if depth > MAX_JUMPS:
        raise ConfigurationError(
            f"{where}: ProxyJump goes through more than {MAX_JUMPS} hosts (a loop in "
            f"{config.source}?)"
        )
    options = config.lookup(host, overrides)
    hostname = str(options.get("hostname") or host).strip("[]")
    try:
        port = int(str(options.get("port", 22)))
    except ValueError:
        raise ConfigurationError(
            f"{where}: {config.source}: Port {options.get('port')!r} for {host!r} is not a number"
        ) from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"{where}: {config.source}: Port {port} for {host!r}")
    user = options.get("user")
    if identity is None:
        configured = options.get("identityfile") or []
        files = configured if isinstance(configured, list) else [str(configured)]
        # As ssh does, identity files named in the config but absent are skipped.
        identity = tuple(str(Path(f).expanduser()) for f in files if Path(f).expanduser().exists())
    alias_value = options.get("hostkeyalias")
    target = SshTarget(
        alias=host,
        hostname=hostname,
        port=port,
        user=str(user) if user else None,
        identity_files=identity,
        host_key_alias=str(alias_value) if alias_value else None,
        known_hosts_files=_known_hosts_files(options.get("userknownhostsfile"), config.home),
    )
    if not own_route:
        return target
    # ProxyCommand and ProxyJump exclude each other: whichever the config gave first applies
    # (paramiko keeps options in the order it met them).
    route = next((key for key in options if key in ("proxycommand", "proxyjump")), None)
    if route == "proxycommand" and options["proxycommand"] is not None:
        return _with(target, proxy_command=str(options["proxycommand"]))
    if route == "proxyjump" and str(options["proxyjump"]).lower() != "none":
        hops = parse_jump_list(str(options["proxyjump"]), f"{where}: {config.source}")
        return _with(target, jump=_resolve_chain(hops, config, where, depth + 1))
    return target


def _resolve_chain(
    hops: Sequence[tuple[str, str | None, int | None]], config: SshConfig, where: str, depth: int
) -> SshTarget:
    """The last hop of ``hops``, reached through the ones before it. As with ``ssh -J a,b``,
    the first hop keeps its own ProxyCommand or ProxyJump; later hops are reached only
    through the chain."""
    host, user, port = hops[-1]
    overrides = {key: value for key, value in (("User", user), ("Port", port)) if value}
    own_route = len(hops) == 1
    last = _resolve(
        host, _strs(overrides), config, where=where, identity=None, depth=depth, own_route=own_route
    )
    if own_route:
        return last
    return _with(last, jump=_resolve_chain(hops[:-1], config, where, depth + 1))


def _with(
    target: SshTarget, *, proxy_command: str | None = None, jump: SshTarget | None = None
) -> SshTarget:
    return SshTarget(
        alias=target.alias,
        hostname=target.hostname,
        port=target.port,
        user=target.user,
        identity_files=target.identity_files,
        host_key_alias=target.host_key_alias,
        known_hosts_files=target.known_hosts_files,
        proxy_command=proxy_command,
        jump=jump,
    )


def _strs(values: Mapping[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in values.items()}


def _known_hosts_files(value: object, home: Path) -> tuple[Path, ...]:
    if value is None:
        return (home / ".ssh" / "known_hosts", home / ".ssh" / "known_hosts2")
    files: list[Path] = []
    try:
        items = shlex.split(str(value))
    except ValueError as exc:
        raise ConfigurationError(f"UserKnownHostsFile {value!r}: {exc}") from None
    for item in items:
        if item.lower() == "none":
            continue
        path = item.replace("%d", str(home))
        files.append(home / path[2:] if path.startswith("~/") else Path(path))
    return tuple(files)


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())
