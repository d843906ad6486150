"""The session's working directory: the first of ``$TMPDIR``, /tmp, /var/tmp and ~/.cache in
which a private directory (mode 700, a name nobody could have guessed) with a FIFO in it can
be made; removed, with everything in it, when the session ends. With none of them usable the
session is refused as WorkingDirectoryUnavailable (inconclusive), naming what it tried.

Making /tmp or /var/tmp unwritable takes root: those tests run the shell in a mount namespace
of its own (``unshare --mount``) with read-only bind mounts, and fail without root."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.unit.local_https import MANIFEST, LocalRegistry, registry
from tests.unit.local_vantage import Vantage, local_vantage, vantage_in
from tofu3.errors import TransportError, WorkingDirectoryUnavailable
from tofu3.remote.port import BlobRequest, FetchRequest, Request

__all__ = ["registry"]  # a fixture, imported for pytest

_NAME_RE = re.compile(r"tofu3-[0-9a-f]{32}")


def _works(vantage: Vantage, registry: LocalRegistry) -> None:
    """A fetch and a download run in the directory chosen."""
    (response,) = vantage.session.fetch(
        [FetchRequest(Request(registry.url("/manifest")), 4096, "manifest")], jobs=1
    )
    assert response.body == MANIFEST
    vantage.session.download([BlobRequest(Request(registry.url("/blob")), "sha256", "b")], jobs=1)
    assert list(vantage.directory.iterdir()) == []


def test_the_working_directory_is_made_in_tmpdir_when_it_is_set_and_writable(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        directory = vantage.directory
        assert directory.parent == tmp_path / "tmp"
        assert _NAME_RE.fullmatch(directory.name)
        assert directory.stat().st_mode & 0o777 == 0o700
        _works(vantage, registry)

    assert not directory.exists()


def test_every_session_has_a_new_directory_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    env = {"TMPDIR": str(tmp_path)}

    with (
        local_vantage(tmp_path / "home", env=env) as first,
        local_vantage(tmp_path / "home", env=env) as second,
    ):
        assert first.directory != second.directory
        assert first.directory.parent == second.directory.parent == tmp_path

    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_tmpdir_that_does_not_exist_is_passed_over_for_tmp(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    missing = tmp_path / "no-such-dir"

    with local_vantage(
        tmp_path / "home", curl_args=registry.curl_args, env={"TMPDIR": str(missing)}
    ) as vantage:
        directory = vantage.directory
        assert directory.parent == Path("/tmp")
        assert _NAME_RE.fullmatch(directory.name)
        _works(vantage, registry)

    assert not directory.exists()
    assert not missing.exists()


# --- Unwritable candidates, in a mount namespace of the shell's own (root) -------------------


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory outside /tmp (which the tests hide or make read-only), removed after."""
    if os.geteuid() != 0:
        pytest.fail("read-only /tmp and /var/tmp need a mount namespace, which needs root")
    directory = Path(tempfile.mkdtemp(prefix="tofu3-unit-workdir-", dir="/var/tmp"))
    try:
        for name in ("home", "tmpdir", "private-tmp"):
            (directory / name).mkdir()
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _namespace(
    *,
    read_only: Sequence[str | Path] = (),
    writable: Sequence[str | Path] = (),
    over_tmp: Path | None = None,
) -> list[str]:
    """``unshare --mount`` and the mounts to make in it before the login shell starts:
    ``over_tmp`` bound on /tmp (so what the session leaves in /tmp is seen there), each of
    ``read_only`` made read-only, then each of ``writable`` made writable again."""
    mount, unshare = shutil.which("mount"), shutil.which("unshare")
    assert mount is not None and unshare is not None
    steps = []
    if over_tmp is not None:
        steps.append(f"{mount} --bind {shlex.quote(str(over_tmp))} /tmp")
    for path in read_only:
        quoted = shlex.quote(str(path))
        steps += [f"{mount} --bind {quoted} {quoted}", f"{mount} -o remount,bind,ro {quoted}"]
    for path in writable:
        quoted = shlex.quote(str(path))
        steps += [f"{mount} --bind {quoted} {quoted}", f"{mount} -o remount,bind,rw {quoted}"]
    script = " && ".join([*steps, 'exec "$@"'])
    return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "ns"]


@pytest.mark.root
def test_a_tmpdir_that_is_not_writable_is_passed_over_for_tmp(
    registry: LocalRegistry, base: Path
) -> None:
    tmpdir, private_tmp = base / "tmpdir", base / "private-tmp"
    wrapper = _namespace(over_tmp=private_tmp, read_only=[tmpdir])
    # The registry's CA lives under the real /tmp, which the namespace hides.
    ca = base / "ca.pem"
    shutil.copyfile(registry.ca, ca)
    curl_args = [str(ca) if arg == str(registry.ca) else arg for arg in registry.curl_args]

    with local_vantage(
        base / "home", curl_args=curl_args, env={"TMPDIR": str(tmpdir)}, wrapper=wrapper
    ) as vantage:
        directory = vantage.directory  # as the vantage sees it
        assert directory.parent == Path("/tmp")
        assert [p.name for p in private_tmp.iterdir()] == [directory.name]
        _works_in(vantage, registry, private_tmp / directory.name)

    assert list(private_tmp.iterdir()) == []  # nothing left in /tmp
    assert list(tmpdir.iterdir()) == []


def _works_in(vantage: Vantage, registry: LocalRegistry, seen_from_here: Path) -> None:
    (response,) = vantage.session.fetch(
        [FetchRequest(Request(registry.url("/manifest")), 4096, "manifest")], jobs=1
    )
    assert response.body == MANIFEST
    vantage.session.download([BlobRequest(Request(registry.url("/blob")), "sha256", "b")], jobs=1)
    assert list(seen_from_here.iterdir()) == []


@pytest.mark.root
def test_with_tmp_unwritable_var_tmp_is_used(registry: LocalRegistry, base: Path) -> None:
    wrapper = _namespace(read_only=["/tmp"])

    with local_vantage(base / "home", curl_args=registry.curl_args, wrapper=wrapper) as vantage:
        directory = vantage.directory
        assert directory.parent == Path("/var/tmp")
        _works(vantage, registry)

    assert not directory.exists()


@pytest.mark.root
def test_the_last_resort_is_a_cache_directory_in_home(registry: LocalRegistry, base: Path) -> None:
    home = base / "home"
    wrapper = _namespace(read_only=["/tmp", "/var/tmp"], writable=[home])

    with local_vantage(home, curl_args=registry.curl_args, wrapper=wrapper) as vantage:
        directory = vantage.directory
        assert directory.parent == home / ".cache"
        assert (home / ".cache").stat().st_mode & 0o777 == 0o700
        _works(vantage, registry)

    assert list((home / ".cache").iterdir()) == []


@pytest.mark.root
@pytest.mark.parametrize("tmpdir_set", [True, False], ids=["tmpdir-set", "tmpdir-unset"])
def test_with_no_usable_directory_the_session_is_refused_naming_what_it_tried(
    registry: LocalRegistry, base: Path, tmpdir_set: bool
) -> None:
    home, tmpdir = base / "home", base / "tmpdir"
    # /var/tmp read-only makes the home (under it) read-only too.
    wrapper = _namespace(read_only=[tmpdir, "/tmp", "/var/tmp"])
    env = {"TMPDIR": str(tmpdir)} if tmpdir_set else {}

    with (
        pytest.raises(WorkingDirectoryUnavailable) as raised,
        local_vantage(home, curl_args=registry.curl_args, env=env, wrapper=wrapper),
    ):
        pass

    message = str(raised.value)
    first = str(tmpdir) if tmpdir_set else "$TMPDIR (unset)"
    assert f"tried {first}, /tmp, /var/tmp, {home}/.cache;" in message
    assert "set TMPDIR" in message
    assert isinstance(raised.value, TransportError)  # inconclusive: says nothing of the artifact
    assert not (home / ".cache").exists()
    assert list(tmpdir.iterdir()) == []
