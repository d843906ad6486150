"""What the bench verifies: images of random layers and a Homebrew-shaped index, pushed into
the CNCF distribution registry through its own API, and the list of downloads each one takes
(which the bare baseline replays by hand).

Layers are pseudo-random bytes from a fixed seed: incompressible, and the same digests on
every run.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.distribution import (
    OCI_CONFIG,
    WGET_TAG,
    Blob,
    DistributionRegistry,
    Manifest,
    bottle_tree,
    canonical_json,
    push_blob,
    push_manifest,
    stand_in_bottle,
)
from tofu3.lab.bottles import BOTTLE_TAGS
from tofu3.oci.media_types import OCI_MANIFEST

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
PUSH_TIMEOUT = 600.0
"""Seconds one push request may take (a 256 MiB layer onto a busy disk)."""

MiB = 1024 * 1024

BOTTLE_PAYLOAD_BYTES = 256 * 1024
"""Random bytes in each stand-in bottle (real wget bottles are about 1.6 MB)."""


@dataclass(frozen=True)
class Download:
    """One GET the artifact takes: a manifest (by tag or digest) or a blob, and the digest
    its bytes must hash to."""

    kind: str  # "manifests" or "blobs": the URL path segment
    reference: str  # tag or digest
    digest: str


@dataclass(frozen=True)
class Artifact:
    """A pushed artifact: its repository and tag, total blob bytes, and every download a
    verification of it takes, in the order a sequential client makes them."""

    repository: str
    tag: str
    blob_bytes: int
    downloads: tuple[Download, ...]

    def reference(self, registry_host: str) -> str:
        """The reference to verify: ``localhost:PORT/REPOSITORY:TAG``."""
        return f"{registry_host}/{self.repository}:{self.tag}"


def random_bytes(generator: random.Random, size: int) -> bytes:
    """``size`` bytes from ``generator``, made in pieces (``randbytes`` refuses 256 MiB)."""
    piece = 16 * MiB
    return b"".join(generator.randbytes(min(piece, size - at)) for at in range(0, size, piece))


def _client(registry: DistributionRegistry, ca_cert: Path) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(ca_cert))
    return httpx.Client(
        base_url=f"https://127.0.0.1:{registry.port}", verify=tls, timeout=PUSH_TIMEOUT
    )


def push_random_image(
    registry: DistributionRegistry,
    ca_cert: Path,
    repository: str,
    tag: str,
    *,
    layers: int,
    layer_bytes: int,
    seed: int,
) -> Artifact:
    """Push an OCI image of ``layers`` random layers of ``layer_bytes`` each, its config and
    its manifest (by tag). One layer is in memory at a time."""
    generator = random.Random(seed)
    layer_descriptors: list[dict[str, Any]] = []
    with _client(registry, ca_cert) as client:
        for _ in range(layers):
            data = random_bytes(generator, layer_bytes)
            push_blob(client, repository, data)
            # Only the descriptor is kept (digest and size), not the bytes.
            layer_descriptors.append(Blob(OCI_LAYER_TAR, data).descriptor())
            del data
        config = canonical_json(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {
                    "type": "layers",
                    # Uncompressed tar layers: the diff_id is the layer digest.
                    "diff_ids": [d["digest"] for d in layer_descriptors],
                },
            }
        )
        config_blob = Blob(OCI_CONFIG, config)
        push_blob(client, repository, config)
        manifest = Manifest(
            OCI_MANIFEST,
            canonical_json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config_blob.descriptor(),
                    "layers": layer_descriptors,
                }
            ),
        )
        push_manifest(client, repository, tag, manifest)
    downloads = [
        Download("manifests", tag, manifest.digest),
        Download("blobs", config_blob.digest, config_blob.digest),
        *(Download("blobs", d["digest"], d["digest"]) for d in layer_descriptors),
    ]
    return Artifact(
        repository=repository,
        tag=tag,
        blob_bytes=len(config) + layers * layer_bytes,
        downloads=tuple(downloads),
    )


def push_homebrew_index(
    registry: DistributionRegistry, ca_cert: Path, repository: str, *, seed: int
) -> Artifact:
    """Push an index shaped like Homebrew's wget 1.24.5 on ghcr.io: seven platform manifests,
    each with a config and one bottle layer (stand-in bottles of random bytes)."""
    generator = random.Random(seed)
    bottles = [
        stand_in_bottle(
            bottle.tag,
            bottle.os,
            bottle.architecture,
            {"bin/wget": generator.randbytes(BOTTLE_PAYLOAD_BYTES)},
            os_version=bottle.os_version,
        )
        # Homebrew's wget 1.24.5 bottles, as ghcr.io lists them (the lab serves the same).
        for bottle in BOTTLE_TAGS
    ]
    tree = bottle_tree(bottles)
    with _client(registry, ca_cert) as client:
        for blob in tree.blobs:
            push_blob(client, repository, blob.data)
        for manifest in tree.manifests:
            push_manifest(client, repository, manifest.digest, manifest)
        push_manifest(client, repository, WGET_TAG, tree.index)
    downloads = [
        Download("manifests", WGET_TAG, tree.index.digest),
        *(Download("manifests", m.digest, m.digest) for m in tree.manifests),
        *(Download("blobs", b.digest, b.digest) for b in tree.blobs),
    ]
    return Artifact(
        repository=repository,
        tag=WGET_TAG,
        blob_bytes=sum(len(b.data) for b in tree.blobs),
        downloads=tuple(downloads),
    )
