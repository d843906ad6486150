"""The token and the root manifest in one exchange: the vantage finds the token in the token
response itself (real sh, sed and curl), puts it into the manifest request it was given, and
says which token it used; the coordinator takes the manifest only if that is the very token
it parsed from the same response, and otherwise asks again with its own."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.fake_registry import FakeVantage
from tests.unit.local_https import MANIFEST, LocalRegistry, SeenRequest, registry, seen
from tests.unit.local_vantage import vantage_in
from tofu3.lab.content import build_store
from tofu3.protocol import RegistrySession
from tofu3.reference import parse_reference
from tofu3.remote.port import TOKEN_SLOT, Chained, FetchRequest, FirstRequest, Request, Response

__all__ = ["registry", "seen"]  # fixtures, imported for pytest

TOKEN = "djE6dG9rZW4tZm9yLWEtY2hhaW4=.sig_-~+/"


def _then(registry: LocalRegistry) -> FetchRequest:
    template = Request(registry.url("/manifest"), [("Authorization", f"Bearer {TOKEN_SLOT}")])
    return FetchRequest(template, 4096, "manifest 1.0")


def test_the_vantage_chains_the_manifest_with_the_token_it_found_and_says_which(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    body = json.dumps({"token": TOKEN, "access_token": TOKEN, "expires_in": 300}).encode()
    token = FetchRequest(Request(registry.serve("/token-chain", body)), 4096, "token request")

    with vantage_in(tmp_path, curl_args=registry.curl_args) as vantage:
        chained = vantage.session.fetch_after_token(token, _then(registry))
        rounds = vantage.session.round_trips

    assert chained.token.body == body
    assert chained.then is not None and chained.then.body == MANIFEST
    assert chained.used_sha256 == hashlib.sha256(TOKEN.encode()).hexdigest()
    manifest_requests = [s for s in seen if s.path == "/manifest"]
    assert [s.authorization for s in manifest_requests] == [f"Bearer {TOKEN}"]
    assert rounds == 2  # the session's first exchange, and this one
    # The token went to the vantage inside the token response only, never in a job line.
    assert TOKEN.encode() not in bytes(vantage.stream.sent)


def test_no_token_in_the_answer_means_no_second_request(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    # A token that holds a character no token may hold, and one that is not there at all.
    for path, body in [
        ("/token-quote", b'{"token": "abc\\" header = \\"X-Evil: 1"}'),
        ("/token-none", b'{"errors": [{"code": "DENIED"}]}'),
    ]:
        token = FetchRequest(Request(registry.serve(path, body)), 4096, "token request")
        place = tmp_path / path.strip("/")
        place.mkdir()
        with vantage_in(place, curl_args=registry.curl_args) as vantage:
            chained = vantage.session.fetch_after_token(token, _then(registry))

        assert chained.token.body == body
        assert chained.then is None and chained.used_sha256 is None
    assert not [s for s in seen if s.path == "/manifest"]


@dataclass
class _LyingChain(FakeVantage):
    """A transport that chains, but says it used another token than the one it was sent."""

    chained_with: list[str] = field(default_factory=list)

    def fetch_after_token(self, token: FetchRequest, then: FetchRequest) -> Chained:
        (response,) = self.fetch([token], jobs=1)
        bogus = Response(response.connection, b'{"schemaVersion": 2, "bogus": true}')
        self.chained_with.append(then.request.url)
        return Chained(response, bogus, hashlib.sha256(b"some other token").hexdigest())


def test_a_manifest_chained_with_another_token_than_the_one_parsed_is_fetched_again() -> None:
    transport = _LyingChain("ams", build_store())
    reference = parse_reference("registry.test/homebrew/core/wget:1.24.5")
    session = RegistrySession(transport, reference)

    fetched = session.manifest("1.24.5", what="manifest 1.24.5", expected=None)

    assert transport.chained_with, "the chain was offered"
    assert b"bogus" not in fetched.body
    assert fetched.digest == build_store().tags[("homebrew/core/wget", "1.24.5")]
    asked = [r.url for r in transport.requests if "/manifests/" in r.url]
    assert asked == ["https://registry.test/v2/homebrew/core/wget/manifests/1.24.5"]


def test_the_first_exchange_fetches_the_root_manifest_only_from_a_registry_that_answered_200(
    registry: LocalRegistry, seen: list[SeenRequest], tmp_path: Path
) -> None:
    manifest = FetchRequest(Request(registry.url("/manifest")), 4096, "manifest 1.0")
    for place, ping_path, chained in [("open", "/manifest-ping", True), ("closed", "/nope", False)]:
        if chained:
            registry.serve(ping_path, b"{}")
        ping = FetchRequest(Request(registry.url(ping_path), follow_redirects=False), 4096, "ping")
        directory = tmp_path / place
        directory.mkdir()
        before = len([s for s in seen if s.path == "/manifest"])
        with vantage_in(directory, curl_args=registry.curl_args, open_session=False) as vantage:
            vantage.session.open([FirstRequest(ping, manifest)])
            rounds = vantage.session.round_trips
            (answer,) = vantage.session.fetch([ping], jobs=1)
            (body,) = vantage.session.fetch([manifest], jobs=1)
            after_rounds = vantage.session.round_trips
        asked = len([s for s in seen if s.path == "/manifest"]) - before

        assert body.body == MANIFEST
        assert asked == 1
        if chained:
            assert answer.connection.status == 200
            assert (rounds, after_rounds) == (1, 1)  # both answers came in the first exchange
        else:
            assert answer.connection.status == 404
            assert (rounds, after_rounds) == (1, 2)  # the manifest needed a job of its own
