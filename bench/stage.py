"""The stage the bench measures on: a loopback lab (three real sshd vantages), the CNCF
distribution registry with a lab-CA certificate, the latency proxies in front of it, a
forwarder in front of each vantage's sshd for the far case, and inventories pointing the
lab's vantages at the registry or a proxy, directly or through the forwarders. Everything
started here is registered on an ExitStack and ended by pid when the stack closes."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from pathlib import Path

from bench.links import FarLink, FarLinks
from bench.measure import REPO, RunFailed
from bench.processes import Children
from tests.integration.distribution import (
    DOCKER_REGISTRY,
    DistributionRegistry,
    start_distribution_registry,
)
from tests.integration.loopback import stop_lab
from tofu3.lab.manager import LabMode, LabState, lab_up, write_inventory
from tofu3.lab.pki import ensure_pki

PROXY_START_TIMEOUT = 20.0
"""Seconds the latency proxy has to say which port it listens on."""

# What would change how tofu3 draws on a terminal, whatever the user's shell has set.
_DROPPED_ENV = frozenset(
    {"NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"}
)


def say(text: str) -> None:
    """A progress line on stderr."""
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


def child_environment(workdir: Path) -> dict[str, str]:
    """The environment of every child: the user's, without colour and terminal overrides,
    with a ledger of the bench's own and no ~/.ssh/config."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["TOFU3_STATE_DIR"] = str(workdir / "state")
    env["TOFU3_SSH_CONFIG"] = os.devnull
    env["TERM"] = "xterm-256color"
    return env


class Stage:
    """Starts the bench's services; each is stopped when ``stack`` closes."""

    def __init__(
        self,
        workdir: Path,
        children: Children,
        stack: contextlib.ExitStack,
    ) -> None:
        self.workdir = workdir
        self.children = children
        self.stack = stack
        self.env = child_environment(workdir)

    def start_lab(self) -> LabState:
        """A loopback lab: three real sshd vantages (and the lab's own registry, unused).
        Their sessions run the login shell with its rc files, as on any vantage."""
        directory = self.workdir / "lab"
        self.stack.callback(stop_lab, directory)
        state = lab_up(directory, LabMode.LOOPBACK)
        say(
            "lab vantages: "
            + ", ".join(f"{v.name} {v.address}:{v.port} (sshd pid {v.pid})" for v in state.vantages)
        )
        return state

    def start_registry(self, lab: LabState) -> DistributionRegistry:
        """docker-registry on loopback with a certificate from the lab CA."""
        if not DOCKER_REGISTRY.is_file():
            raise RunFailed(f"{DOCKER_REGISTRY} is missing: install Debian's docker-registry")
        pki = ensure_pki(lab.directory)  # the lab's own CA, reused as it is
        registry = start_distribution_registry(
            self.workdir / "registry", ca_cert=pki.ca_cert, ca_key=pki.ca_key
        )
        self.stack.callback(registry.stop)
        say(f"docker-registry on 127.0.0.1:{registry.port} (pid {registry.pid})")
        return registry

    def start_proxy(
        self,
        upstream: tuple[str, int],
        delay_ms: float,
        *,
        reply_delay_ms: float = 0.0,
        listen: str = "127.0.0.1",
        log: Path | None = None,
    ) -> int:
        """bench/latency_proxy.py on ``listen`` (a free port) in front of ``upstream``, holding
        client->server bytes ``delay_ms`` and server->client bytes ``reply_delay_ms``; returns
        the port it listens on. With ``log`` it logs every chunk there (for the turn count)."""
        argv = [
            sys.executable,
            "-m",
            "bench.latency_proxy",
            "--listen",
            f"{listen}:0",
            "--upstream",
            f"{upstream[0]}:{upstream[1]}",
            "--delay-ms",
            str(delay_ms),
            "--reply-delay-ms",
            str(reply_delay_ms),
        ]
        if log is not None:
            argv += ["--log", str(log)]
        process = self.children.start(argv, env=self.env, stdout=subprocess.PIPE, cwd=REPO)
        self.stack.callback(self.children.end, process)
        assert process.stdout is not None
        self.stack.callback(process.stdout.close)
        ready, _, _ = select.select([process.stdout], [], [], PROXY_START_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            raise RunFailed(f"the latency proxy did not start (it said {line!r})")
        port = int(line.split()[1])
        if reply_delay_ms == 0:
            delays = f"+{delay_ms:g} ms"
        elif reply_delay_ms == delay_ms:
            delays = f"+{delay_ms:g} ms each way"
        else:
            delays = f"+{delay_ms:g} ms up, +{reply_delay_ms:g} ms down"
        say(
            f"latency proxy {delays} on {listen}:{port} to {upstream[0]}:{upstream[1]} "
            f"(pid {process.pid})"
        )
        return port

    def start_far_links(self, lab: LabState, one_way_ms: float) -> FarLinks:
        """One forwarder per vantage, on the vantage's own address, in front of its sshd,
        holding bytes ``one_way_ms`` in each direction; each logs its chunks."""
        links = []
        for vantage in lab.vantages:
            log = self.workdir / f"far-link-{vantage.name}.log"
            port = self.start_proxy(
                (vantage.address, vantage.port),
                one_way_ms,
                reply_delay_ms=one_way_ms,
                listen=vantage.address,
                log=log,
            )
            links.append(FarLink(vantage.name, vantage.address, port, log))
        return FarLinks(tuple(links))

    def inventory(
        self,
        lab: LabState,
        name: str,
        registry_host: str,
        port: int,
        far_links: FarLinks | None = None,
    ) -> Path:
        """The lab inventory, with each vantage's curl sent to 127.0.0.1:``port`` for the
        registry (the lab inventory already has --cacert for the lab CA). With ``far_links``,
        each vantage's host and port are its forwarder's; its pinned host key stays, since
        the same sshd answers."""
        extra = {
            v.name: ["--connect-to", f"{registry_host}:127.0.0.1:{port}"] for v in lab.vantages
        }
        if far_links is not None:
            lab = far_links.through(lab)
        return write_inventory(lab, self.workdir / name, curl_args_extra=extra)
