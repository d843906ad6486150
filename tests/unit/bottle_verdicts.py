"""Verdicts over a small wget bottle tree (one arm64_sonoma bottle), as three vantages saw it,
for the report, attestation, re-check and ledger tests. Built with tofu3.verdict.decide, so
every verdict here is one tofu3 could have reached."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from tofu3.digest import Digest, hex_of
from tofu3.observation import (
    ArtifactKind,
    Expected,
    Failure,
    FailureKind,
    Observation,
    VantageRun,
)
from tofu3.reference import parse_reference
from tofu3.verdict import Verdict, decide

WGET = "ghcr.io/homebrew/core/wget:1.24.5"
INDEX = Digest("sha256:" + "1" * 64)
MANIFEST = Digest("sha256:" + "2" * 64)
CONFIG = Digest("sha256:" + "3" * 64)
BOTTLE = Digest("sha256:a394e9bfcb1d0ea2a22f1d19322e2b8f5f3b419dcdeb5bbb373114455d8b1472")
EVIL = Digest("sha256:" + "e" * 64)
MOVED_INDEX = Digest("sha256:" + "9" * 64)
PLATFORM = "darwin/arm64 (arm64_sonoma)"
BOTTLE_FILE = "wget--1.24.5.arm64_sonoma.bottle.tar.gz"
VANTAGES = ("ams", "sfo", "sgp")
WHEN = datetime(2026, 11, 27, 3, 0, 23, tzinfo=timezone.utc)


def tree(root: Digest = INDEX, layer: Digest = BOTTLE) -> tuple[Observation, ...]:
    """What one vantage saw: the index, the bottle's manifest, its config and its layer."""
    return (
        Observation(
            key="root",
            kind=ArtifactKind.INDEX,
            platform=None,
            expected=Expected(None, None, None),
            digest=root,
            size=12_434,
            media_type="application/vnd.oci.image.index.v1+json",
            status=200,
            remote_ip="140.82.112.33",
            url="https://ghcr.io/v2/homebrew/core/wget/manifests/1.24.5",
        ),
        Observation(
            key=PLATFORM,
            kind=ArtifactKind.MANIFEST,
            platform=PLATFORM,
            expected=Expected(MANIFEST, 2523, "application/vnd.oci.image.manifest.v1+json"),
            digest=MANIFEST,
            size=2523,
            media_type="application/vnd.oci.image.manifest.v1+json",
            status=200,
            remote_ip="140.82.112.33",
            annotations={
                "org.opencontainers.image.ref.name": "1.24.5.arm64_sonoma",
                "sh.brew.bottle.digest": hex_of(BOTTLE),
                "sh.brew.tab": '{"homebrew_version":"4.2.0"}',
            },
        ),
        Observation(
            key=f"{PLATFORM}/config",
            kind=ArtifactKind.CONFIG,
            platform=PLATFORM,
            expected=Expected(CONFIG, 220, "application/vnd.oci.image.config.v1+json"),
            digest=CONFIG,
            size=220,
            media_type="application/vnd.oci.image.config.v1+json",
            status=200,
            remote_ip="185.199.108.154",
        ),
        Observation(
            key=f"{PLATFORM}/layer[0]",
            kind=ArtifactKind.LAYER,
            platform=PLATFORM,
            expected=Expected(BOTTLE, 26_846, "application/vnd.oci.image.layer.v1.tar+gzip"),
            digest=layer,
            size=26_846,
            media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            status=200,
            remote_ip="185.199.108.154",
            url="https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:a394",
            annotations={"org.opencontainers.image.title": BOTTLE_FILE},
        ),
    )


def run(name: str, observations: tuple[Observation, ...]) -> VantageRun:
    """A vantage that finished."""
    return VantageRun(
        name=name,
        host=f"{name}.example.net:22",
        curl_version="8.5.0",
        hash_tool="sha256sum",
        host_key_fingerprint="SHA256:" + "A" * 43,
        observations=tuple(sorted(observations, key=lambda o: o.key)),
        duration=2.407,
    )


def honest(reference: str = WGET, root: Digest = INDEX) -> Verdict:
    """All three vantages saw the same, correct tree: accepted."""
    return decide(parse_reference(reference), [run(n, tree(root)) for n in VANTAGES])


def one_vantage_served_another_layer() -> Verdict:
    """sgp received other bytes for the bottle: rejected."""
    runs = [run(n, tree()) for n in VANTAGES[:2]] + [run("sgp", tree(layer=EVIL))]
    return decide(parse_reference(WGET), runs)


def one_vantage_unreachable() -> Verdict:
    """sgp could not be reached: inconclusive."""
    runs = [run(n, tree()) for n in VANTAGES[:2]]
    failure = Failure(FailureKind.TRANSPORT, "VANTAGE_UNREACHABLE", "connection refused")
    runs.append(replace(run("sgp", ()), failure=failure, curl_version="", hash_tool=""))
    return decide(parse_reference(WGET), runs)


def nothing_seen() -> Verdict:
    """No vantage got anywhere."""
    failure = Failure(FailureKind.TRANSPORT, "VANTAGE_UNREACHABLE", "connection refused")
    return decide(parse_reference(WGET), [replace(run(n, ()), failure=failure) for n in VANTAGES])
