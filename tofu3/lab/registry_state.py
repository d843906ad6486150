"""What the lab registry's listeners share: who they stand in for, what each client is shown
(honest content, or the content a tamper switch chooses), and the request log."""

from __future__ import annotations

import datetime
import enum
import threading
from dataclasses import dataclass
from pathlib import Path

from tofu3.digest import Digest
from tofu3.lab.latency import LATENCY_FILE, read_delay_ms
from tofu3.lab.store import Store, StoredManifest
from tofu3.lab.tamper import TAMPER_FILE, TamperMode, mode_for, read_table
from tofu3.lab.tokens import CdnSigner, TokenBook

LOG_FILE = "registry.log"


class Role(str, enum.Enum):
    """What a listener stands in for."""

    REGISTRY = "registry"
    AUTH = "auth"
    CDN = "cdn"


@dataclass(frozen=True)
class Flavour:
    """How one public registry names itself in challenges and where it keeps blobs."""

    service: str
    realm: str
    # The scope ghcr.io puts in its challenge to a bare /v2/ (literally "user/image").
    base_scope: str | None

    def blob_location(self, signer: CdnSigner, digest: Digest) -> str:
        """The signed CDN URL this registry redirects a blob request to."""
        return signer.ghcr_url(digest) if self is GHCR else signer.docker_url(digest)


GHCR = Flavour("ghcr.io", "https://ghcr.io/token", "repository:user/image:pull")
DOCKER_HUB = Flavour("registry.docker.io", "https://auth.docker.io/token", None)


def flavour_for(host: str | None) -> Flavour:
    """The registry a Host header names (with or without a port)."""
    name = (host or "").strip().lower().partition(":")[0]
    return DOCKER_HUB if name == "registry-1.docker.io" else GHCR


class ClientView:
    """The content one client sees: the honest store, or for a "tag" tamper the
    alternative tree first (its tags win; honest digests stay servable by digest)."""

    def __init__(self, stores: tuple[Store, ...]) -> None:
        self._stores = stores

    def resolve(self, repository: str, reference: str) -> tuple[Digest, StoredManifest] | None:
        """The manifest a tag or digest names in ``repository``."""
        for store in self._stores:
            digest = store.resolve(repository, reference)
            if digest is not None:
                return digest, store.manifests[digest]
        return None

    def has_blob(self, repository: str, digest: Digest) -> bool:
        """Whether ``repository`` holds blob ``digest``."""
        return any(store.blob(repository, digest) is not None for store in self._stores)

    def blob(self, digest: Digest) -> tuple[bytes, bool] | None:
        """Blob bytes by digest alone (a CDN knows no repositories), and whether a layer."""
        for store in self._stores:
            data = store.blobs.get(digest)
            if data is not None:
                return data, digest in store.layers
        return None


class RequestLog:
    """DIR/registry.log: one line per response. Never a header value, token or query."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, *fields: str) -> None:
        """Append one line of ``fields``, each made printable and space-free."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = " ".join([stamp, *(_printable(field) for field in fields)]) + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as log:
            log.write(line)


def _printable(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in text)
    return cleaned[:200] or "-"


@dataclass(frozen=True)
class LabState:
    """What every listener shares: content, tokens, the CDN key, the directory and log."""

    directory: Path
    honest: Store
    alternative: Store
    deep: Store
    tokens: TokenBook
    signer: CdnSigner
    log: RequestLog

    def tamper_for(self, client_ip: str) -> TamperMode | None:
        """The tamper mode armed for ``client_ip`` in tamper.json (read afresh each time)."""
        try:
            table = read_table(self.directory / TAMPER_FILE)
        except (OSError, ValueError):
            self.log.write("tamper.json", "unreadable:", "serving", "honestly")
            return None
        return mode_for(table, client_ip)

    def delay_seconds(self) -> float:
        """The latency switch (latency.json, read afresh each time), in seconds."""
        try:
            return read_delay_ms(self.directory / LATENCY_FILE) / 1000
        except (OSError, ValueError):
            self.log.write("latency.json", "unreadable:", "no", "delay")
            return 0.0

    def view_for(self, mode: TamperMode | None) -> ClientView:
        """What a client with tamper ``mode`` is shown: another store's tags win, while the
        honest content stays servable by digest."""
        if mode is TamperMode.TAG:
            return ClientView((self.alternative, self.honest))
        if mode is TamperMode.DEEP_INDEX:
            return ClientView((self.deep, self.honest))
        return ClientView((self.honest,))

    def tag_target(self, repository: str) -> StoredManifest | None:
        """The honest manifest ``repository``'s tag names (each lab repository has one tag)."""
        for (name, _), digest in self.honest.tags.items():
            if name == repository:
                return self.honest.manifests[digest]
        return None

    def pullable(self) -> frozenset[str]:
        """Repositories anyone may pull."""
        return frozenset(repository for repository, _ in self.honest.tags)
