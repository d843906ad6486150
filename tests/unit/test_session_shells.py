"""The session's command line is the fixed word list ``exec sh -s``, and the program comes on
stdin: whatever the vantage user's login shell (dash, bash, zsh, fish, tcsh, busybox ash),
it parses the command line alike, and the ``sh`` it starts reads the same program. Each runs
a level of manifests and a level of blobs here, with values that need quoting."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.unit.local_https import BLOB, MANIFEST, LocalRegistry, SeenRequest, registry, seen
from tests.unit.local_vantage import (
    BUSYBOX,
    HASH_TOOLS,
    PROGRAM_TOOLS,
    busybox_dir,
    tool_dir,
    vantage_in,
)
from tofu3.digest import digest_bytes
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry", "seen"]  # fixtures, imported for pytest

_TOKEN = "Bearer tok3n-for-every-shell"
# Quotes, expansions and history and glob characters: what any of the shells might expand.
_TRICKY = 'it\'s "quoted" $HOME `id` $(id) ${HOME} !! !$ ~ * ? [a] {a,b} % ^ \\ #'


_SH_IS = {"sh-is-bash": "/bin/bash", "sh-is-dash": "/bin/dash", "sh-is-zsh": "/usr/bin/zsh"}


def _shell(name: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The login shell, and the environment it runs in, for ``name``."""
    if name == "busybox":
        # busybox as a login shell: one path, named sh, to busybox; and a PATH of busybox
        # applets plus curl only, as on Alpine (its sh, its sha256sum, no openssl).
        (tmp_path / "login").mkdir()
        (tmp_path / "login" / "sh").symlink_to(BUSYBOX)
        return str(tmp_path / "login" / "sh"), {"PATH": str(busybox_dir(tmp_path / "bb"))}
    if name.startswith("sh-is-"):
        # A system whose sh is another shell (bash on RHEL; zsh, which emulates sh when
        # called so): the program runs in it.
        real = _SH_IS[name]
        tools = [t for t in PROGRAM_TOOLS + HASH_TOOLS if t != "sh"]
        path = tool_dir(tmp_path / "bin", tools)
        (path / "sh").symlink_to(real)
        return "/bin/sh", {"PATH": str(path)}
    shell = {
        "dash": "/bin/sh",
        "bash": "/bin/bash",
        "zsh": "/usr/bin/zsh",
        "fish": "/usr/bin/fish",
        "tcsh": "/usr/bin/tcsh",
    }[name]
    return shell, {}


@pytest.mark.parametrize(
    "name",
    ["dash", "bash", "zsh", "fish", "tcsh", "busybox", "sh-is-bash", "sh-is-dash", "sh-is-zsh"],
)
def test_the_program_parses_alike_in_every_login_shell(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path, name: str
) -> None:
    login_shell, env = _shell(name, tmp_path)
    headers = [("Authorization", _TOKEN), ("X-Test", _TRICKY)]
    fetches = [
        FetchRequest(Request(registry.url("/manifest"), headers), 4096, "manifest a"),
        FetchRequest(Request(registry.url("/missing"), headers), 4096, "manifest b"),
    ]
    blobs = [
        BlobRequest(Request(registry.url("/blob"), headers), "sha256", "blob a"),
        BlobRequest(Request(registry.url("/to-cdn"), headers), "sha512", "blob b"),
    ]

    with vantage_in(
        tmp_path, curl_args=registry.curl_args, login_shell=login_shell, env=env
    ) as vantage:
        facts = vantage.session.facts
        responses = vantage.session.fetch(fetches, jobs=2)
        downloads = vantage.session.download(blobs, jobs=2)
        assert list(vantage.directory.iterdir()) == []
        assert vantage.stream.argv == [login_shell, "-c", "exec sh -s"]

    assert facts.hash_tool == ("sha256sum" if name == "busybox" else "openssl")
    assert Path(facts.directory).parent == tmp_path / "tmp"
    assert facts.system == f"{os.uname().sysname} {os.uname().machine}"
    assert [r.connection.status for r in responses] == [200, 404]
    assert responses[0].body == MANIFEST
    assert [d.digest for d in downloads] == [
        digest_bytes(BLOB),
        f"sha512:{hashlib.sha512(BLOB).hexdigest()}",
    ]
    assert {s.x_test for s in seen} == {_TRICKY}
    assert [s.authorization for s in seen if s.host.startswith("cdn.test")] == [None]
