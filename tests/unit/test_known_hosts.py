"""known_hosts read as OpenSSH reads it: hashed names, patterns, negations, @revoked; nothing
else trusted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from tofu3.remote.known_hosts import fingerprint, key_line, known_host_keys, names_match

AMS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4YK3uUQPOZGD1C1dmwKdep7i9kRVlwYpAwR/OVgVKC"
SFO = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXH3aHMmolXx7ZRHf3z+Fh61D4t/MKqE1Zri/CipZDw"


def _lines(keys: list[paramiko.PKey]) -> list[str]:
    return [key_line(key) for key in keys]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(text)
    return path


def test_a_plain_entry_is_trusted_for_its_name_and_port(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[203.0.113.10]:2222 {AMS}\n203.0.113.11 {SFO}\n")

    assert _lines(known_host_keys([path], "[203.0.113.10]:2222")) == [AMS]
    assert _lines(known_host_keys([path], "203.0.113.11")) == [SFO]
    assert known_host_keys([path], "203.0.113.10") == []  # port 22 is another entry


def test_entries_hashed_by_ssh_keygen_are_trusted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[203.0.113.10]:2222 {AMS}\nams.example.org {SFO}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    hashed = path.read_text()

    assert "203.0.113.10" not in hashed and hashed.count("|1|") == 2
    assert _lines(known_host_keys([path], "[203.0.113.10]:2222")) == [AMS]
    assert _lines(known_host_keys([path], "ams.example.org")) == [SFO]
    assert known_host_keys([path], "[203.0.113.10]:2223") == []


def test_patterns_and_negations_match_as_in_openssh() -> None:
    assert names_match(["*.example.org"], "ams.example.org")
    assert names_match(["ams.example.or?"], "AMS.example.org")
    assert not names_match(["*.example.org", "!ams.example.org"], "ams.example.org")
    assert names_match(["*.example.org", "!ams.example.org"], "sfo.example.org")
    # OpenSSH patterns have no character classes: brackets are literal (as in [host]:port).
    assert not names_match(["[ab]ms.example.org"], "ams.example.org")
    assert names_match(["[ams.example.org]:2222"], "[ams.example.org]:2222")


def test_a_revoked_key_is_never_trusted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"ams.example.org {AMS}\n@revoked * {AMS}\nams.example.org {SFO}\n")

    assert _lines(known_host_keys([path], "ams.example.org")) == [SFO]


def test_cert_authority_and_broken_lines_are_skipped(tmp_path: Path) -> None:
    text = (
        f"@cert-authority *.example.org {AMS}\n"
        "# a comment\n"
        "ams.example.org ssh-ed25519 not-base64!\n"
        "ams.example.org\n"
        "ams.example.org sk-ssh-ed25519@openssh.com AAAA\n"
        f"ams.example.org {SFO}\n"
    )
    path = _write(tmp_path, text)

    assert _lines(known_host_keys([path], "ams.example.org")) == [SFO]


def test_missing_files_are_skipped_and_several_files_add_up(tmp_path: Path) -> None:
    first = _write(tmp_path, f"ams.example.org {AMS}\n")
    second = tmp_path / "second"
    second.write_text(f"ams.example.org {SFO}\n")

    keys = known_host_keys([tmp_path / "absent", first, second], "ams.example.org")

    assert _lines(keys) == [AMS, SFO]


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "key.pub"
    path.write_text(AMS + "\n")
    shown = subprocess.run(
        ["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    key = known_host_keys([_write(tmp_path, f"h {AMS}\n")], "h")[0]

    assert fingerprint(key) == shown


@pytest.mark.parametrize("name", ["", "h", "[h]:22"])
def test_an_empty_file_trusts_nothing(tmp_path: Path, name: str) -> None:
    assert known_host_keys([_write(tmp_path, "")], name) == []
