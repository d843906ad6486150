"""Inventory: YAML text -> Inventory of Vantages (pure, strict).

The format is a contract, extended only additively. Loading is strict because every value here
ends up in an SSH connection or a remote command: unknown keys and duplicate keys are errors
naming the key and the line, and values that could smuggle shell syntax are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tofu3.errors import InventoryError

MIN_VANTAGES = 3
SUPPORTED_VERSION = 1

_VANTAGE_KEYS = frozenset(
    {"name", "host", "port", "user", "identity_file", "host_key", "curl_args", "note"}
)
_TOP_KEYS = frozenset({"version", "defaults", "vantages"})

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# Hostnames, IPv4, IPv6 (bare or bracketed) and ~/.ssh/config aliases; nothing a shell reads.
_HOST_RE = re.compile(r"[A-Za-z0-9_.:%\[\]-]{1,253}")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_HOST_KEY_RE = re.compile(r"(?P<type>[a-z0-9-]+) (?P<data>[A-Za-z0-9+/]+={0,2})(?: [^\n]*)?")
# curl options pass through a remote shell (quoted, but refused first if unusual).
_CURL_ARG_RE = re.compile(r"[A-Za-z0-9_@%+=:,./~\[\]-]{1,4096}")
# curl_args is an allowlist: curl accepts any unambiguous prefix of a long option
# (``--insec`` is ``--insecure``), so refusing dangerous names one by one cannot work. What is
# allowed changes how a vantage reaches the registry (proxies, addresses, resolution, trust
# anchors, TLS versions), never what tofu3 relies on: redirects, output, headers, retries,
# TLS checks, and nothing that would print the Authorization header (-v, --trace).
_CURL_OPTIONS_WITH_VALUE = frozenset(
    {
        "-x",
        "--proxy",
        "--preproxy",
        "--socks4",
        "--socks4a",
        "--socks5",
        "--socks5-hostname",
        "--noproxy",
        "--proxy-cacert",
        "--cacert",
        "--capath",
        "--pinnedpubkey",
        "--interface",
        "--local-port",
        "--connect-to",
        "--resolve",
        "--dns-servers",
        "--dns-interface",
        "--dns-ipv4-addr",
        "--dns-ipv6-addr",
        "--doh-url",
        "--limit-rate",
        "--connect-timeout",
        "-A",
        "--user-agent",
    }
)
_URL_WITH_CREDENTIALS_RE = re.compile(r"://[^/@]*@")
_CURL_FLAGS = frozenset(
    {
        "-4",
        "-6",
        "--ipv4",
        "--ipv6",
        "--tlsv1.2",
        "--tlsv1.3",
        "--http1.1",
        "--http2",
        "--tcp-nodelay",
        "--no-keepalive",
    }
)


@dataclass(frozen=True)
class Vantage:
    """One machine that downloads independently."""

    name: str
    host: str
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    host_key: str | None = None
    curl_args: tuple[str, ...] = ()
    note: str = ""
    line: int = 0
    # Whether the inventory set ``port`` (here or in defaults): when it did not, the Port of a
    # ~/.ssh/config alias applies, as it would for ``ssh alias``.
    port_given: bool = True

    @property
    def address(self) -> str:
        """``host:port`` as shown to users."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Inventory:
    """A validated set of at least three vantages."""

    vantages: tuple[Vantage, ...]
    source: str = "<inventory>"

    def names(self) -> list[str]:
        """The vantage names, in inventory order."""
        return [v.name for v in self.vantages]


class _LineDict(dict[str, Any]):
    """A mapping that remembers the line each key was on."""

    key_lines: dict[str, int]


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys and remembers key lines."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> _LineDict:
    result = _LineDict()
    result.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise InventoryError(f"line {line}: keys must be strings, not {key!r}")
        if key in result:
            raise InventoryError(
                f"line {line}: duplicate key {key!r} (first on line {result.key_lines[key]})"
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_inventory_text(text: str, source: str = "<inventory>") -> Inventory:
    """Parse and validate inventory YAML text."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except InventoryError as exc:
        raise InventoryError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML raises these for values it cannot build (an impossible date, !!int 0x).
        raise InventoryError(f"{source}: a value cannot be read: {exc}") from None
    except RecursionError:
        raise InventoryError(f"{source}: YAML nested too deeply") from None
    try:
        return _validate(data, source)
    except InventoryError as exc:
        raise InventoryError(f"{source}: {exc}") from None


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"inventory not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc}") from None
    return load_inventory_text(text, source=str(path))


def find_inventory(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The inventory path per the contract: -i, $TOFU3_INVENTORY, ./inventory.yaml, then
    ~/.config/tofu3/inventory.yaml."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser()
    if env.get("TOFU3_INVENTORY"):
        return Path(env["TOFU3_INVENTORY"]).expanduser()
    local = Path("inventory.yaml")
    if local.is_file():
        return local
    home = Path(env.get("HOME", str(Path.home())))
    candidate = home / ".config" / "tofu3" / "inventory.yaml"
    if candidate.is_file():
        return candidate
    raise InventoryError(
        "no inventory: pass -i FILE, set TOFU3_INVENTORY, or create ./inventory.yaml "
        "or ~/.config/tofu3/inventory.yaml (try `tofu3 lab up` and "
        '-i "$(tofu3 lab inventory)")'
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return str(problem)


def _line_of(mapping: object, key: str) -> int:
    if isinstance(mapping, _LineDict):
        return mapping.key_lines.get(key, 0)
    return 0


def _validate(data: object, source: str) -> Inventory:
    if not isinstance(data, dict):
        raise InventoryError("the inventory must be a mapping with 'version' and 'vantages'")
    for key in data:
        if key not in _TOP_KEYS:
            raise InventoryError(
                f"line {_line_of(data, key)}: unknown key {key!r} "
                f"(expected one of: {', '.join(sorted(_TOP_KEYS))})"
            )
    version = data.get("version", SUPPORTED_VERSION)
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise InventoryError(
            f"line {_line_of(data, 'version')}: unsupported version {version!r} "
            f"(this tofu3 reads version {SUPPORTED_VERSION})"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InventoryError(f"line {_line_of(data, 'defaults')}: 'defaults' must be a mapping")
    for key in defaults:
        line = _line_of(defaults, key)
        if key not in _VANTAGE_KEYS:
            raise InventoryError(f"line {line}: unknown key {key!r} in defaults")
        if key == "name":
            raise InventoryError(f"line {line}: 'name' cannot have a default")
    raw_vantages = data.get("vantages")
    if not isinstance(raw_vantages, list):
        raise InventoryError("'vantages' must be a list of vantages")
    vantages = [_vantage(raw, defaults, index) for index, raw in enumerate(raw_vantages)]
    if len(vantages) < MIN_VANTAGES:
        raise InventoryError(
            f"{len(vantages)} vantage(s) given; 3TOFU needs at least {MIN_VANTAGES} "
            "distinct vantages"
        )
    _check_distinct(vantages)
    return Inventory(vantages=tuple(vantages), source=source)


def _vantage(raw: object, defaults: Mapping[str, Any], index: int) -> Vantage:
    if not isinstance(raw, dict):
        raise InventoryError(f"vantage #{index + 1} must be a mapping")
    for key in raw:
        if key not in _VANTAGE_KEYS:
            raise InventoryError(
                f"line {_line_of(raw, key)}: unknown key {key!r} in vantage #{index + 1} "
                f"(expected one of: {', '.join(sorted(_VANTAGE_KEYS))})"
            )
    merged: dict[str, Any] = {**defaults, **raw}
    line = _line_of(raw, "name") or min(getattr(raw, "key_lines", {0: 0}).values(), default=0)

    def where(key: str) -> str:
        at = _line_of(raw, key) or _line_of(defaults, key) or line
        return f"line {at}: "

    name = merged.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InventoryError(
            f"{where('name')}vantage #{index + 1}: 'name' must match [a-z0-9][a-z0-9-]*, "
            f"got {name!r}"
        )
    label = f"vantage {name!r}"
    host = merged.get("host")
    if not isinstance(host, str) or not _HOST_RE.fullmatch(host) or host.startswith("-"):
        raise InventoryError(f"{where('host')}{label}: invalid host {host!r}")
    port = merged.get("port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InventoryError(f"{where('port')}{label}: port must be 1-65535, got {port!r}")
    user = merged.get("user")
    if user is not None and (not isinstance(user, str) or not _USER_RE.fullmatch(user)):
        raise InventoryError(f"{where('user')}{label}: invalid user {user!r}")
    identity = merged.get("identity_file")
    if identity is not None and (not isinstance(identity, str) or not _safe_text(identity)):
        raise InventoryError(f"{where('identity_file')}{label}: invalid identity_file")
    host_key = merged.get("host_key")
    if host_key is not None:
        host_key = _host_key(host_key, f"{where('host_key')}{label}")
    curl_args = _curl_args(merged.get("curl_args", []), f"{where('curl_args')}{label}")
    note = merged.get("note", "")
    if not isinstance(note, str) or not _safe_text(note):
        raise InventoryError(f"{where('note')}{label}: 'note' must be one line of text")
    return Vantage(
        name=name,
        host=host,
        port=port,
        user=user,
        identity_file=identity,
        host_key=host_key,
        curl_args=curl_args,
        note=note,
        line=line,
        port_given="port" in merged,
    )


def _safe_text(value: str) -> bool:
    return len(value) <= 4096 and not any(ord(c) < 32 or ord(c) == 127 for c in value)


def _host_key(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{where}: host_key must be a string like 'ssh-ed25519 AAAA...'")
    match = _HOST_KEY_RE.fullmatch(value.strip())
    if match is None or not _safe_text(value):
        raise InventoryError(f"{where}: host_key must look like 'ssh-ed25519 AAAA...'")
    if match["type"] not in _KEY_TYPES:
        raise InventoryError(
            f"{where}: unsupported host key type {match['type']!r} "
            f"(supported: {', '.join(_KEY_TYPES)})"
        )
    return f"{match['type']} {match['data']}"


def _curl_args(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InventoryError(f"{where}: curl_args must be a list of strings")
    args: list[str] = value
    for arg in args:
        if not _CURL_ARG_RE.fullmatch(arg):
            raise InventoryError(
                f"{where}: curl_args value {arg[:60]!r} contains characters tofu3 does not "
                "pass to a remote shell (allowed: letters, digits and _@%+=:,./~[]-)"
            )
    for arg in args:
        if _URL_WITH_CREDENTIALS_RE.search(arg):
            # It would sit on the vantage's command line, visible to every local user.
            raise InventoryError(
                f"{where}: a curl_args URL carries credentials (user:password@); "
                "tofu3 keeps secrets off command lines"
            )
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in _CURL_FLAGS:
            index += 1
            continue
        if arg in _CURL_OPTIONS_WITH_VALUE:
            if index + 1 >= len(args) or args[index + 1].startswith("-"):
                raise InventoryError(f"{where}: curl option {arg!r} needs a value after it")
            index += 2
            continue
        if arg.startswith("-"):
            raise InventoryError(
                f"{where}: curl option {arg[:60]!r} is not allowed in curl_args: tofu3 sets "
                "redirects, output, headers and TLS checks itself so the verification holds "
                "(see docs/inventory.md for the options a vantage may add)"
            )
        raise InventoryError(
            f"{where}: curl_args value {arg[:60]!r} does not follow an option that takes one"
        )
    return tuple(args)


def _check_distinct(vantages: Sequence[Vantage]) -> None:
    names: dict[str, Vantage] = {}
    endpoints: dict[tuple[str, int], Vantage] = {}
    for vantage in vantages:
        if vantage.name in names:
            raise InventoryError(
                f"line {vantage.line}: duplicate vantage name {vantage.name!r} "
                f"(first on line {names[vantage.name].line})"
            )
        names[vantage.name] = vantage
        endpoint = (vantage.host.strip("[]").lower(), vantage.port)
        if endpoint in endpoints:
            other = endpoints[endpoint]
            raise InventoryError(
                f"line {vantage.line}: vantages {other.name!r} and {vantage.name!r} both reach "
                f"{vantage.address}: they are not independent"
            )
        endpoints[endpoint] = vantage
