"""DNS poisoning of one vantage: its registry, token and CDN names resolve to an impostor
registry whose certificate the lab CA signed (as a public CA may mis-issue one), serving a
tree consistent in itself. TLS, digests and sizes all check out on that vantage; only the
comparison with the other vantages shows the lie.

In a netns lab the poison is the vantage's own /etc/hosts (/etc/netns/tofu3-NAME/hosts); in a
loopback lab, where vantages share the host's resolver, it is curl's --connect-to."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.attacks import verify
from tests.integration.conftest import WGET, lab_modes
from tofu3.lab import netns
from tofu3.lab.impostor import (
    IMPOSTOR_ADDRESSES,
    IMPOSTOR_DIRECTORY,
    IMPOSTOR_RECORD,
    Impostor,
    connect_to_impostor,
)
from tofu3.lab.manager import (
    LabMode,
    LabState,
    lab_down,
    lab_impostor_up,
    lab_poison,
    lab_up,
    write_inventory,
)
from tofu3.lab.sshd import process_alive

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class PoisonLab:
    """A lab with an impostor registry running beside it."""

    state: LabState
    impostor: Impostor


@pytest.fixture(scope="module", params=lab_modes())
def poison_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PoisonLab]:
    mode: LabMode = request.param
    directory = tmp_path_factory.mktemp(f"dns-lab-{mode.value}")
    try:
        state = lab_up(directory, mode)
        yield PoisonLab(state, lab_impostor_up(directory))
    finally:
        lab_down(directory)


def _poisoned_inventory(lab: PoisonLab, vantage: str, path: Path) -> Path:
    """The inventory to verify with while ``vantage`` is poisoned (and poison it)."""
    if lab.state.mode is LabMode.NETNS:
        lab_poison(vantage, True, lab.state.directory)
        return lab.state.inventory_path
    extra = {vantage: connect_to_impostor(lab.impostor)}
    return write_inventory(lab.state, path, curl_args_extra=extra)


def _impostor_clients(lab: PoisonLab) -> set[str]:
    log = lab.state.directory / IMPOSTOR_DIRECTORY / "registry.log"
    lines = log.read_text(encoding="utf-8").splitlines()
    return {line.split()[2] for line in lines if " GET " in line}


def test_dns_poisoning_of_one_vantage_toward_an_impostor_registry_is_rejected(
    poison_lab: PoisonLab, tmp_path: Path
) -> None:
    inventory = _poisoned_inventory(poison_lab, "sgp", tmp_path / "inventory.yaml")
    try:
        run = verify(poison_lab.state.directory, WGET, inventory)
    finally:
        if poison_lab.state.mode is LabMode.NETNS:
            lab_poison("sgp", False, poison_lab.state.directory)

    assert run.code == 1 and run.verdict == "rejected"
    root = [f for f in run.findings("VANTAGE_DISAGREEMENT") if f["artifact"] == "root"]
    assert root and root[0]["vantage"] == "sgp"
    # Everything sgp received held together: TLS was trusted, every digest matched.
    assert run.vantage("sgp")["ok"] is True
    assert not run.findings("DIGEST_MISMATCH") and not run.findings("SIZE_MISMATCH")
    # Only sgp reached the impostor (its log records each client's address).
    assert _impostor_clients(poison_lab) == {poison_lab.state.vantage("sgp").source_ip}
    if poison_lab.state.mode is LabMode.NETNS:
        assert set(run.vantage("sgp")["remote_ips"]) <= set(IMPOSTOR_ADDRESSES.values())
        assert set(run.vantage("ams")["remote_ips"]) <= set(netns.SERVICE_ADDRESSES.values())
    assert run.report["pinned_reference"] is None


def test_vantage_whose_resolver_is_restored_is_accepted_again(poison_lab: PoisonLab) -> None:
    if poison_lab.state.mode is LabMode.NETNS:
        hosts = (netns.NETNS_ETC / "tofu3-sgp" / "hosts").read_text(encoding="utf-8")
        assert not any(address in hosts for address in IMPOSTOR_ADDRESSES.values())

    run = verify(poison_lab.state.directory, WGET, poison_lab.state.inventory_path)

    assert run.code == 0 and run.verdict == "accepted"


def test_lab_down_stops_the_impostor_and_leaves_nothing_behind(poison_lab: PoisonLab) -> None:
    directory = poison_lab.state.directory

    stopped = lab_down(directory)

    assert f"impostor registry (pid {poison_lab.impostor.pid})" in stopped
    assert not process_alive(poison_lab.impostor.pid, poison_lab.impostor.start_ticks)
    assert not (directory / IMPOSTOR_RECORD).exists()
    if poison_lab.state.mode is LabMode.NETNS:
        assert netns.leftovers() == []
