"""A dropbear vantage: ``/usr/sbin/dropbear`` (Debian's dropbear-bin) in the foreground, with
its own ed25519 host key, logging in one user by the keys in that user's own
``~/.ssh/authorized_keys``, as on a router or a small VPS.

The daemon runs as the user it logs in (an unprivileged dropbear can log in only its own
user), so the sessions it serves can signal dropbear's own per-connection process, which
shares their process group: on OpenWrt both are root. A session that signals its process group
(``kill -TERM 0``) thereby ends its own connection, as it would there.

Like the lab's sshd vantages, it is started in a session of its own and ended by pid, after
checking the pid's start time (tofu3.lab.sshd.end_process).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tofu3.lab.sshd import end_process, process_start_ticks

DROPBEAR = Path("/usr/sbin/dropbear")
DROPBEARKEY = Path("/usr/bin/dropbearkey")
START_TIMEOUT = 10.0

# The Popen objects of the daemons started here, so that an ended one is reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class DropbearError(Exception):
    """dropbear or dropbearkey did not do what was asked."""


@dataclass(frozen=True)
class DropbearVantage:
    """A running dropbear."""

    name: str
    address: str
    port: int
    pid: int
    start_ticks: int | None
    host_public_key: str  # "ssh-ed25519 AAAA...", ready to pin in an inventory
    directory: Path
    log_path: Path

    def stop(self) -> bool:
        """End the daemon (SIGTERM, then SIGKILL). Returns whether it was still running.
        Per-connection processes are its children and are not ended here."""
        was_running = end_process(self.pid, self.start_ticks)
        child = _CHILDREN.pop(self.pid, None)
        if child is not None:
            child.poll()
        return was_running


def host_key(path: Path) -> str:
    """Make a dropbear ed25519 host key at ``path`` unless one is there; return its public key
    in OpenSSH form ("ssh-ed25519 AAAA...")."""
    if not path.exists():
        made = subprocess.run(
            [str(DROPBEARKEY), "-t", "ed25519", "-f", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise DropbearError(f"dropbearkey could not make {path}: {made.stderr.strip()}")
    shown = subprocess.run(
        [str(DROPBEARKEY), "-y", "-f", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in shown.stdout.splitlines():
        if line.startswith("ssh-"):
            return " ".join(line.split()[:2])
    raise DropbearError(f"dropbearkey -y printed no public key for {path}: {shown.stderr.strip()}")


def authorize(user: pwd.struct_passwd, public_key: str) -> None:
    """Write ``public_key`` as the only key in the user's ~/.ssh/authorized_keys, with the
    modes and owner dropbear insists on (home and ~/.ssh not writable by others)."""
    home = Path(user.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    # "restrict": no forwarding, agent, X11 or pty for this key, as on the lab's sshd vantages.
    keys.write_text(f"restrict {public_key.strip()}\n", encoding="utf-8")
    for path, mode in ((home, 0o755), (ssh_dir, 0o700), (keys, 0o600)):
        path.chmod(mode)
        # An unprivileged dropbear must be able to read the file itself.
        os.chown(path, user.pw_uid, user.pw_gid)


def start_dropbear(
    directory: Path, name: str, address: str, port: int, user: pwd.struct_passwd
) -> DropbearVantage:
    """Start dropbear on ``address:port`` as ``user`` (who must be authorised already, see
    :func:`authorize`) and wait until it sends its banner."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, user.pw_uid, user.pw_gid)
    key_path = directory / "dropbear_ed25519_host_key"
    public = host_key(key_path)
    os.chown(key_path, user.pw_uid, user.pw_gid)
    log_path = directory / "dropbear.log"
    command = [
        str(DROPBEAR),
        "-F",  # foreground
        "-E",  # log to stderr
        "-s",  # keys only
        "-j",  # no local port forwarding
        "-k",  # no remote port forwarding
        "-p",
        f"{address}:{port}",
        "-r",
        str(key_path),
        "-P",
        str(directory / "dropbear.pid"),
    ]
    with log_path.open("ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=directory,
            env={"PATH": "/usr/bin:/bin", "HOME": user.pw_dir, "USER": user.pw_name},
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    vantage = DropbearVantage(
        name=name,
        address=address,
        port=port,
        pid=process.pid,
        start_ticks=process_start_ticks(process.pid),
        host_public_key=public,
        directory=directory,
        log_path=log_path,
    )
    try:
        _wait_for_banner(process, address, port)
    except BaseException as error:
        vantage.stop()
        log_text = log_path.read_bytes()[log_start:].decode("utf-8", "replace")
        raise DropbearError(f"dropbear for {name} did not start: {error}\n{log_text}") from error
    return vantage


def _wait_for_banner(process: subprocess.Popen[bytes], address: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DropbearError(f"dropbear exited with status {process.returncode}")
        try:
            with socket.create_connection((address, port), timeout=1.0) as connection:
                banner = connection.recv(256)
            # The port was free a moment ago; only this daemon answers as dropbear.
            if banner.startswith(b"SSH-") and b"dropbear" in banner:
                return
            last = f"unexpected banner {banner[:40]!r}"
        except OSError as error:
            last = str(error)
        time.sleep(0.05)
    raise DropbearError(f"not answering on {address}:{port} after {START_TIMEOUT:.0f} s: {last}")
