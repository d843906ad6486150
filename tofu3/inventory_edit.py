"""Pinning host keys into an inventory's text without disturbing anything else (pure).

``tofu3 inventory pin`` must not rewrite the user's file through a YAML dumper, which would
drop every comment and reflow the layout. Instead the YAML is composed into nodes (which
carry their positions) only to find where each vantage's mapping is, and one
``host_key: "..."`` line is inserted there as text: after the vantage's ``host`` (or ``name``)
line at the same indentation, or before the closing brace of a flow mapping
(``{name: ams, host: ...}``). The result is loaded again and must equal the old inventory
with exactly those host keys added, or nothing is returned.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import replace

import yaml

from tofu3.digest import ssh_fingerprint
from tofu3.errors import InventoryError
from tofu3.inventory import Inventory, load_inventory_text

# The line breaks PyYAML counts lines by (str.splitlines would also split at \f, \v, ...).
_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def key_fingerprint(key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a ``TYPE BASE64`` key line."""
    try:
        blob = base64.b64decode(key_line.split()[1], validate=True)
    except (IndexError, binascii.Error):
        raise InventoryError(f"not a host key line: {key_line[:60]!r}") from None
    return ssh_fingerprint(blob)


def pin_host_keys(text: str, keys: Mapping[str, str], source: str = "<inventory>") -> str:
    """``text`` with ``host_key`` set for each vantage named in ``keys`` (name -> ``TYPE
    BASE64``), every other byte as it was. Raises InventoryError when a named vantage is not
    there or already has a key, or when the edit cannot be made safely."""
    before = load_inventory_text(text, source)
    by_name = {vantage.name: vantage for vantage in before.vantages}
    for name in keys:
        if name not in by_name:
            raise InventoryError(f"{source}: no vantage named {name!r}")
        if by_name[name].host_key is not None:
            raise InventoryError(f"{source}: vantage {name!r} already has a host_key")
    sequence = _vantage_nodes(text, source)
    insertions: list[tuple[int, str]] = []
    for vantage, node in zip(before.vantages, sequence.value, strict=True):
        if vantage.name in keys:
            insertions.append(_insertion(text, node, keys[vantage.name]))
    edited = text
    for offset, addition in sorted(insertions, reverse=True):
        edited = edited[:offset] + addition + edited[offset:]
    _check_only_keys_added(before, edited, keys, source)
    return edited


def _vantage_nodes(text: str, source: str) -> yaml.SequenceNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: not valid YAML: {exc}") from None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            is_vantages = isinstance(key, yaml.ScalarNode) and key.value == "vantages"
            if is_vantages and isinstance(value, yaml.SequenceNode):
                return value
    raise InventoryError(f"{source}: no 'vantages' list found to edit")


def _insertion(text: str, node: yaml.Node, key_line: str) -> tuple[int, str]:
    """Where and what to insert so that mapping ``node`` gains ``host_key``."""
    value = json.dumps(key_line)  # a JSON string is a valid YAML double-quoted scalar
    if not isinstance(node, yaml.MappingNode):
        raise InventoryError("a vantage is not a mapping")
    if node.flow_style:
        return _flow_insertion(text, node, value)
    pairs = {key.value: (key, val) for key, val in node.value if isinstance(key, yaml.ScalarNode)}
    anchor = pairs.get("host") or pairs.get("name")
    if anchor is None:
        raise InventoryError("a vantage mapping has neither 'host' nor 'name' to put host_key by")
    key_node, value_node = anchor
    end = value_node.end_mark
    # A block scalar ends at the start of the next line; anything else on its own last line.
    last_line = (
        end.line - 1 if end.column == 0 and end.line > key_node.start_mark.line else end.line
    )
    offset, newline = _line_end(text, last_line)
    indent = " " * key_node.start_mark.column
    comment = f"  # {key_fingerprint(key_line)}"
    line = f"{indent}host_key: {value}{comment}{newline}"
    if offset == len(text) and text and not text.endswith("\n"):
        line = newline + line.removesuffix(newline)
    return offset, line


def _flow_insertion(text: str, node: yaml.MappingNode, value: str) -> tuple[int, str]:
    close = node.end_mark.index - 1
    if text[close : close + 1] != "}":
        raise InventoryError("cannot find the closing brace of a vantage's flow mapping")
    # Right after the last entry (or its trailing comma), wherever the brace itself is.
    offset = len(text[:close].rstrip())
    separator = " " if text[:offset].endswith((",", "{")) else ", "
    return offset, f"{separator}host_key: {value}"


def _line_end(text: str, line: int) -> tuple[int, str]:
    """The offset just after line ``line`` (0-based, counted as YAML counts lines) and the
    newline to use for a line inserted there."""
    newline = "\r\n" if "\r\n" in text else "\n"
    for number, match in enumerate(_YAML_LINE_BREAK.finditer(text)):
        if number == line:
            found = match.group()
            return match.end(), "\r\n" if found == "\r\n" else newline
    return len(text), newline  # the last line, which has no line break


def _check_only_keys_added(
    before: Inventory, edited: str, keys: Mapping[str, str], source: str
) -> None:
    try:
        after = load_inventory_text(edited, source)
    except InventoryError as exc:
        raise InventoryError(
            f"{source}: adding host_key lines would break the file ({exc}); add them by hand"
        ) from None
    expected = [replace(v, host_key=keys.get(v.name, v.host_key), line=0) for v in before.vantages]
    if [replace(v, line=0) for v in after.vantages] != expected:
        raise InventoryError(
            f"{source}: adding host_key lines would change more than the host keys (YAML "
            "anchors or merge keys?); add them by hand"
        )
