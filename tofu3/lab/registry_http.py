"""The lab registry's HTTP behaviour: what ghcr.io, Docker Hub and their CDNs answer.

One handler serves three listener roles:

- ``registry``: the registry API for ghcr.io and registry-1.docker.io (told apart by the
  Host header; any other host is treated as ghcr.io), plus ghcr.io's own token endpoint;
- ``auth``: Docker Hub's separate token realm, auth.docker.io;
- ``cdn``: both CDNs' signed blob URLs, refusing any request that carries an Authorization
  header, as S3 and Azure do.

Per request it reads ``tamper.json`` ({"CLIENT_IP": "blob"|"manifest"|"tag"}) and serves
that client accordingly. Every response carries Content-Length.
"""

from __future__ import annotations

import datetime
import enum
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from tofu3.digest import Digest, is_digest
from tofu3.lab.content import tampered_blob, tampered_manifest
from tofu3.lab.store import Store, StoredManifest
from tofu3.lab.tokens import TOKEN_LIFETIME, CdnSigner, TokenBook, TokenCheck

TAMPER_FILE = "tamper.json"
LOG_FILE = "registry.log"

# distribution/reference's repository name grammar, and a tag or digest after it.
_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_ROUTE = re.compile(rf"/v2/(?P<name>{_NAME})/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# S3's answer to a presigned URL that also carries an Authorization header.
_S3_TWO_AUTH = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code>'
    b"<Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    b"Signature query string parameter or the Authorization header should be specified"
    b"</Message><ArgumentName>Authorization</ArgumentName></Error>"
)
_CDN_DENIED = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
    b"<Message>Server failed to authenticate the request.</Message></Error>"
)


class Role(str, enum.Enum):
    """What a listener stands in for."""

    REGISTRY = "registry"
    AUTH = "auth"
    CDN = "cdn"


class TamperMode(str, enum.Enum):
    """How the lab lies to one client (see tofu3.lab.content)."""

    BLOB = "blob"
    MANIFEST = "manifest"
    TAG = "tag"


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
    tokens: TokenBook
    signer: CdnSigner
    log: RequestLog

    def tamper_for(self, client_ip: str) -> TamperMode | None:
        """The tamper mode armed for ``client_ip`` in tamper.json (read afresh each time)."""
        try:
            armed = json.loads((self.directory / TAMPER_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self.log.write("tamper.json", "unreadable:", "serving", "honestly")
            return None
        mode = armed.get(client_ip) if isinstance(armed, dict) else None
        try:
            return TamperMode(mode) if mode is not None else None
        except ValueError:
            return None

    def view_for(self, mode: TamperMode | None) -> ClientView:
        """What a client with tamper ``mode`` is shown."""
        if mode is TamperMode.TAG:
            return ClientView((self.alternative, self.honest))
        return ClientView((self.honest,))

    def pullable(self) -> frozenset[str]:
        """Repositories anyone may pull."""
        return frozenset(repository for repository, _ in self.honest.tags)


class LabServerLike(Protocol):
    """What the handler needs from its server (see tofu3.lab.registry.LabServer)."""

    role: Role
    state: LabState


class LabHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests for the role of the server it belongs to."""

    protocol_version = "HTTP/1.1"
    server_version = "tofu3-lab-registry"
    # Seconds a kept-alive connection may sit idle before its thread gives up on it.
    timeout = 30.0
    # Headers and body leave in two writes; with Nagle and delayed ACKs each response would
    # wait ~40 ms for nothing.
    disable_nagle_algorithm = True

    _tamper: TamperMode | None = None

    def version_string(self) -> str:
        """The Server header: no Python version, as a real registry would not say."""
        return self.server_version

    @property
    def lab(self) -> LabServerLike:
        """The server, seen through what the handler uses."""
        server: LabServerLike = self.server  # type: ignore[assignment]
        return server

    def do_GET(self) -> None:
        """GET: every route."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """HEAD: as GET, without a body."""
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        state, role = self.lab.state, self.lab.role
        self._tamper = state.tamper_for(self.client_address[0])
        if role is Role.CDN:
            self._cdn(url.path, url.query)
        elif role is Role.AUTH:
            if url.path == "/token":
                self._token(DOCKER_HUB, url.query)
            else:
                self._registry_error(404, "NOT_FOUND", "not found")
        else:
            flavour = flavour_for(self.headers.get("Host"))
            route = _ROUTE.fullmatch(url.path)
            if url.path == "/token" and flavour is GHCR:
                self._token(GHCR, url.query)
            elif url.path in ("/v2", "/v2/"):
                self._challenge(flavour, flavour.base_scope, TokenCheck.MISSING)
            elif route is None:
                self._registry_error(404, "NOT_FOUND", "not found")
            elif route["kind"] == "manifests":
                self._manifest(flavour, route["name"], route["ref"])
            else:
                self._blob(flavour, route["name"], route["ref"])

    def _token(self, flavour: Flavour, query: str) -> None:
        params = parse_qs(query)
        service = params.get("service", [flavour.service])[0]
        if service != flavour.service:
            self._registry_error(400, "DENIED", f"unknown service {service!r}")
            return
        state = self.lab.state
        token, grant = state.tokens.issue(
            flavour.service, params.get("scope", []), state.pullable()
        )
        issued = datetime.datetime.fromtimestamp(
            grant.expires - TOKEN_LIFETIME, datetime.timezone.utc
        )
        body = {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME,
            "issued_at": issued.isoformat().replace("+00:00", "Z"),
        }
        self._send(200, _json(body), "application/json", [("Cache-Control", "no-store")])

    def _authorized(self, flavour: Flavour, name: str) -> bool:
        """Whether the request may pull ``name``; if not, the 401 challenge is sent."""
        check = self.lab.state.tokens.check(
            self.headers.get("Authorization"), flavour.service, name
        )
        if check is TokenCheck.GRANTED:
            return True
        self._challenge(flavour, f"repository:{name}:pull", check)
        return False

    def _challenge(self, flavour: Flavour, scope: str | None, check: TokenCheck) -> None:
        challenge = f'Bearer realm="{flavour.realm}",service="{flavour.service}"'
        if scope is not None:
            challenge += f',scope="{scope}"'
        if check in (TokenCheck.INVALID, TokenCheck.INSUFFICIENT):
            challenge += f',error="{check.value}"'
        self._registry_error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            [("WWW-Authenticate", challenge), ("Docker-Distribution-API-Version", "registry/2.0")],
        )

    def _manifest(self, flavour: Flavour, name: str, reference: str) -> None:
        if not (is_digest(reference) or _TAG.fullmatch(reference)):
            self._registry_error(400, "MANIFEST_INVALID", "invalid tag or digest")
            return
        if not self._authorized(flavour, name):
            return
        found = self.lab.state.view_for(self._tamper).resolve(name, reference)
        # Without the manifest's type in Accept, ghcr.io answers 404 rather than converting.
        if found is None or found[1].media_type not in _accepted(self.headers.get_all("Accept")):
            self._registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        digest, (media_type, body) = found
        if self._tamper is TamperMode.MANIFEST and is_digest(reference):
            # The lie: other bytes under the honest Docker-Content-Digest header.
            body = tampered_manifest(body)
        self._send(200, body, media_type, [("Docker-Content-Digest", digest)])

    def _blob(self, flavour: Flavour, name: str, reference: str) -> None:
        if not is_digest(reference):
            self._registry_error(400, "DIGEST_INVALID", "invalid digest")
            return
        if not self._authorized(flavour, name):
            return
        digest = Digest(reference)
        if not self.lab.state.view_for(self._tamper).has_blob(name, digest):
            self._registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        location = flavour.blob_location(self.lab.state.signer, digest)
        self._send(307, b"", None, [("Location", location), ("Docker-Content-Digest", digest)])

    def _cdn(self, path: str, query: str) -> None:
        # S3 refuses a presigned URL that also carries an Authorization header: a client that
        # forwards its registry token across the redirect fails here, as it would for real.
        if "Authorization" in self.headers:
            self._send(400, _S3_TWO_AUTH, "application/xml")
            return
        state = self.lab.state
        digest = state.signer.verify(path, query)
        if digest is None:
            self._send(403, _CDN_DENIED, "application/xml")
            return
        found = state.view_for(self._tamper).blob(digest)
        if found is None:
            self._send(404, b"<Error><Code>BlobNotFound</Code></Error>", "application/xml")
            return
        data, is_layer = found
        if self._tamper is TamperMode.BLOB and is_layer:
            data = tampered_blob(data)
        self._send(200, data, "application/octet-stream", [("ETag", f'"{digest}"')])

    def _registry_error(
        self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        body = _json({"errors": [{"code": code, "message": message}]})
        self._send(status, body, "application/json", headers or [])

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """The one way a response leaves: status, headers, Content-Length, body unless HEAD."""
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per response: never headers, tokens, or query strings (signed URLs)."""
        path = urlsplit(getattr(self, "path", "") or "").path
        host = self.headers.get("Host", "-") if getattr(self, "headers", None) else "-"
        fields = [self.lab.role.value, self.client_address[0], self.command or "-", host, path]
        fields.append(str(int(code)) if not isinstance(code, str) else code)
        if self._tamper is not None:
            fields.append(f"tamper={self._tamper.value}")
        self.lab.state.log.write(*fields)

    def log_error(self, format: str, *args: Any) -> None:
        """Malformed requests: only the message template, whose arguments might quote a
        request line (and so a signed query)."""
        self.lab.state.log.write(self.lab.role.value, self.client_address[0], "error", format)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing goes to stderr: log_request and log_error cover what is worth keeping."""


def _accepted(values: list[str] | None) -> frozenset[str]:
    """Media types listed in the Accept header(s), parameters and weights dropped."""
    types = set()
    for value in values or []:
        for item in value.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return frozenset(types)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()
