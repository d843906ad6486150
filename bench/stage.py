"""The stage the bench measures on: a loopback lab (three real sshd vantages), the CNCF
distribution registry with a lab-CA certificate, the latency proxy in front of it, and
inventories pointing the lab's vantages at either. Everything started here is registered on
an ExitStack and ended by pid when the stack closes."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from pathlib import Path

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
        Their sessions skip the login shell's rc files (the lab sets ``SetEnv SHLVL=1``)."""
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

    def start_proxy(self, registry: DistributionRegistry, delay_ms: float) -> int:
        """bench/latency_proxy.py in front of the registry; returns the port it listens on."""
        process = self.children.start(
            [
                sys.executable,
                "-m",
                "bench.latency_proxy",
                "--upstream",
                f"127.0.0.1:{registry.port}",
                "--delay-ms",
                str(delay_ms),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        self.stack.callback(self.children.end, process)
        assert process.stdout is not None
        self.stack.callback(process.stdout.close)
        ready, _, _ = select.select([process.stdout], [], [], PROXY_START_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            raise RunFailed(f"the latency proxy did not start (it said {line!r})")
        port = int(line.split()[1])
        say(f"latency proxy +{delay_ms:g} ms on 127.0.0.1:{port} (pid {process.pid})")
        return port

    def inventory(self, lab: LabState, name: str, registry_host: str, port: int) -> Path:
        """The lab inventory, with each vantage's curl sent to 127.0.0.1:``port`` for the
        registry (the lab inventory already has --cacert for the lab CA)."""
        extra = {
            v.name: ["--connect-to", f"{registry_host}:127.0.0.1:{port}"] for v in lab.vantages
        }
        return write_inventory(lab, self.workdir / name, curl_args_extra=extra)
