"""The inventory: a contract (DESIGN.md section 4) whose every value ends up in an SSH
connection or a remote command line, so loading is strict and every refusal names the line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tofu3.errors import ConfigurationError, InventoryError
from tofu3.inventory import Inventory, find_inventory, load_inventory, load_inventory_text

from .fixtures_path import REPO

ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4YK3uUQPOZGD1C1dmwKdep7i9kRVlwYpAwR/OVgVKC"

THREE_VANTAGES = textwrap.dedent(
    f"""\
    version: 1
    defaults:
      user: tofu
      identity_file: ~/.ssh/tofu3_ed25519
    vantages:
      - name: ams
        host: 203.0.113.10
        port: 22
        host_key: "{ED25519_KEY} root@ams"
        note: "Hetzner Amsterdam, direct"
      - name: vpn-home
        host: 198.51.100.7
        port: 2222
        user: tofu3
      - name: tor
        host: 192.0.2.44
        curl_args: ["--proxy", "socks5h://127.0.0.1:9050"]
    """
)


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle`` (-1: the last)."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1 if occurrence > 0 else occurrence]


def _with_third_vantage(body: str) -> str:
    """THREE_VANTAGES with the 'tor' vantage replaced by ``body`` (indented as a list item)."""
    head = THREE_VANTAGES.split("  - name: tor\n")[0]
    return head + textwrap.indent(textwrap.dedent(body), "  ")


def _tor_with(extra: str) -> str:
    return _with_third_vantage(
        """\
        - name: tor
          host: 192.0.2.44
        """
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )


def _refused(text: str) -> str:
    with pytest.raises(InventoryError) as raised:
        load_inventory_text(text, source="inv.yaml")
    message = str(raised.value)
    assert message.startswith("inv.yaml: "), message
    return message


# --- A valid inventory ------------------------------------------------------------------------


def test_a_valid_three_vantage_inventory_loads_with_its_defaults() -> None:
    inventory = load_inventory_text(THREE_VANTAGES, source="inv.yaml")

    assert inventory.source == "inv.yaml"
    assert inventory.names() == ["ams", "vpn-home", "tor"]
    ams, home, tor = inventory.vantages
    assert (ams.host, ams.port, ams.user) == ("203.0.113.10", 22, "tofu")
    assert ams.identity_file == "~/.ssh/tofu3_ed25519"
    # The pin keeps type and key; the trailing comment is not part of it.
    assert ams.host_key == ED25519_KEY
    assert ams.note == "Hetzner Amsterdam, direct"
    assert (home.port, home.user, home.address) == (2222, "tofu3", "198.51.100.7:2222")
    assert (tor.port, tor.user, tor.host_key) == (22, "tofu", None)
    assert tor.curl_args == ("--proxy", "socks5h://127.0.0.1:9050")
    assert [v.line for v in inventory.vantages] == [
        _line(THREE_VANTAGES, "name: ams"),
        _line(THREE_VANTAGES, "name: vpn-home"),
        _line(THREE_VANTAGES, "name: tor"),
    ]


def test_version_and_defaults_are_optional() -> None:
    text = "vantages:\n" + "".join(f"  - {{name: v{i}, host: 10.0.0.{i}}}\n" for i in range(3))

    inventory = load_inventory_text(text)

    assert inventory.names() == ["v0", "v1", "v2"]
    assert all(v.user is None and v.port == 22 for v in inventory.vantages)


def test_the_same_host_on_different_ports_is_allowed() -> None:
    # The lab: three sshd on one loopback address, each its own vantage.
    text = "vantages:\n" + "".join(
        f"  - {{name: lab{i}, host: 127.0.0.1, port: {2200 + i}}}\n" for i in range(3)
    )

    assert [v.port for v in load_inventory_text(text).vantages] == [2200, 2201, 2202]


def test_the_example_inventory_shipped_with_the_repo_loads() -> None:
    example = REPO / "inventory.example.yaml"
    if not example.is_file():
        pytest.skip("inventory.example.yaml is not in the repo yet (the lead adds it)")

    inventory = load_inventory(example)

    assert isinstance(inventory, Inventory)
    assert len(inventory.vantages) >= 3
    assert inventory.source == str(example)


# --- Unknown and duplicate keys: named, with their lines ---------------------------------------


def test_an_unknown_top_level_key_is_named_with_its_line() -> None:
    text = THREE_VANTAGES.replace("defaults:", "default:")

    message = _refused(text)

    assert f"line {_line(text, 'default:')}: unknown key 'default'" in message


def test_an_unknown_key_in_defaults_is_named_with_its_line() -> None:
    text = THREE_VANTAGES.replace("  user: tofu\n", "  user: tofu\n  hostkey: x\n", 1)

    message = _refused(text)

    assert f"line {_line(text, 'hostkey: x')}: unknown key 'hostkey' in defaults" in message


def test_a_name_in_defaults_is_refused() -> None:
    text = THREE_VANTAGES.replace("  user: tofu\n", "  user: tofu\n  name: same\n", 1)

    assert f"line {_line(text, 'name: same')}: 'name' cannot have a default" in _refused(text)


def test_an_unknown_key_in_a_vantage_is_named_with_its_line() -> None:
    text = THREE_VANTAGES.replace("    port: 2222\n", "    port: 2222\n    hostname: x\n")

    message = _refused(text)

    assert f"line {_line(text, 'hostname: x')}: unknown key 'hostname' in vantage #2" in message


def test_a_duplicate_key_in_a_vantage_names_both_lines() -> None:
    # Which host would be used? A reader must not have to guess.
    text = THREE_VANTAGES.replace(
        "    host: 198.51.100.7\n", "    host: 198.51.100.7\n    host: 203.0.113.66\n"
    )

    message = _refused(text)

    first, second = _line(text, "host: 198.51.100.7"), _line(text, "host: 203.0.113.66")
    assert f"line {second}: duplicate key 'host' (first on line {first})" in message


def test_a_second_vantages_list_cannot_silently_replace_the_first() -> None:
    text = THREE_VANTAGES + "vantages: []\n"

    message = _refused(text)

    assert f"line {_line(text, 'vantages: []')}: duplicate key 'vantages'" in message
    assert f"first on line {_line(text, 'vantages:')}" in message


def test_a_non_string_key_is_refused() -> None:
    assert "keys must be strings" in _refused(THREE_VANTAGES + "1: one\n")


# --- Enough independent vantages --------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2])
def test_fewer_than_three_vantages_are_refused(count: int) -> None:
    text = "version: 1\nvantages:\n" + "".join(
        f"  - {{name: v{i}, host: 10.0.0.{i}}}\n" for i in range(count)
    )
    if count == 0:
        text = "version: 1\nvantages: []\n"

    assert f"{count} vantage(s) given" in _refused(text)


def test_a_duplicate_vantage_name_is_refused_with_both_lines() -> None:
    text = THREE_VANTAGES.replace("name: tor", "name: ams")

    message = _refused(text)

    assert (
        f"line {_line(text, 'name: ams', 2)}: duplicate vantage name 'ams' "
        f"(first on line {_line(text, 'name: ams')})"
    ) in message


@pytest.mark.parametrize(
    ("host_a", "port_a", "host_b", "port_b"),
    [
        ("203.0.113.10", "22", "203.0.113.10", "22"),
        ("203.0.113.10", "", "203.0.113.10", "22"),  # 22 is the default
        ("Vantage.Example", "22", "vantage.example", "22"),
        ("'[2001:db8::1]'", "22", "'2001:db8::1'", "22"),
    ],
)
def test_two_vantages_reaching_the_same_host_and_port_are_not_independent(
    host_a: str, port_a: str, host_b: str, port_b: str
) -> None:
    def item(name: str, host: str, port: str) -> str:
        return f"  - name: {name}\n    host: {host}\n" + (f"    port: {port}\n" if port else "")

    text = "vantages:\n" + item("a", host_a, port_a) + item("b", host_b, port_b)
    text += item("c", "192.0.2.1", "")

    assert "not independent" in _refused(text)


# --- Values that would reach ssh or a remote shell ---------------------------------------------


@pytest.mark.parametrize("port", ["0", "65536", "-1", '"22"', "true", "22.0", "null", "[22]"])
def test_a_bad_port_is_refused(port: str) -> None:
    assert "port must be 1-65535" in _refused(_tor_with(f"port: {port}\n"))


@pytest.mark.parametrize(
    "host",
    [
        "'a;b'",
        "'$(x)'",
        "'`id`'",
        "'a b'",
        "'a|b'",
        "'a&b'",
        "'a>b'",
        "'-oProxyCommand=id'",
        "'-oProxyJump'",  # would be read as an option, not a host
        "''",
        '"a\\nb"',
        "42",
        "'" + "a" * 254 + "'",
    ],
)
def test_a_host_that_could_smuggle_shell_or_ssh_syntax_is_refused(host: str) -> None:
    text = _with_third_vantage(f"- name: tor\n  host: {host}\n")

    message = _refused(text)

    assert "vantage 'tor': invalid host" in message
    assert f"line {_line(text, 'host: ' + host[:10])}" in message


@pytest.mark.parametrize("name", ["Ams", "-ams", "ams_1", "a;b", "1", "''", "a" * 64])
def test_a_bad_vantage_name_is_refused(name: str) -> None:
    assert "'name' must match" in _refused(_with_third_vantage(f"- name: {name}\n  host: h\n"))


@pytest.mark.parametrize("user", ["'root;id'", "'$(id)'", "'-l'", "'a b'", "7"])
def test_a_bad_user_is_refused(user: str) -> None:
    assert "invalid user" in _refused(_tor_with(f"user: {user}\n"))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("identity_file", '"~/.ssh/key\\nProxyCommand id"', "invalid identity_file"),
        ("identity_file", "[a]", "invalid identity_file"),
        ("note", '"two\\nlines"', "'note' must be one line of text"),
        ("note", '"bell\\a"', "'note' must be one line of text"),
        ("note", "[a]", "'note' must be one line of text"),
    ],
)
def test_text_fields_must_be_one_line_of_text(field: str, value: str, problem: str) -> None:
    assert f"vantage 'tor': {problem}" in _refused(_tor_with(f"{field}: {value}\n"))


@pytest.mark.parametrize(
    "curl_args",
    [
        '["--location-trusted"]',
        '["-k"]',
        '["--insecure"]',
        '["--proxy-insecure"]',
        '["-kL"]',
        '["-Lk"]',
        '["-sSk"]',
        '["-K", "/tmp/evil.conf"]',
        '["--config", "/tmp/evil.conf"]',
        '["-o", "/tmp/out"]',
        '["--retry", "3"]',
        '["-H", "Authorization: x"]',
        '["--proto=http"]',
        '["--proxy", "socks5h://127.0.0.1:9050", "-k"]',
    ],
)
def test_curl_options_that_defeat_the_verification_are_refused(curl_args: str) -> None:
    message = _refused(_tor_with(f"curl_args: {curl_args}\n"))

    assert "is not allowed in curl_args" in message or "contains characters" in message


@pytest.mark.parametrize("flag", ["-kL", "-Lk", "--location-trusted", "--insecure", "-k"])
def test_a_forbidden_curl_option_is_named(flag: str) -> None:
    text = _tor_with(f'curl_args: ["{flag}"]\n')

    message = _refused(text)

    assert f"line {_line(text, 'curl_args')}: vantage 'tor': curl option" in message
    assert "is not allowed in curl_args" in message


@pytest.mark.parametrize(
    "arg",
    [
        "--proxy $(id)",
        "a;b",
        "`id`",
        "it's",
        '\\"quoted\\"',
        "*",
        "a|b",
        "a\\nb",
        "",
    ],
)
def test_curl_args_with_characters_outside_the_allowed_set_are_refused(arg: str) -> None:
    assert "contains characters tofu3 does not pass" in _refused(
        _tor_with(f'curl_args: ["{arg}"]\n')
    )


@pytest.mark.parametrize("curl_args", ['"--proxy socks5h://x"', "{a: b}", "[1]", "[[a]]"])
def test_curl_args_must_be_a_list_of_strings(curl_args: str) -> None:
    assert "curl_args must be a list of strings" in _refused(_tor_with(f"curl_args: {curl_args}\n"))


@pytest.mark.parametrize(
    "curl_args",
    [
        '["--cacert", "/home/tofu/lab/ca.pem"]',
        '["--interface", "127.0.0.2"]',
        '["--connect-to", "ghcr.io:443:127.0.0.1:8443"]',
        '["--proxy", "socks5h://127.0.0.1:9050", "-4"]',
    ],
)
def test_ordinary_curl_args_pass(curl_args: str) -> None:
    inventory = load_inventory_text(_tor_with(f"curl_args: {curl_args}\n"))

    assert inventory.vantages[2].curl_args


@pytest.mark.parametrize("flag", ["--insec", "--location-tru", "--proxy-insec"])
def test_an_abbreviated_forbidden_curl_option_is_refused(flag: str) -> None:
    _refused(_tor_with(f'curl_args: ["{flag}"]\n'))


@pytest.mark.parametrize(
    ("host_key", "problem"),
    [
        ('"ssh-dss AAAAB3NzaC1kc3M="', "unsupported host key type 'ssh-dss'"),
        ('"AAAAC3NzaC1lZDI1NTE5"', "must look like"),
        ('"ssh-ed25519"', "must look like"),
        ('"ssh-ed25519 AAAA$(id)"', "must look like"),
        ('"ssh-ed25519 AAAA\\nssh-rsa BBBB"', "must look like"),
        ("[ssh-ed25519, AAAA]", "must be a string"),
        ("42", "must be a string"),
        ('"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"', "must look like"),
    ],
)
def test_a_bad_host_key_is_refused(host_key: str, problem: str) -> None:
    text = _tor_with(f"host_key: {host_key}\n")

    message = _refused(text)

    assert problem in message
    assert f"line {_line(text, 'host_key', -1)}" in message


# --- Documents that are not inventories --------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "0", "true", '"1"', "1.5"])
def test_an_unsupported_version_is_refused(version: str) -> None:
    text = THREE_VANTAGES.replace("version: 1", f"version: {version}")

    assert "line 1: unsupported version" in _refused(text)


@pytest.mark.parametrize(
    "text",
    ["", "null\n", "- a\n- b\n", "just text\n", "42\n"],
)
def test_a_document_that_is_not_a_mapping_is_refused(text: str) -> None:
    assert "must be a mapping" in _refused(text)


@pytest.mark.parametrize(
    "text", ["vantages: a\n", "vantages: {a: b}\n", "version: 1\n", "vantages:\n"]
)
def test_vantages_must_be_a_list(text: str) -> None:
    assert "'vantages' must be a list" in _refused(text)


def test_defaults_must_be_a_mapping() -> None:
    text = THREE_VANTAGES.replace(
        "defaults:\n  user: tofu\n  identity_file: ~/.ssh/tofu3_ed25519\n", "defaults: [a]\n"
    )

    assert "'defaults' must be a mapping" in _refused(text)


def test_a_vantage_that_is_not_a_mapping_is_refused() -> None:
    assert "vantage #3 must be a mapping" in _refused(_with_third_vantage("- tor\n"))


def test_invalid_yaml_is_refused_with_its_line() -> None:
    text = THREE_VANTAGES.replace("    port: 2222\n", "    port: [2222\n")

    message = _refused(text)

    assert "not valid YAML: line" in message


@pytest.mark.parametrize(
    "text",
    [
        "vantages: !!python/object/apply:os.system ['id']\n",
        "vantages: !!python/name:os.system\n",
    ],
)
def test_python_tags_are_refused_not_executed(text: str) -> None:
    assert "not valid YAML" in _refused(text)


def test_deeply_nested_yaml_is_refused_without_a_recursion_error() -> None:
    assert "nested too deeply" in _refused("vantages: " + "[" * 20_000 + "]" * 20_000 + "\n")


@pytest.mark.parametrize(
    "extra",
    ["note: 2024-02-30\n", "note: 2024-13-01\n", "port: !!int 0x\n", "port: " + "9" * 5000 + "\n"],
    ids=["impossible-date", "impossible-month", "bad-hex-int", "huge-int"],
)
def test_a_scalar_yaml_cannot_build_is_an_inventory_error(extra: str) -> None:
    with pytest.raises(InventoryError):
        load_inventory_text(_tor_with(extra))


def test_an_inventory_error_is_a_configuration_error() -> None:
    # Exit status 2, not 1 or 3: the user must fix something, nothing was verified.
    with pytest.raises(ConfigurationError):
        load_inventory_text("")


# --- Files and where they are looked for --------------------------------------------------------


def test_a_missing_inventory_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(InventoryError, match=f"inventory not found: {missing}"):
        load_inventory(missing)


def test_an_inventory_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes(b"vantages: \xff\xfe\n")

    with pytest.raises(InventoryError, match="cannot read inventory"):
        load_inventory(path)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(THREE_VANTAGES.replace("defaults:", "default:"), encoding="utf-8")

    with pytest.raises(InventoryError, match=f"^{path}: line 2: unknown key 'default'"):
        load_inventory(path)


@pytest.fixture
def every_inventory_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ./inventory.yaml and a fake HOME with the user config."""
    home = tmp_path / "home"
    (home / ".config" / "tofu3").mkdir(parents=True)
    (home / ".config" / "tofu3" / "inventory.yaml").write_text(THREE_VANTAGES, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (work / "inventory.yaml").write_text(THREE_VANTAGES, encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TOFU3_INVENTORY", raising=False)
    return tmp_path


def test_an_explicit_inventory_comes_first(every_inventory_place: Path) -> None:
    environ = {"TOFU3_INVENTORY": "/env/inventory.yaml", "HOME": str(every_inventory_place)}

    assert find_inventory("/explicit/inventory.yaml", environ) == Path("/explicit/inventory.yaml")


def test_an_explicit_inventory_expands_the_home_directory(every_inventory_place: Path) -> None:
    expected = every_inventory_place / "home" / "mine.yaml"

    assert find_inventory("~/mine.yaml") == expected


def test_the_environment_variable_comes_before_the_working_directory(
    every_inventory_place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOFU3_INVENTORY", "/env/inventory.yaml")

    assert find_inventory(None) == Path("/env/inventory.yaml")


def test_the_working_directory_comes_before_the_user_config(every_inventory_place: Path) -> None:
    found = find_inventory(None, {"HOME": str(every_inventory_place / "home")})

    assert found.resolve() == (every_inventory_place / "work" / "inventory.yaml").resolve()


def test_an_empty_environment_variable_is_ignored(every_inventory_place: Path) -> None:
    found = find_inventory(None, {"TOFU3_INVENTORY": "", "HOME": "/nowhere"})

    assert found.resolve() == (every_inventory_place / "work" / "inventory.yaml").resolve()


def test_the_user_config_is_the_last_resort(
    every_inventory_place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (every_inventory_place / "work" / "inventory.yaml").unlink()

    found = find_inventory(None)

    assert found == every_inventory_place / "home" / ".config" / "tofu3" / "inventory.yaml"
    assert load_inventory(found).names() == ["ams", "vpn-home", "tor"]


def test_no_inventory_anywhere_says_how_to_get_one(
    every_inventory_place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (every_inventory_place / "work" / "inventory.yaml").unlink()
    monkeypatch.setenv("HOME", str(every_inventory_place / "empty-home"))

    with pytest.raises(InventoryError) as raised:
        find_inventory(None)

    for hint in ("-i FILE", "TOFU3_INVENTORY", "./inventory.yaml", "~/.config/tofu3"):
        assert hint in str(raised.value)


@pytest.mark.parametrize(
    "curl_args",
    [
        '["--proxy", "socks5h://tor:hunter2@127.0.0.1:9050"]',
        '["--doh-url", "https://user:hunter2@dns.example/dns-query"]',
    ],
)
def test_credentials_in_a_curl_args_url_are_refused(curl_args: str) -> None:
    message = _refused(_tor_with(f"curl_args: {curl_args}\n"))

    assert "carries credentials" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("flag", ["--tls-max", "--ciphers"])
def test_curl_options_that_can_only_weaken_tls_are_refused(flag: str) -> None:
    assert "is not allowed in curl_args" in _refused(_tor_with(f'curl_args: ["{flag}", "x"]\n'))
