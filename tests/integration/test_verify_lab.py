"""tofu3 verify end to end against the lab: three real sshd vantages, real curl, a registry
that behaves like ghcr.io and Docker Hub. Each test is a promise or an attack."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ALPINE, WGET, Lab, run_cli

pytestmark = pytest.mark.integration

BOTTLE_TAGS = {
    "arm64_sonoma",
    "arm64_ventura",
    "arm64_monterey",
    "sonoma",
    "ventura",
    "monterey",
    "x86_64_linux",
}


def _codes(report: dict[str, Any]) -> set[str]:
    return {finding["code"] for finding in report["findings"]}


def _findings(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [finding for finding in report["findings"] if finding["code"] == code]


def _edited_inventory(lab: Lab, tmp_path: Path, name: str, **changes: object) -> Path:
    """A copy of the lab inventory with one vantage's keys changed (None removes a key)."""
    document = yaml.safe_load(lab.inventory.read_text())
    for vantage in document["vantages"]:
        if vantage["name"] == name:
            for key, value in changes.items():
                if value is None:
                    vantage.pop(key, None)
                else:
                    vantage[key] = value
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _closed_port(address: str) -> int:
    """A port nothing listens on at ``address``: the kernel's free pick where this process
    can bind there; inside a vantage's namespace, the discard port, which nothing serves."""
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
            return int(sock.getsockname()[1])
    except OSError:
        return 9


def test_honest_verification_is_accepted_and_prints_the_pinned_reference(
    honest_lab: Lab,
) -> None:
    result = honest_lab.run("verify", WGET, "-i", str(honest_lab.inventory))

    assert result.code == 0, result.stderr
    assert "ACCEPTED" in result.stdout
    pinned = re.search(r"ghcr\.io/homebrew/core/wget@sha256:[0-9a-f]{64}", result.stdout)
    assert pinned is not None, result.stdout


def test_honest_json_report_follows_the_contract(honest_lab: Lab, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--json", "--report", str(report_file)
    )

    assert result.code == 0, result.stderr
    report = result.json()
    assert report == yaml.safe_load(report_file.read_text())
    assert report["schema"] == "tofu3.report/v1"
    assert report["verdict"] == "accepted"
    assert report["reference"] == WGET
    assert report["resolved"]["registry"] == "ghcr.io"
    assert report["resolved"]["repository"] == "homebrew/core/wget"
    assert report["resolved"]["tag"] == "1.24.5"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", report["resolved"]["digest"])
    assert [v["name"] for v in report["vantages"]] == ["ams", "sfo", "sgp"]
    assert all(v["ok"] and v["curl_version"] and v["error"] is None for v in report["vantages"])
    kinds = [a["kind"] for a in report["artifacts"]]
    assert kinds.count("index") == 1
    assert kinds.count("manifest") == 7
    assert kinds.count("layer") == 7
    for artifact in report["artifacts"]:
        assert artifact["agreed"] is True
        assert set(artifact["observations"]) == {"ams", "sfo", "sgp"}
        assert {o["digest"] for o in artifact["observations"].values()} == {artifact["digest"]}
    assert report["findings"] == []


def test_one_vantage_served_a_different_layer_is_rejected_naming_layer_and_vantage(
    honest_lab: Lab,
) -> None:
    honest_lab.tamper("sgp", "blob")

    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "arm64_sonoma"
    )
    as_json = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "arm64_sonoma", "--json"
    )

    assert result.code == 1
    assert "REJECTED" in result.stdout
    assert "sgp" in result.stdout and "layer" in result.stdout
    report = as_json.json()
    assert as_json.code == 1 and report["verdict"] == "rejected"
    mismatches = _findings(report, "DIGEST_MISMATCH")
    assert mismatches and {f["vantage"] for f in mismatches} == {"sgp"}
    assert all("layer" in f["artifact"] for f in mismatches)
    disagreements = _findings(report, "VANTAGE_DISAGREEMENT")
    assert disagreements and disagreements[0]["vantage"] == "sgp"
    layer = next(a for a in report["artifacts"] if a["kind"] == "layer")
    assert layer["agreed"] is False
    assert layer["observations"]["ams"]["digest"] == layer["observations"]["sfo"]["digest"]
    assert layer["observations"]["sgp"]["digest"] != layer["observations"]["ams"]["digest"]
    assert report["pinned_reference"] is None


def test_tag_answered_with_a_different_tree_for_one_vantage_is_rejected(honest_lab: Lab) -> None:
    honest_lab.tamper("ams", "tag")

    result = honest_lab.run("verify", WGET, "-i", str(honest_lab.inventory), "--json")

    assert result.code == 1
    report = result.json()
    assert report["verdict"] == "rejected"
    root = next(a for a in report["artifacts"] if a["key"] == "root")
    assert root["agreed"] is False
    root_disagreement = [
        f for f in _findings(report, "VANTAGE_DISAGREEMENT") if f["artifact"] == "root"
    ]
    assert root_disagreement and root_disagreement[0]["vantage"] == "ams"
    # The tampered tree is internally consistent: no digest on ams contradicts its descriptor.
    assert not _findings(report, "DIGEST_MISMATCH")


def test_manifest_bytes_altered_for_one_vantage_are_rejected(honest_lab: Lab) -> None:
    honest_lab.tamper("sfo", "manifest")

    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "x86_64_linux", "--json"
    )

    assert result.code == 1
    report = result.json()
    assert report["verdict"] == "rejected"
    assert any(f["vantage"] == "sfo" for f in _findings(report, "DIGEST_MISMATCH"))
    sfo = next(v for v in report["vantages"] if v["name"] == "sfo")
    assert sfo["ok"] is False and sfo["error_code"] == "DIGEST_MISMATCH"


def test_one_vantage_down_is_inconclusive_never_accepted(honest_lab: Lab, tmp_path: Path) -> None:
    sgp = honest_lab.state.vantage("sgp")
    inventory = _edited_inventory(honest_lab, tmp_path, "sgp", port=_closed_port(sgp.address))

    result = honest_lab.run("verify", WGET, "-i", str(inventory), "--json")

    assert result.code == 3
    report = result.json()
    assert report["verdict"] == "inconclusive"
    assert report["pinned_reference"] is None
    unreachable = _findings(report, "VANTAGE_UNREACHABLE")
    assert [f["vantage"] for f in unreachable] == ["sgp"]
    assert {v["name"]: v["ok"] for v in report["vantages"]} == {
        "ams": True,
        "sfo": True,
        "sgp": False,
    }


def test_unknown_host_key_stops_with_exit_2_and_prints_the_line_to_pin(
    honest_lab: Lab, tmp_path: Path
) -> None:
    inventory = _edited_inventory(honest_lab, tmp_path, "sfo", host_key=None)
    home = tmp_path / "home"
    home.mkdir()
    expected_key = honest_lab.state.vantage("sfo").host_key

    result = honest_lab.run("verify", WGET, "-i", str(inventory), env={"HOME": str(home)})

    assert result.code == 2
    assert "unknown host key" in result.stderr
    assert re.search(r"SHA256:[A-Za-z0-9+/]{43}", result.stderr)
    assert f'host_key: "{expected_key}"' in result.stderr
    assert "ACCEPTED" not in result.stdout and "REJECTED" not in result.stdout
    assert not (home / ".ssh" / "known_hosts").exists(), "a host key was added"


def test_host_key_that_does_not_match_the_pin_is_refused(honest_lab: Lab, tmp_path: Path) -> None:
    wrong_key = honest_lab.state.vantage("ams").host_key
    inventory = _edited_inventory(honest_lab, tmp_path, "sgp", host_key=wrong_key)

    result = honest_lab.run("verify", WGET, "-i", str(inventory))

    assert result.code == 2
    assert "does not match" in result.stderr and "sgp" in result.stderr


def test_bottle_tag_platform_filter_verifies_only_that_bottle(honest_lab: Lab) -> None:
    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "arm64_sonoma", "--json"
    )

    assert result.code == 0, result.stderr
    report = result.json()
    platforms = {a["platform"] for a in report["artifacts"] if a["kind"] != "index"}
    assert platforms == {"darwin/arm64 (arm64_sonoma)"}


def test_default_verifies_every_bottle_platform(honest_lab: Lab) -> None:
    result = honest_lab.run("verify", WGET, "-i", str(honest_lab.inventory), "--json")

    report = result.json()
    manifests = [a for a in report["artifacts"] if a["kind"] == "manifest"]
    tags = {re.search(r"\((\w+)\)", a["platform"]).group(1) for a in manifests}  # type: ignore[union-attr]
    assert tags == BOTTLE_TAGS


def test_platform_that_matches_nothing_is_a_usage_error(honest_lab: Lab) -> None:
    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "windows/amd64"
    )

    assert result.code == 2
    assert "matches nothing" in result.stderr and "arm64_sonoma" in result.stderr


def test_docker_hub_image_with_attestation_is_accepted(honest_lab: Lab) -> None:
    result = honest_lab.run("verify", "alpine:3.19", "-i", str(honest_lab.inventory), "--json")

    assert result.code == 0, result.stderr
    report = result.json()
    assert report["resolved"]["registry"] == "docker.io"
    assert report["resolved"]["registry_host"] == "registry-1.docker.io"
    assert report["resolved"]["repository"] == "library/alpine"
    root = report["artifacts"][0]
    assert root["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert any(a["platform"].startswith("attestation") for a in report["artifacts"][1:])


def test_platform_filter_never_chooses_an_attestation(honest_lab: Lab) -> None:
    result = honest_lab.run(
        "verify", ALPINE, "-i", str(honest_lab.inventory), "--platform", "linux/amd64", "--json"
    )

    assert result.code == 0, result.stderr
    platforms = {a["platform"] for a in result.json()["artifacts"] if a["kind"] != "index"}
    assert platforms == {"linux/amd64"}


def test_report_is_written_whatever_the_verdict(honest_lab: Lab, tmp_path: Path) -> None:
    honest_lab.tamper("sgp", "blob")
    report_file = tmp_path / "evidence.json"

    result = honest_lab.run(
        "verify", WGET, "-i", str(honest_lab.inventory), "--platform", "sonoma",
        "--report", str(report_file),
    )  # fmt: skip

    assert result.code == 1
    assert yaml.safe_load(report_file.read_text())["verdict"] == "rejected"
    assert not list(tmp_path.glob(".evidence.json.*")), "a temporary file was left behind"


def test_several_references_exit_with_the_worst_and_print_an_array(honest_lab: Lab) -> None:
    result = honest_lab.run(
        "verify", WGET, "alpine:3.19", "-i", str(honest_lab.inventory), "--json"
    )
    with_bad = honest_lab.run(
        "verify", "alpine:3.19", "Alpine:3.19", "-i", str(honest_lab.inventory), "--json"
    )
    honest_lab.tamper("ams", "blob")
    with_rejected = honest_lab.run(
        "verify", "Alpine:3.19", "alpine:3.19", "-i", str(honest_lab.inventory), "--json"
    )

    assert result.code == 0
    assert [r["verdict"] for r in result.json()] == ["accepted", "accepted"]
    assert with_bad.code == 2
    assert "lowercase" in with_bad.stderr
    assert with_rejected.code == 1


def test_invalid_reference_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = run_cli(["verify", "ghcr.io/Homebrew/core/wget:1.24.5", "-i", "/nonexistent"])
    traversal = run_cli(["verify", "ghcr.io/homebrew/core/wget@sha256:../../etc/passwd"])

    assert result.code == 2
    assert "lowercase" in result.stderr
    assert "Traceback" not in result.stderr
    assert traversal.code == 2
    assert "Traceback" not in traversal.stderr


def test_missing_inventory_is_a_clear_configuration_error(tmp_path: Path) -> None:
    result = run_cli(["verify", WGET, "-i", str(tmp_path / "missing.yaml")])

    assert result.code == 2
    assert "inventory not found" in result.stderr
    assert "Traceback" not in result.stderr
