"""Pinning host keys into inventory text: one line (or one flow entry) added per vantage, every
other byte kept, and nothing written that would load differently."""

from __future__ import annotations

import textwrap

import pytest

from tofu3.errors import InventoryError
from tofu3.inventory import load_inventory_text
from tofu3.inventory_edit import key_fingerprint, pin_host_keys

AMS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4YK3uUQPOZGD1C1dmwKdep7i9kRVlwYpAwR/OVgVKC"
SFO = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXH3aHMmolXx7ZRHf3z+Fh61D4t/MKqE1Zri/CipZDw"
SGP = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICsv35qms+x97mGOXe1A6kPi3Y0ifI1f0GDTWuKKGHx3"

INVENTORY = textwrap.dedent(
    """\
    # My vantages.
    version: 1
    defaults:
      user: tofu   # everywhere
    vantages:
      # Amsterdam, direct.
      - name: ams
        host: 203.0.113.10   # the VPS
        port: 22
      # San Francisco, as a flow mapping.
      - {name: sfo, host: 198.51.100.7}
      - name: sgp
        host: sgp-alias
        curl_args:
          - --ipv4
        note: "via an ssh_config alias"
    """
)


def test_each_vantage_gains_exactly_its_host_key_line() -> None:
    edited = pin_host_keys(INVENTORY, {"ams": AMS, "sfo": SFO, "sgp": SGP})

    assert edited == INVENTORY.replace(
        "    host: 203.0.113.10   # the VPS\n",
        f'    host: 203.0.113.10   # the VPS\n    host_key: "{AMS}"  # {key_fingerprint(AMS)}\n',
    ).replace(
        "  - {name: sfo, host: 198.51.100.7}",
        f'  - {{name: sfo, host: 198.51.100.7, host_key: "{SFO}"}}',
    ).replace(
        "    host: sgp-alias\n",
        f'    host: sgp-alias\n    host_key: "{SGP}"  # {key_fingerprint(SGP)}\n',
    )
    keys = {v.name: v.host_key for v in load_inventory_text(edited).vantages}
    assert keys == {"ams": AMS, "sfo": SFO, "sgp": SGP}


def test_only_the_named_vantages_change() -> None:
    edited = pin_host_keys(INVENTORY, {"sfo": SFO})

    keys = {v.name: v.host_key for v in load_inventory_text(edited).vantages}
    assert keys == {"ams": None, "sfo": SFO, "sgp": None}
    assert edited.count("host_key") == 1


def test_windows_line_endings_and_a_missing_final_newline_are_kept() -> None:
    text = INVENTORY.replace("\n", "\r\n").removesuffix("\r\n")
    text = text.replace('    note: "via an ssh_config alias"', "    host: sgp-last")
    text = text.replace("    host: sgp-alias\r\n", "")

    edited = pin_host_keys(text, {"ams": AMS, "sgp": SGP})

    assert f'    host_key: "{AMS}"  # {key_fingerprint(AMS)}\r\n' in edited
    assert edited.endswith(f'\r\n    host_key: "{SGP}"  # {key_fingerprint(SGP)}')
    assert "\n" not in edited.replace("\r\n", "")


def test_a_vantage_that_already_has_a_key_is_not_overwritten() -> None:
    text = INVENTORY.replace("    port: 22\n", f'    port: 22\n    host_key: "{AMS}"\n')

    with pytest.raises(InventoryError, match="'ams' already has a host_key"):
        pin_host_keys(text, {"ams": SFO})


def test_an_unknown_vantage_is_an_error() -> None:
    with pytest.raises(InventoryError, match="no vantage named 'lhr'"):
        pin_host_keys(INVENTORY, {"lhr": AMS})


def test_vantages_that_merge_anchored_defaults_are_edited_in_place() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        x-common: &common
        vantages:
          - <<: &login {user: tofu, port: 2222}
            name: ams
            host: 203.0.113.10
          - <<: *login
            name: sfo
            host: 198.51.100.7
          - {<<: *login, name: sgp, host: 192.0.2.44}
        """
    ).replace("x-common: &common\n", "")

    edited = pin_host_keys(text, {"ams": AMS, "sfo": SFO, "sgp": SGP})

    vantages = load_inventory_text(edited).vantages
    assert [(v.name, v.host_key, v.user, v.port) for v in vantages] == [
        ("ams", AMS, "tofu", 2222),
        ("sfo", SFO, "tofu", 2222),
        ("sgp", SGP, "tofu", 2222),
    ]
    assert edited.count("host_key") == 3


def test_key_fingerprint_is_openssh_sha256() -> None:
    assert key_fingerprint(AMS) == "SHA256:5ijth+YHYnYYsHsvEkbXO3WE7kxLjYjUn6gd5VE9dsw"
