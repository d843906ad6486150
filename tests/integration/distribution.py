"""The CNCF distribution registry (Debian's ``docker-registry``) as a real registry to verify
against: started on loopback with TLS the lab CA vouches for, seeded through its own HTTP API
with a Homebrew-shaped tree around the real wget bottle, and stopped by pid.

It is not tofu3's code, which is the point: what tofu3 accepts and rejects here it accepts
and rejects against the registry people actually run. An open distribution registry answers
``GET /v2/`` with 200 and no challenge, and serves a blob from its storage without hashing it
again, so changing a blob's data file on disk is how an impostor instance lies.
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import signal
import ssl
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import yaml

from tests.shared_fixtures import VENTURA_BOTTLE
from tofu3.digest import digest_bytes
from tofu3.lab.pki import issue_server_cert
from tofu3.lab.sshd import free_port
from tofu3.oci.media_types import OCI_INDEX, OCI_MANIFEST

DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
START_TIMEOUT = 20.0
"""Seconds a new registry has to answer ``GET /v2/``."""
STOP_TIMEOUT = 10.0
"""Seconds a registry has to exit after SIGTERM, and again after SIGKILL."""
START_ATTEMPTS = 3
"""A free port found by probing can be taken before the registry binds it."""

BLOB_STORE = "docker/registry/v2/blobs"
"""Where, under its storage root, the filesystem driver keeps blob bytes."""

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

REAL_BOTTLE = VENTURA_BOTTLE
REAL_BOTTLE_DIGEST = "sha256:1b7e2f76c90553543a5e25dadf031c6fcfe280f52bf27d89e04006f9d33fd20b"
REAL_BOTTLE_SIZE = 1_613_406
WGET_REPOSITORY = "homebrew/core/wget"
WGET_TAG = "1.24.5"


def sha256(data: bytes) -> str:
    """The OCI digest of ``data``."""
    return digest_bytes(data)


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """Stable bytes for a document this module builds (sorted keys, no spaces)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# The content: an index over per-platform image manifests, as ghcr.io serves a formula.


@dataclass(frozen=True)
class Bottle:
    """One Homebrew bottle: its tag, the platform it is for, and its bytes."""

    tag: str  # Homebrew's bottle tag, e.g. "ventura"
    os: str
    architecture: str
    os_version: str | None
    data: bytes

    @property
    def digest(self) -> str:
        """The bottle's sha256 digest (the layer digest)."""
        return sha256(self.data)


@dataclass(frozen=True)
class Blob:
    """A blob and the descriptor that names it."""

    media_type: str
    data: bytes
    annotations: Mapping[str, str] | None = None

    @property
    def digest(self) -> str:
        """The blob's sha256 digest."""
        return sha256(self.data)

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor for this blob."""
        entry: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
        }
        if self.annotations:
            entry["annotations"] = dict(self.annotations)
        return entry


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes and media type."""

    media_type: str
    body: bytes

    @property
    def digest(self) -> str:
        """The sha256 digest of the exact bytes."""
        return sha256(self.body)


@dataclass(frozen=True)
class BottleTree:
    """Everything one tag needs in a registry, in the order a registry accepts it: blobs,
    then the platform manifests (by digest), then the index (by tag)."""

    blobs: tuple[Blob, ...]
    manifests: tuple[Manifest, ...]
    index: Manifest


def real_ventura_bottle() -> Bottle:
    """The real wget 1.24.5 bottle for macOS 13 on amd64, checked against its known digest."""
    data = REAL_BOTTLE.read_bytes()
    if sha256(data) != REAL_BOTTLE_DIGEST or len(data) != REAL_BOTTLE_SIZE:
        raise AssertionError(f"{REAL_BOTTLE} is not the real wget 1.24.5 ventura bottle")
    return Bottle("ventura", "darwin", "amd64", "macOS 13", data)


def stand_in_bottle(
    tag: str, os: str, architecture: str, files: Mapping[str, bytes], os_version: str | None = None
) -> Bottle:
    """A small, byte-for-byte reproducible bottle-shaped tar.gz holding ``files``: for a
    second platform (only one real bottle was captured) and for an impostor's own tree."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(f"wget/{WGET_TAG}/{name}")
            info.size = len(content)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return Bottle(tag, os, architecture, os_version, gzip.compress(buffer.getvalue(), mtime=0))


def bottle_tree(bottles: Sequence[Bottle]) -> BottleTree:
    """The OCI tree Homebrew publishes for ``wget:1.24.5``, one platform per bottle."""
    blobs: list[Blob] = []
    manifests: list[Manifest] = []
    entries: list[dict[str, Any]] = []
    for bottle in bottles:
        platform = {"architecture": bottle.architecture, "os": bottle.os}
        if bottle.os_version is not None:
            platform["os.version"] = bottle.os_version
        config = Blob(
            OCI_CONFIG,
            canonical_json(
                {
                    **platform,
                    "created": "2024-03-11T00:00:00Z",
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": [sha256(gzip.decompress(bottle.data))],
                    },
                }
            ),
        )
        title = f"wget--{WGET_TAG}.{bottle.tag}.bottle.tar.gz"
        layer = Blob(OCI_LAYER_GZIP, bottle.data, {"org.opencontainers.image.title": title})
        ref_name = f"{WGET_TAG}.{bottle.tag}"
        manifest = Manifest(
            OCI_MANIFEST,
            canonical_json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config.descriptor(),
                    "layers": [layer.descriptor()],
                    "annotations": {"org.opencontainers.image.ref.name": ref_name},
                }
            ),
        )
        blobs += [config, layer]
        manifests.append(manifest)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest.digest,
                "size": len(manifest.body),
                "platform": platform,
                "annotations": {
                    "org.opencontainers.image.ref.name": ref_name,
                    "sh.brew.bottle.digest": bottle.digest.removeprefix("sha256:"),
                    "sh.brew.bottle.size": str(len(bottle.data)),
                },
            }
        )
    index = Manifest(
        OCI_INDEX,
        canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": entries,
                "annotations": {
                    "com.github.package.type": "homebrew_bottle",
                    "org.opencontainers.image.ref.name": WGET_TAG,
                    "org.opencontainers.image.title": "wget",
                    "org.opencontainers.image.version": WGET_TAG,
                },
            }
        ),
    )
    return BottleTree(tuple(blobs), tuple(manifests), index)


# The registry process.


class DistributionRegistry:
    """One running ``docker-registry serve``, known by its pid; stop() ends it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        directory: Path,
        ca_cert: Path,
        log: IO[bytes],
    ) -> None:
        self._process = process
        self.port = port
        self.directory = directory
        self.storage = directory / "storage"
        self._ca_cert = ca_cert
        self._log = log

    @property
    def pid(self) -> int:
        """The registry's process id."""
        return self._process.pid

    @property
    def host(self) -> str:
        """The registry's name in a reference: ``localhost:PORT``."""
        return f"localhost:{self.port}"

    def running(self) -> bool:
        """Whether the registry process has not exited."""
        return self._process.poll() is None

    def client(self) -> httpx.Client:
        """An HTTPS client for the registry API that trusts only the lab CA."""
        tls = ssl.create_default_context(cafile=str(self._ca_cert))
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=tls, timeout=30.0)

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (distribution's storage layout)."""
        algorithm, hex_digest = digest.split(":", 1)
        return self.storage / BLOB_STORE / algorithm / hex_digest[:2] / hex_digest / "data"

    def log_tail(self, lines: int = 20) -> str:
        """The end of the registry's log, for failure messages."""
        self._log.flush()
        text = (self.directory / "registry.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; the process is reaped either way. Idempotent."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


def _config(
    directory: Path, port: int, cert: Path, key: Path, auth: Mapping[str, Any] | None = None
) -> str:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(directory / "storage")},
            # No background upload purging: nothing runs that the test did not ask for.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(cert), "key": str(key)},
        },
    }
    if auth is not None:
        config["auth"] = dict(auth)
    return yaml.safe_dump(config, sort_keys=False)


def start_distribution_registry(
    directory: Path, *, ca_cert: Path, ca_key: Path, auth: Mapping[str, Any] | None = None
) -> DistributionRegistry:
    """Start ``docker-registry serve`` in ``directory`` on a free loopback port, presenting a
    certificate the lab CA issued for ``localhost`` and 127.0.0.1; return once it answers.
    ``auth`` is the config's ``auth`` section (htpasswd or token), when it needs one."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = issue_server_cert(
        directory,
        ca_cert=ca_cert,
        ca_key=ca_key,
        names=["localhost"],
        ips=["127.0.0.1"],
        stem="distribution",
    )
    failures: list[str] = []
    for _ in range(START_ATTEMPTS):
        port = free_port("127.0.0.1")
        config = directory / "config.yml"
        config.write_text(_config(directory, port, tls.cert, tls.key, auth), encoding="utf-8")
        log = (directory / "registry.log").open("ab")
        process = subprocess.Popen(
            [str(DOCKER_REGISTRY), "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C is the test runner's to handle
        )
        registry = DistributionRegistry(process, port, directory, ca_cert, log)
        try:
            # Only this registry holds a certificate from this CA: whatever else might have
            # taken the port would fail the TLS check rather than pass for it.
            if _wait_until_answering(registry):
                return registry
        except BaseException:
            registry.stop()
            raise
        failures.append(registry.log_tail())
        registry.stop()
    raise RuntimeError(
        f"docker-registry did not start in {directory} after {START_ATTEMPTS} attempts:\n"
        + "\n---\n".join(failures)
    )


def _wait_until_answering(registry: DistributionRegistry) -> bool:
    """True once ``GET /v2/`` answers (200, or 401 with auth on); False if the process exits
    or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    with registry.client() as client:
        while time.monotonic() < deadline:
            if not registry.running():
                return False
            try:
                if client.get("/v2/", timeout=2.0).status_code in (200, 401):
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    return False


# Seeding through the registry API, as `oras push` or `brew` would.


def push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    """Upload ``data`` monolithically (POST an upload, PUT it with its digest)."""
    digest = sha256(data)
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    if started.status_code != 202:
        raise AssertionError(f"blob upload not started: HTTP {started.status_code} {started.text}")
    location = started.headers["Location"]
    # Appended, not merged: the upload's opaque _state parameter must go back byte for byte.
    separator = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{separator}digest={quote(digest, safe='')}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if done.status_code != 201 or done.headers.get("Docker-Content-Digest") != digest:
        raise AssertionError(f"blob {digest} not stored: HTTP {done.status_code} {done.text}")
    return digest


def push_manifest(client: httpx.Client, repository: str, reference: str, manifest: Manifest) -> str:
    """PUT a manifest under a tag or its digest, with its media type as Content-Type."""
    response = client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=manifest.body,
        headers={"Content-Type": manifest.media_type},
    )
    if response.status_code != 201 or response.headers.get("Docker-Content-Digest") != (
        manifest.digest
    ):
        raise AssertionError(
            f"manifest {reference} not stored: HTTP {response.status_code} {response.text}"
        )
    return manifest.digest


def push_tree(registry: DistributionRegistry, repository: str, tag: str, tree: BottleTree) -> None:
    """Seed ``repository:tag`` with ``tree``: blobs, platform manifests by digest, index by tag
    (distribution refuses a manifest whose blobs, or an index whose manifests, it lacks)."""
    with registry.client() as client:
        for blob in tree.blobs:
            push_blob(client, repository, blob.data)
        for manifest in tree.manifests:
            push_manifest(client, repository, manifest.digest, manifest)
        push_manifest(client, repository, tag, tree.index)
        # Read back as a client would, so a registry that stored something else fails here.
        served = client.get(
            f"/v2/{repository}/manifests/{tag}", headers={"Accept": tree.index.media_type}
        )
        if served.content != tree.index.body:
            raise AssertionError(f"{repository}:{tag} does not serve the index just pushed")
