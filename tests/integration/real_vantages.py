"""Vantages built like real ones: other login shells (zsh, fish, tcsh, busybox ash on a
busybox-only PATH), rc files that talk on stdout and stderr, a read-only /tmp, dropbear, and
OpenSSH with ``MaxSessions 1``.

A test gets an inventory of three vantages: two ordinary lab vantages and "the odd one", which
keeps the replaced lab vantage's name and ``curl_args`` (so ``lab tamper NAME ...`` still
targets it: the lab registry knows a vantage by its curl's ``--interface`` source address) but
is served by a daemon of its own, with its own address, port and pinned host key, logging in a
system user made for that kind of vantage.

Needs root: system users (made once per test session, removed at the end), and a root sshd to
log them in. Every daemon started here is ended by pid, with its per-connection children;
what the odd vantage's user still runs afterwards is listed (a test fails on it) and ended.
"""

from __future__ import annotations

import contextlib
import enum
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from tests.integration.conftest import WGET, CliResult
from tests.integration.dropbear import authorize, start_dropbear
from tofu3.lab.manager import LabState, lab_tamper
from tofu3.lab.sshd import ensure_client_key, free_port, start_vantage

ODD = "sgp"
"""The lab vantage that each test replaces with a vantage of another kind."""

MARKER = "tofu3 real-vantage test user, pid "
"""The GECOS field of every user made here starts so and ends with the test process's pid:
how a leftover of a run that could not clean up is recognised (its pid is gone)."""

NOISE = "tofu3-rc-noise"
"""In every line the noisy rc files print."""

FAKE_DIGEST = "5ca1ab1e" * 8
"""A line of sha256sum output that a noisy rc file prints: it must never count as a hash."""

LINGER_SECONDS = 5.0
"""How long what tofu3 started on a vantage may outlive the coordinator's end."""

VERIFY_TIMEOUT = 60.0
"""Seconds a ``tofu3 verify`` may take here before the test fails."""

BASE_PARENT = Path("/var/tmp")
BASE_PREFIX = "tofu3-real-vantages-"
"""A test session's users' homes, the busybox PATH and the odd vantages' files are in
BASE_PARENT/BASE_PREFIX<pid>-<random>: not pytest's tmp_path, which is private to root."""

BUSYBOX = Path("/bin/busybox")
CURL = Path("/usr/bin/curl")
REQUIRED = {
    "/usr/bin/zsh": "zsh",
    "/usr/bin/fish": "fish",
    "/usr/bin/tcsh": "tcsh",
    str(BUSYBOX): "busybox",
    "/usr/sbin/dropbear": "dropbear-bin",
    "/usr/bin/dropbearkey": "dropbear-bin",
    "/usr/bin/ssh": "openssh-client",
    "/usr/bin/unshare": "util-linux",
    "/usr/sbin/useradd": "passwd",
}
"""What these tests run, and the Debian package each comes in."""
READONLY_TMP_PREFIX = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -o bind,ro /tmp /tmp && exec "$@"',
    "sh",
)
"""The read-only-/tmp vantage's sshd runs in a mount namespace of its own in which /tmp is
bound read-only onto itself: every session it serves sees the same files, unwritable."""


class Kind(str, enum.Enum):
    """What the odd vantage is."""

    BASH = "bash"  # the control: OpenSSH, bash, quiet rc files, a user of its own
    ZSH = "zsh"
    FISH = "fish"
    TCSH = "tcsh"
    BUSYBOX = "busybox"  # busybox ash, PATH: busybox applets and curl, nothing else
    NOISY_BASH = "noisy-bash"  # ~/.bashrc, ~/.profile, ~/.bash_profile print
    NOISY_ZSH = "noisy-zsh"  # ~/.zshenv prints
    READONLY_TMP = "readonly-tmp"
    DROPBEAR = "dropbear"
    MAX_SESSIONS_1 = "max-sessions-1"


# Kind: (the end of its user's name, login shell; None for the busybox ash made in the set-up).
# The names start with t3rv and 4 hex digits of the test session's own, so that test sessions
# running side by side (a developer's and CI's) have users of their own.
_USERS: dict[Kind, tuple[str, str | None]] = {
    Kind.BASH: ("bash", "/bin/bash"),
    Kind.ZSH: ("zsh", "/usr/bin/zsh"),
    Kind.FISH: ("fish", "/usr/bin/fish"),
    Kind.TCSH: ("tcsh", "/usr/bin/tcsh"),
    Kind.BUSYBOX: ("ash", None),
    Kind.NOISY_BASH: ("nbash", "/bin/bash"),
    Kind.NOISY_ZSH: ("nzsh", "/usr/bin/zsh"),
    Kind.READONLY_TMP: ("rotmp", "/bin/bash"),
    Kind.DROPBEAR: ("drop", "/bin/bash"),
    Kind.MAX_SESSIONS_1: ("maxs", "/bin/bash"),
}

_BASH_NOISE = f"""echo "Welcome to $(hostname) ({{file}}) {NOISE}"
echo "warning: something ({{file}}) {NOISE}" >&2
echo "{FAKE_DIGEST}  -"
"""
_ZSH_NOISE = f"""print "Welcome to $HOST (.zshenv) {NOISE}"
print -u2 "warning: something (.zshenv) {NOISE}"
print "{FAKE_DIGEST}  -"
printf 'a partial line on stderr (.zshenv) {NOISE}' >&2
"""
_RC_FILES: dict[Kind, dict[str, str]] = {
    Kind.NOISY_BASH: {
        name: _BASH_NOISE.format(file=name) for name in (".bashrc", ".profile", ".bash_profile")
    },
    Kind.NOISY_ZSH: {".zshenv": _ZSH_NOISE},
}

_FORBIDDEN_ON_BUSYBOX_PATH = ("bash", "dash", "openssl", "coreutils", "shasum", "perl", "python3")


@dataclass(frozen=True)
class VantageUser:
    """A system user that the odd vantage of one kind logs in."""

    kind: Kind
    name: str
    uid: int
    gid: int
    home: Path
    shell: str

    @property
    def passwd(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.name)


@dataclass(frozen=True)
class RealVantageSetup:
    """What a test session made once: a base directory every user can traverse, the busybox
    PATH directory, and the users."""

    base: Path
    busybox_bin: Path
    users: Mapping[Kind, VantageUser]


@dataclass(frozen=True)
class UserProcess:
    pid: int
    ppid: int
    start_ticks: int | None
    comm: str
    cmdline: str

    def __str__(self) -> str:
        command = self.cmdline if len(self.cmdline) <= 160 else self.cmdline[:157] + "..."
        return f"pid {self.pid} (ppid {self.ppid}) {self.comm}: {command}"


class Daemon(Protocol):
    """An sshd or a dropbear started for the odd vantage."""

    @property
    def pid(self) -> int: ...

    @property
    def start_ticks(self) -> int | None: ...

    @property
    def host_public_key(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    def stop(self) -> bool: ...


# Processes and files of a user, from /proc and the temporary directories.


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    try:
        return int(stat[stat.rfind(")") + 2 :].split()[19])
    except (IndexError, ValueError):
        return None


def _process(pid: int, status: dict[str, str]) -> UserProcess:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    return UserProcess(
        pid=pid,
        ppid=int(status.get("PPid", "0") or 0),
        start_ticks=_start_ticks(pid),
        comm=status.get("Name", "?"),
        cmdline=raw.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
    )


def processes_of(uid: int, exclude: Sequence[int] = ()) -> list[UserProcess]:
    """Every live process running as ``uid`` (real or effective), but those in ``exclude``.
    Zombies have ended already and are not listed."""
    found: list[UserProcess] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        status = _proc_status(int(entry.name))
        uids = status.get("Uid", "").split()
        if len(uids) < 2 or str(uid) not in uids[:2] or status.get("State", "Z")[:1] in "ZX":
            continue
        found.append(_process(int(entry.name), status))
    return sorted(found, key=lambda p: p.pid)


def descendants(pid: int) -> list[UserProcess]:
    """Every live descendant of ``pid``, of any user (an sshd's per-connection processes)."""
    children: dict[int, list[UserProcess]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            status = _proc_status(int(entry.name))
            if status and status.get("State", "Z")[:1] not in "ZX":
                process = _process(int(entry.name), status)
                children.setdefault(process.ppid, []).append(process)
    found: list[UserProcess] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def end_processes(processes: Sequence[UserProcess]) -> None:
    """SIGKILL each process that is still the one listed (its start time unchanged)."""
    for process in processes:
        if _start_ticks(process.pid) == process.start_ticks:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(
        _start_ticks(p.pid) == p.start_ticks and _proc_status(p.pid).get("State", "Z")[:1] != "Z"
        for p in processes
    ):
        time.sleep(0.05)


def temp_entries_of(user: VantageUser) -> set[Path]:
    """What ``user`` owns directly in /tmp, /var/tmp and ~/.cache: where a vantage session
    makes its working directory."""
    found: set[Path] = set()
    for directory in (Path("/tmp"), Path("/var/tmp"), user.home / ".cache"):
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.lstat().st_uid == user.uid:
                    found.add(entry)
            except OSError:
                continue
    return found


# The session's users.


def _run_root(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")


def _remove_user(name: str) -> None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    end_processes(processes_of(entry.pw_uid))
    _run_root("userdel", "--force", name)


def _make_busybox_bin(directory: Path) -> Path:
    """A directory of symlinks to busybox, one per applet, and curl: a PATH as on Alpine with
    curl installed, without bash, coreutils or openssl."""
    directory.mkdir()
    directory.chmod(0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "sh" in applets and "sha256sum" in applets, applets
    for applet in applets:
        (directory / applet).symlink_to(BUSYBOX)
    (directory / "curl").symlink_to(CURL)
    for name in _FORBIDDEN_ON_BUSYBOX_PATH:
        assert not (directory / name).exists(), f"{name} would be on the busybox PATH"
    return directory


def _make_user(kind: Kind, prefix: str, base: Path, busybox_bin: Path) -> VantageUser:
    short, shell = _USERS[kind]
    name = f"{prefix}-{short}"
    shell = shell or str(busybox_bin / "ash")
    home = base / "home" / name
    # "*": no password, yet not a locked account (which a non-PAM sshd refuses to log in).
    _run_root("useradd", "--no-create-home", "--home-dir", str(home), "--shell", shell,
              "--password", "*", "--comment", f"{MARKER}{os.getpid()}",
              "--user-group", name)  # fmt: skip
    entry = pwd.getpwnam(name)
    home.parent.mkdir(exist_ok=True)
    home.parent.chmod(0o755)  # whatever the umask: every user must reach their home
    home.mkdir()
    home.chmod(0o755)
    for rc_name, text in _RC_FILES.get(kind, {}).items():
        (home / rc_name).write_text(text, encoding="utf-8")
        os.chown(home / rc_name, entry.pw_uid, entry.pw_gid)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return VantageUser(kind, name, entry.pw_uid, entry.pw_gid, home, shell)


def _remove_leftovers() -> None:
    """Users and base directories of a test session that has gone without removing them."""
    for entry in pwd.getpwall():
        owner = entry.pw_gecos.removeprefix(MARKER)
        if owner != entry.pw_gecos and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _remove_user(entry.pw_name)
    for directory in BASE_PARENT.glob(f"{BASE_PREFIX}*-*"):
        owner = directory.name.removeprefix(BASE_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def real_vantage_setup() -> Iterator[RealVantageSetup]:
    """The users of every kind, made once per test session and removed at its end (with
    anything they still run), in a base directory under /var/tmp that they can all reach."""
    if os.geteuid() != 0:
        pytest.fail("vantages built like real ones need root (system users, a root sshd)")
    missing = sorted({package for path, package in REQUIRED.items() if not Path(path).exists()})
    if missing:
        pytest.fail(f"not installed: {' '.join(missing)} (apt-get install {' '.join(missing)})")
    _remove_leftovers()
    base = Path(tempfile.mkdtemp(prefix=f"{BASE_PREFIX}{os.getpid()}-", dir=BASE_PARENT))
    base.chmod(0o755)
    prefix = "t3rv" + secrets.token_hex(2)
    users: dict[Kind, VantageUser] = {}
    try:
        busybox_bin = _make_busybox_bin(base / "busybox-bin")
        for kind in Kind:
            users[kind] = _make_user(kind, prefix, base, busybox_bin)
        yield RealVantageSetup(base=base, busybox_bin=busybox_bin, users=users)
    finally:
        for kind in Kind:
            _remove_user(f"{prefix}-{_USERS[kind][0]}")
        shutil.rmtree(base, ignore_errors=True)


# The odd vantage.


@dataclass
class OddVantage:
    """The odd vantage of one test, and an inventory with it in place of ``ODD``."""

    kind: Kind
    user: VantageUser
    address: str
    daemon: Daemon
    directory: Path
    port: int
    inventory: Path
    lab: LabState
    known_hosts: Path
    client_key: Path
    temp_before: set[Path] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The inventory name: the replaced lab vantage's, which ``lab tamper`` knows."""
        return ODD

    def processes(self) -> list[UserProcess]:
        """What the vantage's user runs now, apart from the daemon (a dropbear runs as the
        user it logs in): shells, curl, hashers, and per-connection daemon processes."""
        return processes_of(self.user.uid, exclude=[self.daemon.pid])

    def wait_for_no_processes(self, timeout: float = LINGER_SECONDS) -> list[UserProcess]:
        """Wait up to ``timeout`` seconds for the user to run nothing; what is left then."""
        deadline = time.monotonic() + timeout
        left = self.processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.processes()
        return left

    def new_temp_entries(self, timeout: float = LINGER_SECONDS) -> set[Path]:
        """What the user has made in /tmp, /var/tmp or ~/.cache since the vantage started and
        has not removed within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        new = temp_entries_of(self.user) - self.temp_before
        while new and time.monotonic() < deadline:
            time.sleep(0.1)
            new = temp_entries_of(self.user) - self.temp_before
        return new

    def assert_nothing_left(self) -> None:
        """Once tofu3 has ended: within a few seconds nothing runs as the vantage's user and
        no working directory of it is left."""
        left = self.wait_for_no_processes()
        assert not left, (
            f"{len(left)} process(es) of {self.user.name} on the {self.kind.value} vantage "
            f"outlived tofu3 by {LINGER_SECONDS:.0f} s:\n" + "\n".join(map(str, left))
        )
        files = self.new_temp_entries()
        assert not files, f"left on the {self.kind.value} vantage: {sorted(map(str, files))}"

    def ssh(self, command: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """``command`` through the system ssh client, pinning the daemon's host key."""
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", f"IdentityFile={self.client_key}", "-o", "IdentityAgent=none",
             "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
             "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
             "-p", str(self.port), f"{self.user.name}@{self.address}", command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )  # fmt: skip

    def stop(self) -> list[UserProcess]:
        """End the daemon and its per-connection processes by pid, then whatever else still
        runs as the user; return what had to be ended besides the daemon."""
        connections = descendants(self.daemon.pid)
        self.daemon.stop()
        end_processes(connections)
        stray = self.processes()
        end_processes(stray)
        remaining = self.processes()
        assert not remaining, f"could not end: {remaining}"
        for path in temp_entries_of(self.user) - self.temp_before:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return connections + stray


def odd_address(kind: Kind) -> str:
    """Each kind its own loopback address (none the lab or other tests use)."""
    return f"127.0.0.{61 + list(Kind).index(kind)}"


def start_odd_vantage(
    setup: RealVantageSetup, lab: LabState, kind: Kind, directory: Path
) -> OddVantage:
    """Start the odd vantage of ``kind`` and write an inventory with it in place of ``ODD``."""
    user = setup.users[kind]
    address = odd_address(kind)
    port = free_port(address)
    client = ensure_client_key(lab.directory)
    daemon: Daemon
    if kind is Kind.DROPBEAR:
        authorize(user.passwd, client.public_key)
        daemon = start_dropbear(directory / "dropbear", ODD, address, port, user.passwd)
    else:
        extra: list[str] = []
        prefix: Sequence[str] = ()
        if kind is Kind.BUSYBOX:
            extra.append(f"SetEnv PATH={setup.busybox_bin}")
        elif kind is Kind.MAX_SESSIONS_1:
            extra.append("MaxSessions 1")
        elif kind is Kind.READONLY_TMP:
            prefix = READONLY_TMP_PREFIX
        sshd = start_vantage(
            directory / "sshd",
            ODD,
            address,
            port,
            client.public_key,
            user=user.name,
            extra_config=extra,
            command_prefix=prefix,
        )
        # sshd reads authorized_keys as the user logging in.
        (sshd.directory / "authorized_keys").chmod(0o644)
        sshd.directory.chmod(0o755)
        daemon = sshd
    try:
        # The lab directory is private to root: the vantage's curl gets a copy of the CA.
        ca_copy = directory / "ca.pem"
        shutil.copyfile(lab.ca_cert, ca_copy)
        ca_copy.chmod(0o644)
        inventory = _odd_inventory(
            lab, directory, user, address=address, port=port, daemon=daemon, ca_copy=ca_copy
        )
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[{address}]:{port} {daemon.host_public_key}\n")
        odd = OddVantage(
            kind=kind,
            user=user,
            address=address,
            daemon=daemon,
            directory=directory,
            port=port,
            inventory=inventory,
            lab=lab,
            known_hosts=known_hosts,
            client_key=client.private_key,
        )
        # One login first: it shows the vantage works before tofu3 is blamed for anything,
        # and a shell's first-run files (fish's) are then not taken for tofu3's.
        warm = odd.ssh("exit 0")
        if warm.returncode != 0:
            raise RuntimeError(
                f"cannot log in to the {kind.value} vantage: {warm.stderr}\n"
                + daemon.log_path.read_text(errors="replace")[-3000:]
            )
        if odd.wait_for_no_processes():
            raise RuntimeError(f"the {kind.value} vantage's login left: {odd.processes()}")
        odd.temp_before = temp_entries_of(user)
    except BaseException:
        daemon.stop()
        raise
    return odd


def _odd_inventory(
    lab: LabState,
    directory: Path,
    user: VantageUser,
    *,
    address: str,
    port: int,
    daemon: Daemon,
    ca_copy: Path,
) -> Path:
    document: dict[str, Any] = yaml.safe_load(lab.inventory_path.read_text())
    entries = [v for v in document["vantages"] if v["name"] != ODD]
    (replaced,) = [v for v in document["vantages"] if v["name"] == ODD]
    curl_args = list(replaced["curl_args"])
    curl_args[curl_args.index("--cacert") + 1] = str(ca_copy)
    assert "--interface" in curl_args  # how the lab registry (and its tamper) knows it
    entries.append(
        {
            "name": ODD,
            "host": address,
            "port": port,
            "user": user.name,
            "host_key": daemon.host_public_key,
            "curl_args": curl_args,
            "note": f"real-vantage test: {user.kind.value}",
        }
    )
    document["vantages"] = entries
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def odd_vantage(
    request: pytest.FixtureRequest,
    real_vantage_setup: RealVantageSetup,
    loopback_lab: LabState,
) -> Iterator[OddVantage]:
    """The odd vantage of the kind the test is parametrised with (``indirect``); stopped
    afterwards, with every process of its user, and the lab's tamper switch on it cleared."""
    kind = Kind(request.param)
    lab_tamper(ODD, None, loopback_lab.directory)
    directory = Path(tempfile.mkdtemp(prefix=f"odd-{kind.value}-", dir=real_vantage_setup.base))
    directory.chmod(0o755)
    odd = start_odd_vantage(real_vantage_setup, loopback_lab, kind, directory)
    try:
        yield odd
    finally:
        try:
            odd.stop()
        finally:
            lab_tamper(ODD, None, loopback_lab.directory)


# Running tofu3.


def cli_environment(lab: LabState) -> dict[str, str]:
    """The environment conftest.run_cli gives tofu3."""
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "TOFU3_LAB_DIR": str(lab.directory)}


def run_verify(odd: OddVantage, *args: str, timeout: float = VERIFY_TIMEOUT) -> CliResult:
    """``tofu3 verify WGET -i INVENTORY --json ARGS``, as conftest.run_cli runs the CLI, but
    failing the test after ``timeout`` seconds rather than waiting minutes."""
    command = [sys.executable, "-m", "tofu3", "verify", WGET, "-i", str(odd.inventory),
               "--json", *args]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=cli_environment(odd.lab),
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode(errors="replace") if expired.stderr else ""
        pytest.fail(f"tofu3 verify on the {odd.kind.value} vantage took over {timeout:.0f} s\n"
                    f"{stderr[-3000:]}")  # fmt: skip
    return CliResult(done.returncode, done.stdout, done.stderr)


def start_verify(odd: OddVantage, stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
    """The same verification, started in the background (output to files, so no pipe can
    fill up), for a test that interrupts it."""
    command = [sys.executable, "-m", "tofu3", "verify", WGET, "-i", str(odd.inventory),
               "--json"]  # fmt: skip
    with stdout.open("wb") as out, stderr.open("wb") as err:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=cli_environment(odd.lab)
        )
