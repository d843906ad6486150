"""The lab registry's HTTP behaviour: what ghcr.io, Docker Hub and their CDNs answer.

One handler serves three listener roles:

- ``registry``: the registry API for ghcr.io and registry-1.docker.io (told apart by the
  Host header; any other host is treated as ghcr.io), plus ghcr.io's own token endpoint;
- ``auth``: Docker Hub's separate token realm, auth.docker.io;
- ``cdn``: both CDNs' signed blob URLs, refusing any request that carries an Authorization
  header, as S3 and Azure do.

Per request it reads ``tamper.json`` (:mod:`tofu3.lab.tamper`) and serves that client the lie
armed for it (:mod:`tofu3.lab.lies`). Every honest response carries Content-Length.
"""

from __future__ import annotations

import datetime
import json
import re
import select
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from tofu3.digest import Digest, is_digest
from tofu3.lab import lies
from tofu3.lab.registry_state import (
    DOCKER_HUB,
    GHCR,
    LOG_FILE,
    ClientView,
    Flavour,
    LabState,
    RequestLog,
    Role,
    flavour_for,
)
from tofu3.lab.tamper import TAMPER_FILE, TamperMode
from tofu3.lab.tokens import TOKEN_LIFETIME, TokenCheck

__all__ = [
    "DOCKER_HUB",
    "GHCR",
    "LOG_FILE",
    "TAMPER_FILE",
    "ClientView",
    "Flavour",
    "LabHandler",
    "LabState",
    "RequestLog",
    "Role",
    "TamperMode",
    "flavour_for",
]

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

STALL_SECONDS = 600.0
"""How long a "stall" response holds its connection open without sending, at most."""

ENDLESS_SECONDS = 120.0
ENDLESS_BYTES = 256 * 1024 * 1024
"""Bounds on an "endless-manifest" response, so a client without a cap cannot keep the lab
busy for ever."""

_FILLER = b" " * 65536


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
    _delay: float = 0.0

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
        self._delay = state.delay_seconds()
        if self._delay:
            # The latency switch: a slow network, as every response sees it.
            time.sleep(self._delay)
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
        data = _json(body)
        if self._tamper is TamperMode.BIG_TOKEN:
            data = lies.big_token_response(token)
        self._send(200, data, "application/json", [("Cache-Control", "no-store")])

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
        state = self.lab.state
        found = state.view_for(self._tamper).resolve(name, reference)
        # Without the manifest's type in Accept, ghcr.io answers 404 rather than converting.
        if found is None or found[1].media_type not in _accepted(self.headers.get_all("Accept")):
            self._registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        digest, stored = found
        answer = lies.manifest_answer(
            self._tamper,
            stored,
            digest=digest,
            reference=reference,
            repository=name,
            tag_target=state.tag_target(name) if self._tamper is TamperMode.SELF_INDEX else None,
        )
        headers = []
        if answer.docker_content_digest is not None:
            headers.append(("Docker-Content-Digest", answer.docker_content_digest))
        if answer.endless:
            self._send_endless(answer.body, answer.content_type, headers)
        else:
            self._send(200, answer.body, answer.content_type, headers)

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
        if self._tamper is TamperMode.REDIRECT_HTTP:
            location = "http://" + location.removeprefix("https://")
        elif self._tamper is TamperMode.REDIRECT_FTP:
            location = "ftp://" + location.removeprefix("https://")
        elif self._tamper is TamperMode.REDIRECT_LOOP:
            # Back to this very URL: a client that follows redirects without a limit never
            # gets out.
            location = f"https://{self.headers.get('Host', flavour.service)}{self.path}"
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
        headers = [("ETag", f'"{digest}"')]
        if is_layer and self._tamper is TamperMode.STALL:
            self._send_stalled(data, "application/octet-stream", headers)
            return
        if is_layer:
            data = lies.layer_answer(self._tamper, data)
        self._send(200, data, "application/octet-stream", headers)

    def _send_stalled(self, data: bytes, content_type: str, headers: list[tuple[str, str]]) -> None:
        """Announce all of ``data``, send half, then nothing: the connection stays open until
        the client gives up (or STALL_SECONDS pass)."""
        self._send_head(200, content_type, headers, len(data))
        if self.command == "HEAD":
            return
        half = len(data) // 2
        self.wfile.write(data[:half])
        self.wfile.flush()
        self.close_connection = True
        # Its own log line: a test (or a person) can tell when a client is being held.
        path = urlsplit(self.path).path
        self.lab.state.log.write(self.lab.role.value, self.client_address[0], "holding", path)
        deadline = time.monotonic() + STALL_SECONDS
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 1.0)
            if not readable:
                continue
            try:
                if not self.connection.recv(1):
                    return  # the client hung up
            except OSError:
                return

    def _send_endless(
        self, start: bytes, content_type: str, headers: list[tuple[str, str]]
    ) -> None:
        """``start``, then whitespace until the client hangs up: no Content-Length, so only
        the client's own cap ends it (bounded here by ENDLESS_SECONDS and ENDLESS_BYTES)."""
        self._send_head(200, content_type, [*headers, ("Connection", "close")], None)
        self.close_connection = True
        if self.command == "HEAD":
            return
        sent = 0
        deadline = time.monotonic() + ENDLESS_SECONDS
        try:
            self.wfile.write(start)
            while sent < ENDLESS_BYTES and time.monotonic() < deadline:
                self.wfile.write(_FILLER)
                sent += len(_FILLER)
        except OSError:
            return  # the client hung up: what it should do

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
        """The one way an honest response leaves: status, headers, Content-Length, body
        unless HEAD."""
        self._send_head(status, content_type, headers or [], len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_head(
        self,
        status: int,
        content_type: str | None,
        headers: list[tuple[str, str]],
        length: int | None,
    ) -> None:
        """Status line and headers; no Content-Length when ``length`` is None."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per response: never headers, tokens, or query strings (signed URLs)."""
        path = urlsplit(getattr(self, "path", "") or "").path
        host = self.headers.get("Host", "-") if getattr(self, "headers", None) else "-"
        fields = [self.lab.role.value, self.client_address[0], self.command or "-", host, path]
        fields.append(str(int(code)) if not isinstance(code, str) else code)
        if self._tamper is not None:
            fields.append(f"tamper={self._tamper.value}")
        if self._delay:
            fields.append(f"delay={round(self._delay * 1000)}ms")
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
