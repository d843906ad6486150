"""ssh_config text made ready for paramiko: Include lines inlined, and Match lines paramiko
would misread turned into blocks that never match.

paramiko.SSHConfig ignores Include (it keeps it as an unknown keyword), and evaluates a Match
criterion it does not know (localnetwork, tagged, version, ...) as true. Both would silently
change what an alias resolves to, so this module fixes the text up before paramiko reads it.
"""

from __future__ import annotations

import glob
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tofu3.errors import ConfigurationError

MAX_INCLUDE_DEPTH = 16  # as OpenSSH's READCONF_MAX_DEPTH
# The Match criteria paramiko evaluates; any other one it would take as matching.
_PARAMIKO_MATCH_CRITERIA = frozenset(
    {"all", "canonical", "final", "exec", "host", "originalhost", "user", "localuser"}
)
_NO_ARGUMENT = frozenset({"all", "canonical", "final"})
_NEVER_MATCH = "Match !originalhost *"
_SETTING_RE = re.compile(r"^\s*(\w+)(?:\s*=\s*|\s+)(.*?)\s*$")


@dataclass
class _Reading:
    """State shared while one config and its includes are read."""

    home: Path
    warnings: list[str] = field(default_factory=list)


def read_config_file(path: Path, home: Path) -> tuple[str, tuple[str, ...]]:
    """The text of the config at ``path``, its includes inlined, and warnings about it."""
    reading = _Reading(home)
    lines = _read(path, reading, depth=0, in_block=False)
    return "".join(lines), tuple(reading.warnings)


def prepare_config_text(text: str, home: Path, source: str) -> tuple[str, tuple[str, ...]]:
    """``text`` (from ``source``) prepared as :func:`read_config_file` prepares a file."""
    reading = _Reading(home)
    lines = _expand(text.splitlines(), source, reading, depth=0, in_block=False)
    return "".join(lines), tuple(reading.warnings)


def setting(line: str) -> tuple[str, str]:
    """(keyword in lower case, value) of a config line; ("", "") for comments and blanks."""
    if line.lstrip().startswith("#"):
        return "", ""
    match = _SETTING_RE.match(line)
    return (match.group(1).lower(), match.group(2)) if match else ("", "")


def _read(path: Path, reading: _Reading, *, depth: int, in_block: bool) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read ssh config {path}: {exc}") from None
    return _expand(text.splitlines(), str(path), reading, depth=depth, in_block=in_block)


def _expand(
    lines: Sequence[str], source: str, reading: _Reading, *, depth: int, in_block: bool
) -> list[str]:
    out: list[str] = []
    header: str | None = None  # the Host or Match line the next settings belong to
    for number, text in enumerate(lines, start=1):
        keyword, value = setting(text)
        line = text
        if keyword == "host":
            header = line
        elif keyword == "match":
            line = header = _checked_match(line, value, f"{source}:{number}", reading)
        elif keyword == "include":
            inside = header is not None or in_block
            out += _include(value, f"{source}:{number}", reading, depth=depth, in_block=inside)
            # What follows an Include belongs to the block the Include was in.
            if header is not None:
                out.append(header + "\n")
            elif not in_block:
                out.append("Host *\n")
            continue
        out.append(line + "\n")
    return out


def _include(value: str, where: str, reading: _Reading, *, depth: int, in_block: bool) -> list[str]:
    if depth + 1 > MAX_INCLUDE_DEPTH:
        raise ConfigurationError(f"{where}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
    try:
        patterns = shlex.split(value)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: Include {value!r}: {exc}") from None
    out: list[str] = []
    for pattern in patterns:
        for name in sorted(glob.glob(_include_path(pattern, reading.home))):
            included = _read(Path(name), reading, depth=depth + 1, in_block=in_block)
            # Inside a Host or Match block, ssh evaluates an included file's own blocks only
            # when the enclosing block matches; inlined text cannot say that, so it is refused.
            if in_block and any(setting(item)[0] in ("host", "match") for item in included):
                raise ConfigurationError(
                    f"{where}: {name} has Host or Match blocks and is included inside a Host "
                    "or Match block; tofu3 reads such an Include only at the top level"
                )
            out += included
    return out


def _include_path(pattern: str, home: Path) -> str:
    expanded = pattern.replace("%d", str(home))
    if expanded.startswith("~/"):
        return str(home / expanded[2:])
    if not expanded.startswith("/"):
        return str(home / ".ssh" / expanded)  # relative to ~/.ssh, as ssh reads the user's file
    return expanded


def _checked_match(line: str, value: str, where: str, reading: _Reading) -> str:
    """``line``, or a Match that never matches when paramiko would misread a criterion."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: Match {value!r}: {exc}") from None
    unknown: list[str] = []
    position = 0
    while position < len(words):
        criterion = words[position].lstrip("!").lower()
        if criterion not in _PARAMIKO_MATCH_CRITERIA:
            unknown.append(criterion)
        position += 1 if criterion in _NO_ARGUMENT else 2
    if not unknown:
        return line
    reading.warnings.append(
        f"{where}: Match {', '.join(sorted(set(unknown)))} is not supported; tofu3 treats "
        "that Match block as never matching"
    )
    return _NEVER_MATCH
