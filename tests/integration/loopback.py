"""A loopback lab for one test module (three real sshd vantages and the lab registry, no
network namespaces), and the coordinator-side routes to it for ``tofu3 fetch``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tofu3.lab.manager import LabMode, LabState, lab_down, lab_status, lab_up
from tofu3.lab.netns import SERVICE_HOSTS
from tofu3.lab.sshd import end_process

HTTPS_PORT = 443


@contextmanager
def loopback_lab(directory: Path) -> Iterator[LabState]:
    """``lab up`` in loopback mode; ``lab down`` at the end, then any process of it that is
    somehow still alive is ended by its pid."""
    try:
        yield lab_up(directory, mode=LabMode.LOOPBACK)
    finally:
        stop_lab(directory)


def stop_lab(directory: Path) -> None:
    """``lab down`` for the lab in ``directory``; then, whatever happened, every process
    state.json recorded that is still alive is ended by its pid."""
    try:
        lab_down(directory)
    finally:
        for process in lab_status(directory).processes:
            if process.alive:  # alive means: still the process the lab started
                end_process(process.pid)


def coordinator_routes(
    state: LabState, overrides: Mapping[str, tuple[str, int]] | None = None
) -> list[str]:
    """``tofu3 fetch`` options that reach the lab from the coordinator as the lab inventory
    reaches it from the vantages: ``--cacert`` with the lab CA and one ``--connect-to`` per
    real host name; ``overrides`` maps a host name to another (address, port)."""
    assert state.registry is not None
    args = ["--cacert", str(state.ca_cert)]
    for host, role in SERVICE_HOSTS.items():
        address, port = (overrides or {}).get(host, state.registry.ports[role])
        args += ["--connect-to", f"{host}:{HTTPS_PORT}:{address}:{port}"]
    return args
