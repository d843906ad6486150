"""The lab's ``library/alpine:3.19``: a Docker manifest list as Docker Hub serves one.

Two images (linux/amd64, linux/arm64/v8) in Docker schema 2, and one attestation entry in
the style of BuildKit: an OCI manifest for platform unknown/unknown whose layer is an in-toto
statement about the amd64 image. Root filesystems are tiny deterministic tarballs.
"""

from __future__ import annotations

import datetime
from typing import Any

from tofu3.digest import Digest, hex_of
from tofu3.lab.store import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    IN_TOTO,
    OCI_CONFIG,
    StoreBuilder,
    TarMember,
    compact_json,
    descriptor,
    docker_json,
    pseudo_random,
    tarball,
)
from tofu3.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST

REPOSITORY = "library/alpine"
TAG = "3.19"
RELEASE = "3.19.1"
CREATED = "2024-01-27T00:07:30Z"
_MTIME = int(datetime.datetime.fromisoformat(CREATED.replace("Z", "+00:00")).timestamp())

# (architecture, variant) of each image, in Docker Hub's order.
PLATFORMS: tuple[tuple[str, str | None], ...] = (("amd64", None), ("arm64", "v8"))


def add_alpine(builder: StoreBuilder, *, swapped: bool = False) -> Digest:
    """Add the alpine manifest list, its images and attestation; tag and return the list.

    With ``swapped``, the amd64 image has a different root filesystem (and the attestation
    speaks of that image): a consistent tree a targeted attacker could serve.
    """
    entries: list[dict[str, Any]] = []
    for architecture, variant in PLATFORMS:
        manifest = _add_image(builder, architecture, variant, swapped=swapped)
        digest = builder.add_manifest(REPOSITORY, DOCKER_MANIFEST, manifest)
        platform: dict[str, str] = {"architecture": architecture, "os": "linux"}
        if variant is not None:
            platform["variant"] = variant
        entries.append(_docker_descriptor(DOCKER_MANIFEST, digest, len(manifest), platform))

    subject = Digest(entries[0]["digest"])
    attestation = _add_attestation(builder, subject)
    attestation_digest = builder.add_manifest(REPOSITORY, OCI_MANIFEST, attestation)
    entry = _docker_descriptor(
        OCI_MANIFEST,
        attestation_digest,
        len(attestation),
        {"architecture": "unknown", "os": "unknown"},
    )
    entry["annotations"] = {
        "vnd.docker.reference.digest": subject,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    entries.append(entry)

    manifest_list = docker_json(
        {"manifests": entries, "mediaType": DOCKER_MANIFEST_LIST, "schemaVersion": 2}
    )
    digest = builder.add_manifest(REPOSITORY, DOCKER_MANIFEST_LIST, manifest_list)
    builder.add_tag(REPOSITORY, TAG, digest)
    return digest


def _add_image(
    builder: StoreBuilder, architecture: str, variant: str | None, *, swapped: bool
) -> bytes:
    """Add one image's layer and config; return its schema 2 manifest."""
    seed = f"tofu3 lab alpine {RELEASE} {architecture}"
    if swapped and architecture == "amd64":
        seed += " swapped"
    loader = f"lib/ld-musl-{'x86_64' if architecture == 'amd64' else 'aarch64'}.so.1"
    layer = tarball(
        [
            TarMember("bin/busybox", pseudo_random(seed + " busybox", 40 * 1024), 0o755),
            TarMember("etc/alpine-release", f"{RELEASE}\n".encode()),
            TarMember("etc/os-release", _OS_RELEASE.encode()),
            TarMember(loader, pseudo_random(seed + " musl", 8 * 1024), 0o755),
        ],
        _MTIME,
    )
    layer_digest = builder.add_blob(REPOSITORY, layer.gzipped, layer=True)
    config: dict[str, Any] = {
        "architecture": architecture,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "created": CREATED,
        "history": [
            {
                "created": CREATED,
                "created_by": f"/bin/sh -c #(nop) ADD file:{hex_of(layer.diff_id)} in / ",
            },
            {
                "created": CREATED,
                "created_by": '/bin/sh -c #(nop)  CMD ["/bin/sh"]',
                "empty_layer": True,
            },
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    if variant is not None:
        config["variant"] = variant
    config_bytes = compact_json(config)
    config_digest = builder.add_blob(REPOSITORY, config_bytes, layer=False)
    return docker_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": _docker_descriptor(DOCKER_CONFIG, config_digest, len(config_bytes)),
            "layers": [_docker_descriptor(DOCKER_LAYER_GZIP, layer_digest, len(layer.gzipped))],
        }
    )


def _add_attestation(builder: StoreBuilder, subject: Digest) -> bytes:
    """Add an in-toto provenance statement about ``subject``; return its OCI manifest."""
    statement = compact_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [
                {
                    "name": f"pkg:docker/alpine@{TAG}?platform=linux%2Famd64",
                    "digest": {"sha256": hex_of(subject)},
                }
            ],
            "predicate": {
                "builder": {"id": "https://tofu3.invalid/lab"},
                "buildType": "https://mobyproject.org/buildkit@v1",
                "metadata": {"buildFinishedOn": CREATED, "reproducible": True},
            },
        }
    )
    statement_digest = builder.add_blob(REPOSITORY, statement, layer=True)
    config = compact_json(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [statement_digest]},
        }
    )
    config_digest = builder.add_blob(REPOSITORY, config, layer=False)
    layer = descriptor(IN_TOTO, statement_digest, len(statement))
    layer["annotations"] = {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
    return compact_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config_digest, len(config)),
            "layers": [layer],
        }
    )


def _docker_descriptor(
    media_type: str, digest: Digest, size: int, platform: dict[str, str] | None = None
) -> dict[str, Any]:
    # Docker's distribution writes mediaType, size, digest (Go struct order), then platform.
    result: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest}
    if platform is not None:
        result["platform"] = platform
    return result


_OS_RELEASE = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19 (tofu3 lab)"
HOME_URL="https://alpinelinux.org/"
"""
