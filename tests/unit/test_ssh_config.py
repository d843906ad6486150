"""Resolving an inventory host through ssh_config: what ssh would connect to, in which order the
settings win, how ProxyJump chains are read, and which name host keys are looked up under."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tofu3.errors import ConfigurationError
from tofu3.inventory import Vantage, load_inventory_text
from tofu3.remote.ssh_config import (
    SSH_CONFIG_ENV,
    SshConfig,
    load_ssh_config,
    parse_jump_list,
    parse_ssh_config_text,
    resolve_vantage,
)

CONFIG = """\
Host ams
    HostName 203.0.113.10
    Port 2200
    User tofu
    IdentityFile {home}/.ssh/tofu3_ed25519
    IdentityFile {home}/.ssh/absent_key
Host behind
    HostName 10.0.0.5
    ProxyJump bastion
Host bastion
    HostName bastion.example.org
    User jumper
Host chained
    HostName 10.0.0.6
    ProxyJump admin@first:2222,second
Host first
    HostName first.example.org
    ProxyCommand relay %h %p
Host second
    HostName second.example.org
    ProxyJump never-used
Host piped
    ProxyCommand connect-via %h %p %r
    ProxyJump ignored-because-second
Host direct
    ProxyJump none
Host keyed
    HostName 198.51.100.9
    Port 2222
    HostKeyAlias keyed.keys.example
    UserKnownHostsFile ~/.ssh/tofu3_known_hosts /etc/ssh/shared_known_hosts
"""


@pytest.fixture
def config(tmp_path: Path) -> SshConfig:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "tofu3_ed25519").write_text("not really a key\n")
    return parse_ssh_config_text(CONFIG.format(home=tmp_path), tmp_path)


def _vantage(
    host: str, port: int | None = None, user: str | None = None, identity_file: str | None = None
) -> Vantage:
    """A vantage as the inventory loader makes it (``port_given`` only when a port is set)."""
    return Vantage(
        name="v",
        host=host,
        port=22 if port is None else port,
        port_given=port is not None,
        user=user,
        identity_file=identity_file,
    )


def test_an_alias_takes_hostname_port_user_and_existing_identity_files(
    config: SshConfig, tmp_path: Path
) -> None:
    target = resolve_vantage(_vantage("ams"), config)

    assert (target.hostname, target.port, target.user) == ("203.0.113.10", 2200, "tofu")
    # A named key that does not exist is skipped, as ssh skips it.
    assert target.identity_files == (str(tmp_path / ".ssh" / "tofu3_ed25519"),)
    assert target.proxy_command is None and target.jump is None


def test_inventory_values_win_over_the_ssh_config(config: SshConfig) -> None:
    target = resolve_vantage(
        _vantage("ams", port=22, user="other", identity_file="/keys/inventory_key"), config
    )

    assert (target.port, target.user) == (22, "other")
    assert target.identity_files == ("/keys/inventory_key",)


def test_a_host_without_config_is_used_as_written(config: SshConfig) -> None:
    target = resolve_vantage(_vantage("192.0.2.44", port=2022), config)

    assert (target.hostname, target.port, target.user) == ("192.0.2.44", 2022, None)
    assert target.known_hosts_name == "[192.0.2.44]:2022"


def test_known_hosts_name_is_the_hostname_never_the_alias(config: SshConfig) -> None:
    assert resolve_vantage(_vantage("ams"), config).known_hosts_name == "[203.0.113.10]:2200"
    assert resolve_vantage(_vantage("behind"), config).known_hosts_name == "10.0.0.5"


def test_host_key_alias_and_user_known_hosts_file(config: SshConfig, tmp_path: Path) -> None:
    target = resolve_vantage(_vantage("keyed"), config)

    # HostKeyAlias is used verbatim, without the port, as OpenSSH does.
    assert target.known_hosts_name == "keyed.keys.example"
    assert target.known_hosts_files == (
        tmp_path / ".ssh" / "tofu3_known_hosts",
        Path("/etc/ssh/shared_known_hosts"),
    )


def test_proxy_jump_goes_through_the_jump_host_resolved_in_turn(config: SshConfig) -> None:
    target = resolve_vantage(_vantage("behind"), config)

    assert target.jump is not None
    assert (target.jump.hostname, target.jump.user, target.jump.port) == (
        "bastion.example.org",
        "jumper",
        22,
    )
    assert target.describe() == "10.0.0.5:22 via bastion"


def test_a_jump_chain_is_followed_like_ssh_j(config: SshConfig) -> None:
    target = resolve_vantage(_vantage("chained"), config)

    second = target.jump
    assert second is not None and second.hostname == "second.example.org"
    # A later hop is reached only through the chain: its own ProxyJump is not used.
    first = second.jump
    assert first is not None and first.hostname == "first.example.org"
    assert (first.user, first.port) == ("admin", 2222)
    # The first hop keeps its own route, with its tokens expanded.
    assert first.proxy_command == "relay first.example.org 2222"
    assert first.jump is None


def test_proxy_command_tokens_see_the_inventory_values(config: SshConfig) -> None:
    target = resolve_vantage(_vantage("piped", port=2022, user="tofu3"), config)

    # ProxyCommand came first, so the later ProxyJump does not apply.
    assert target.proxy_command == "connect-via piped 2022 tofu3"
    assert target.jump is None


def test_proxy_jump_none_means_direct(config: SshConfig) -> None:
    target = resolve_vantage(_vantage("direct"), config)

    assert target.jump is None and target.proxy_command is None


def test_a_proxy_jump_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    config = parse_ssh_config_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n", tmp_path)

    with pytest.raises(ConfigurationError, match="ProxyJump goes through more than"):
        resolve_vantage(_vantage("a"), config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bastion", [("bastion", None, None)]),
        ("tofu@bastion:2222", [("bastion", "tofu", 2222)]),
        ("ssh://tofu@bastion:2222", [("bastion", "tofu", 2222)]),
        ("a,b:22", [("a", None, None), ("b", None, 22)]),
        ("[2001:db8::1]:2222", [("2001:db8::1", None, 2222)]),
    ],
)
def test_proxy_jump_lists_are_read(
    text: str, expected: list[tuple[str, str | None, int | None]]
) -> None:
    assert parse_jump_list(text, "here") == expected


@pytest.mark.parametrize("text", ["bastion:99999", "a b", "user@", "$(reboot)", "a;b"])
def test_malformed_proxy_jump_entries_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="ProxyJump entry"):
        parse_jump_list(text, "here")


def test_include_is_inlined_and_later_settings_stay_global(tmp_path: Path) -> None:
    (tmp_path / ".ssh" / "config.d").mkdir(parents=True)
    (tmp_path / ".ssh" / "config.d" / "work").write_text("Host work\n  HostName 10.1.1.1\n")
    config = parse_ssh_config_text("Include config.d/*\nUser everyone\n", tmp_path)

    work = resolve_vantage(_vantage("work"), config)
    other = resolve_vantage(_vantage("other"), config)

    assert work.hostname == "10.1.1.1"
    assert work.user == "everyone"
    assert other.user == "everyone"  # not swallowed by the included Host block


def test_an_include_with_blocks_inside_a_host_block_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "inner").write_text("Host x\n  User y\n")

    with pytest.raises(ConfigurationError, match="only at the top level"):
        parse_ssh_config_text("Host a\n  Include inner\n", tmp_path)


def test_a_match_paramiko_cannot_evaluate_never_matches_and_says_so(tmp_path: Path) -> None:
    text = "Match localnetwork 10.0.0.0/8\n  ProxyJump office\nHost *\n  User tofu\n"
    config = parse_ssh_config_text(text, tmp_path, source="cfg")

    target = resolve_vantage(_vantage("anywhere"), config)

    assert target.jump is None
    assert target.user == "tofu"
    assert config.warnings == (
        "cfg:1: Match localnetwork is not supported; tofu3 treats that Match block as never "
        "matching",
    )


def test_a_match_paramiko_understands_still_applies(tmp_path: Path) -> None:
    config = parse_ssh_config_text("Match host 10.*\n  User inside\n", tmp_path)

    assert resolve_vantage(_vantage("10.0.0.1"), config).user == "inside"
    assert resolve_vantage(_vantage("192.0.2.1"), config).user is None
    assert config.warnings == ()


def test_tofu3_ssh_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tofu3_ssh_config"
    path.write_text(textwrap.dedent("Host ams\n  HostName 203.0.113.10\n"))

    config = load_ssh_config({SSH_CONFIG_ENV: str(path), "HOME": str(tmp_path)})

    assert resolve_vantage(_vantage("ams"), config).hostname == "203.0.113.10"


def test_a_missing_tofu3_ssh_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read ssh config"):
        load_ssh_config({SSH_CONFIG_ENV: str(tmp_path / "absent"), "HOME": str(tmp_path)})


def test_a_missing_user_config_is_an_empty_one(tmp_path: Path) -> None:
    config = load_ssh_config({"HOME": str(tmp_path)})

    assert config.text == ""
    assert resolve_vantage(_vantage("ams"), config).hostname == "ams"


def test_a_config_that_does_not_parse_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken"
    path.write_text("Host\n")

    with pytest.raises(ConfigurationError, match="broken"):
        load_ssh_config({SSH_CONFIG_ENV: str(path), "HOME": str(tmp_path)})


def test_the_port_an_inventory_writes_wins_and_an_unwritten_one_does_not(
    config: SshConfig,
) -> None:
    text = """\
version: 1
vantages:
  - {name: a, host: ams}
  - {name: b, host: keyed, port: 22}
  - {name: c, host: 192.0.2.1}
"""
    ports = [
        resolve_vantage(vantage, config).port for vantage in load_inventory_text(text).vantages
    ]

    assert ports == [2200, 22, 22]
