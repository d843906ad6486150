"""The lab registry answers like ghcr.io and Docker Hub (challenge, token realm, content
negotiation, 307 to a signed CDN that refuses Authorization) and, when armed, lies to one
client in exactly the ways tofu3 must catch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from tofu3.atomic import write_atomic
from tofu3.digest import Digest, digest_bytes
from tofu3.lab.errors import LabError
from tofu3.lab.registry import PORTS_FILE, RegistryProcess, start_registry
from tofu3.oci.media_types import ACCEPT, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX

pytestmark = pytest.mark.integration

WGET = "homebrew/core/wget"
ALPINE = "library/alpine"
# Which lab listener answers for each public name (what the lab inventory's --connect-to does).
HOST_ROLES = {
    "ghcr.io": "registry",
    "registry-1.docker.io": "registry",
    "auth.docker.io": "auth",
    "pkg-containers.githubusercontent.com": "cdn",
    "production.cloudflare.docker.com": "cdn",
}


class LabClient:
    """HTTPS to the lab by the public names: each URL goes to its listener's port, with the
    public name in the Host header, verified against the lab CA."""

    def __init__(self, registry: RegistryProcess, source: str = "127.0.0.1") -> None:
        tls = ssl.create_default_context(cafile=str(registry.directory / "ca.pem"))
        transport = httpx.HTTPTransport(verify=tls, local_address=source)
        self._http = httpx.Client(transport=transport, timeout=10.0)
        self._ports = registry.ports

    def close(self) -> None:
        self._http.close()

    def request(
        self, url: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> httpx.Response:
        parts = urlsplit(url)
        assert parts.hostname is not None
        address, port = self._ports[HOST_ROLES[parts.hostname]]
        target = urlunsplit(("https", f"{address}:{port}", parts.path, parts.query, ""))
        return self._http.request(
            method, target, headers={"Host": parts.hostname, **(headers or {})}
        )

    def token(self, realm: str, service: str, repository: str) -> str:
        response = self.request(f"{realm}?scope=repository:{repository}:pull&service={service}")
        assert response.status_code == 200
        token: str = response.json()["token"]
        return token

    def manifest(
        self, host: str, repository: str, reference: str, token: str, accept: str = ACCEPT
    ) -> httpx.Response:
        return self.request(
            f"https://{host}/v2/{repository}/manifests/{reference}",
            {"Authorization": f"Bearer {token}", "Accept": accept},
        )

    def blob(self, host: str, repository: str, digest: str, token: str) -> bytes:
        """Fetch a blob as curl -L does: the token goes to the registry, never to the CDN."""
        redirect = self.request(
            f"https://{host}/v2/{repository}/blobs/{digest}", {"Authorization": f"Bearer {token}"}
        )
        assert redirect.status_code == 307
        response = self.request(redirect.headers["Location"])
        assert response.status_code == 200
        return response.content


def ghcr_token(client: LabClient, repository: str = WGET) -> str:
    return client.token("https://ghcr.io/token", "ghcr.io", repository)


def docker_token(client: LabClient, repository: str = ALPINE) -> str:
    return client.token("https://auth.docker.io/token", "registry.docker.io", repository)


@pytest.fixture(scope="module")
def lab_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One lab registry for this module, always stopped at the end."""
    registry = start_registry(tmp_path_factory.mktemp("lab"))
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def client(lab_registry: RegistryProcess) -> Iterator[LabClient]:
    """A client connecting from 127.0.0.1."""
    lab_client = LabClient(lab_registry)
    yield lab_client
    lab_client.close()


@pytest.fixture
def arm(lab_registry: RegistryProcess) -> Iterator[Callable[[str, str], None]]:
    """Arm a tamper switch for a client address; the registry is honest again afterwards."""
    path = lab_registry.directory / "tamper.json"
    table: dict[str, str] = {}

    def arm_tamper(client_ip: str, mode: str) -> None:
        table[client_ip] = mode
        write_atomic(path, json.dumps(table).encode())

    yield arm_tamper
    path.unlink(missing_ok=True)


def test_bare_v2_is_challenged_with_ghcr_realm_service_and_scope(client: LabClient) -> None:
    response = client.request("https://ghcr.io/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"'
    )
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_host_with_port_is_the_same_registry(lab_registry: RegistryProcess) -> None:
    address, port = lab_registry.ports["registry"]
    response = httpx.get(
        f"https://{address}:{port}/v2/",
        headers={"Host": "registry-1.docker.io:443"},
        verify=ssl.create_default_context(cafile=str(lab_registry.directory / "ca.pem")),
    )
    assert 'realm="https://auth.docker.io/token"' in response.headers["WWW-Authenticate"]


def test_token_response_has_token_access_token_and_expiry(client: LabClient) -> None:
    response = client.request("https://ghcr.io/token?scope=repository:homebrew/core/wget:pull")
    body = response.json()
    assert response.status_code == 200
    assert body["token"] == body["access_token"]
    assert len(body["token"]) >= 32
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert body["token"] != ghcr_token(client)


def test_manifest_without_token_is_challenged_with_the_repository_scope(
    client: LabClient,
) -> None:
    response = client.request(f"https://ghcr.io/v2/{WGET}/manifests/1.24.5", {"Accept": OCI_INDEX})
    assert response.status_code == 401
    assert f'scope="repository:{WGET}:pull"' in response.headers["WWW-Authenticate"]
    assert "error=" not in response.headers["WWW-Authenticate"]


def test_made_up_token_is_refused_as_invalid(client: LabClient) -> None:
    response = client.manifest("ghcr.io", WGET, "1.24.5", "not-a-token-the-lab-issued")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_for_one_repository_does_not_pull_another(client: LabClient) -> None:
    token = ghcr_token(client, repository=ALPINE)
    response = client.manifest("ghcr.io", WGET, "1.24.5", token)
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_ghcr_token_is_not_accepted_by_docker_hub(client: LabClient) -> None:
    token = client.token("https://ghcr.io/token", "ghcr.io", ALPINE)
    response = client.manifest("registry-1.docker.io", ALPINE, "3.19", token)
    assert response.status_code == 401


def test_index_comes_with_its_type_and_a_digest_header_matching_the_body(
    client: LabClient,
) -> None:
    response = client.manifest("ghcr.io", WGET, "1.24.5", ghcr_token(client))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == digest_bytes(response.content)
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert len(response.json()["manifests"]) == 7


def test_ghcr_answers_404_for_an_index_without_the_oci_accept(client: LabClient) -> None:
    token = ghcr_token(client)
    response = client.manifest("ghcr.io", WGET, "1.24.5", token, accept=DOCKER_MANIFEST)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_head_gives_the_headers_without_the_body(client: LabClient) -> None:
    token = ghcr_token(client)
    get = client.manifest("ghcr.io", WGET, "1.24.5", token)
    head = client.request(
        f"https://ghcr.io/v2/{WGET}/manifests/1.24.5",
        {"Authorization": f"Bearer {token}", "Accept": ACCEPT},
        method="HEAD",
    )
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Docker-Content-Digest"] == get.headers["Docker-Content-Digest"]
    assert head.headers["Content-Length"] == str(len(get.content))


def test_unknown_tag_is_manifest_unknown(client: LabClient) -> None:
    response = client.manifest("ghcr.io", WGET, "0.0.0", ghcr_token(client))
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def wget_layer(client: LabClient, token: str, platform_index: int = 0) -> tuple[str, int]:
    """(digest, size) of one bottle, read from the index and its image manifest."""
    index = client.manifest("ghcr.io", WGET, "1.24.5", token).json()
    child = index["manifests"][platform_index]["digest"]
    layer = client.manifest("ghcr.io", WGET, child, token).json()["layers"][0]
    return layer["digest"], layer["size"]


def test_blob_is_a_307_to_a_signed_url_on_the_ghcr_cdn(client: LabClient) -> None:
    token = ghcr_token(client)
    digest, _ = wget_layer(client, token)
    response = client.request(
        f"https://ghcr.io/v2/{WGET}/blobs/{digest}", {"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 307
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.hostname) == ("https", "pkg-containers.githubusercontent.com")
    assert location.path == f"/ghcr1/blobs/{digest}"
    assert set(parse_qs(location.query)) == {"se", "sig"}


def test_cdn_serves_the_bytes_the_digest_names(client: LabClient) -> None:
    token = ghcr_token(client)
    digest, size = wget_layer(client, token)
    data = client.blob("ghcr.io", WGET, digest, token)
    assert digest_bytes(data) == digest
    assert len(data) == size


def test_cdn_refuses_a_request_carrying_authorization(client: LabClient) -> None:
    token = ghcr_token(client)
    digest, _ = wget_layer(client, token)
    redirect = client.request(
        f"https://ghcr.io/v2/{WGET}/blobs/{digest}", {"Authorization": f"Bearer {token}"}
    )
    # What a client with curl --location-trusted would do: forward the token to the CDN.
    response = client.request(redirect.headers["Location"], {"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert b"Only one auth mechanism allowed" in response.content


def test_cdn_refuses_a_signature_moved_to_another_blob(client: LabClient) -> None:
    token = ghcr_token(client)
    first, _ = wget_layer(client, token, 0)
    second, _ = wget_layer(client, token, 1)
    redirect = client.request(
        f"https://ghcr.io/v2/{WGET}/blobs/{first}", {"Authorization": f"Bearer {token}"}
    )
    moved = redirect.headers["Location"].replace(first, second)
    assert client.request(moved).status_code == 403
    truncated = redirect.headers["Location"][:-2]
    assert client.request(truncated).status_code == 403


def test_docker_hub_flow_goes_through_the_separate_auth_realm(client: LabClient) -> None:
    challenge = client.request("https://registry-1.docker.io/v2/")
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
    )
    token = docker_token(client)
    listed = client.manifest("registry-1.docker.io", ALPINE, "3.19", token)
    assert listed.headers["Content-Type"] == DOCKER_MANIFEST_LIST
    assert listed.headers["Docker-Content-Digest"] == digest_bytes(listed.content)
    entries = listed.json()["manifests"]
    attestation = entries[2]
    assert attestation["annotations"]["vnd.docker.reference.digest"] == entries[0]["digest"]

    image = client.manifest("registry-1.docker.io", ALPINE, entries[0]["digest"], token)
    assert image.headers["Content-Type"] == DOCKER_MANIFEST
    assert digest_bytes(image.content) == entries[0]["digest"]
    layer = image.json()["layers"][0]["digest"]
    redirect = client.request(
        f"https://registry-1.docker.io/v2/{ALPINE}/blobs/{layer}",
        {"Authorization": f"Bearer {token}"},
    )
    location = urlsplit(redirect.headers["Location"])
    assert location.hostname == "production.cloudflare.docker.com"
    assert location.query.startswith("verify=")
    assert digest_bytes(client.blob("registry-1.docker.io", ALPINE, layer, token)) == layer


def test_blob_tamper_changes_layer_bytes_but_not_their_length(
    client: LabClient, arm: Callable[[str, str], None]
) -> None:
    token = ghcr_token(client)
    digest, size = wget_layer(client, token)
    arm("127.0.0.1", "blob")
    data = client.blob("ghcr.io", WGET, digest, token)
    assert len(data) == size
    assert digest_bytes(data) != digest


def test_blob_tamper_spares_config_blobs(
    client: LabClient, arm: Callable[[str, str], None]
) -> None:
    token = ghcr_token(client)
    index = client.manifest("ghcr.io", WGET, "1.24.5", token).json()
    child = client.manifest("ghcr.io", WGET, index["manifests"][0]["digest"], token).json()
    arm("127.0.0.1", "blob")
    config = child["config"]["digest"]
    assert digest_bytes(client.blob("ghcr.io", WGET, config, token)) == config


def test_blob_tamper_hits_only_the_armed_client(
    lab_registry: RegistryProcess, client: LabClient, arm: Callable[[str, str], None]
) -> None:
    token = ghcr_token(client)
    digest, _ = wget_layer(client, token)
    arm("127.0.0.2", "blob")
    assert digest_bytes(client.blob("ghcr.io", WGET, digest, token)) == digest
    targeted = LabClient(lab_registry, source="127.0.0.2")
    try:
        targeted_token = ghcr_token(targeted)
        assert digest_bytes(targeted.blob("ghcr.io", WGET, digest, targeted_token)) != digest
    finally:
        targeted.close()


def test_manifest_tamper_lies_under_the_honest_digest_header(
    client: LabClient, arm: Callable[[str, str], None]
) -> None:
    token = ghcr_token(client)
    index = client.manifest("ghcr.io", WGET, "1.24.5", token)
    child = Digest(index.json()["manifests"][0]["digest"])
    arm("127.0.0.1", "manifest")
    lied = client.manifest("ghcr.io", WGET, child, token)
    assert lied.status_code == 200
    assert lied.headers["Docker-Content-Digest"] == child
    assert digest_bytes(lied.content) != child
    # By tag, the same client still gets the honest index.
    assert client.manifest("ghcr.io", WGET, "1.24.5", token).content == index.content


def test_tag_tamper_serves_another_index_whose_digests_all_hold(
    client: LabClient, arm: Callable[[str, str], None]
) -> None:
    token = ghcr_token(client)
    honest = client.manifest("ghcr.io", WGET, "1.24.5", token)
    arm("127.0.0.1", "tag")
    moved = client.manifest("ghcr.io", WGET, "1.24.5", token)
    assert moved.content != honest.content
    assert moved.headers["Docker-Content-Digest"] == digest_bytes(moved.content)

    changed = 0
    for honest_entry, entry in zip(
        honest.json()["manifests"], moved.json()["manifests"], strict=True
    ):
        changed += honest_entry["digest"] != entry["digest"]
        child = client.manifest("ghcr.io", WGET, entry["digest"], token)
        assert digest_bytes(child.content) == entry["digest"]
        assert len(child.content) == entry["size"]
        layer = child.json()["layers"][0]
        data = client.blob("ghcr.io", WGET, layer["digest"], token)
        assert digest_bytes(data) == layer["digest"]
        assert entry["annotations"]["sh.brew.bottle.digest"] == layer["digest"].split(":")[1]
    assert changed == 1


def test_tokens_and_signatures_never_reach_the_log(
    lab_registry: RegistryProcess, client: LabClient
) -> None:
    token = ghcr_token(client)
    digest, _ = wget_layer(client, token)
    redirect = client.request(
        f"https://ghcr.io/v2/{WGET}/blobs/{digest}", {"Authorization": f"Bearer {token}"}
    )
    client.request(redirect.headers["Location"])
    signature = parse_qs(urlsplit(redirect.headers["Location"]).query)["sig"][0]
    log = (lab_registry.directory / "registry.log").read_text(encoding="utf-8")
    assert f"/ghcr1/blobs/{digest}" in log
    for secret in (token, signature, "Bearer", "sig=", "se=", "scope="):
        assert secret not in log


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_pulls_a_bottle_by_the_public_names_with_the_lab_ca(
    lab_registry: RegistryProcess, client: LabClient, tmp_path: Path
) -> None:
    """What a lab vantage does: --connect-to the public names, trust the lab CA, follow the
    redirect with the token on stdin (curl drops it when the host changes)."""
    token = ghcr_token(client)
    digest, size = wget_layer(client, token)
    connect = []
    for host, role in HOST_ROLES.items():
        address, port = lab_registry.ports[role]
        connect += ["--connect-to", f"{host}:443:{address}:{port}"]
    output = tmp_path / "bottle.tar.gz"
    command = ["curl", "-q", "-sS", "--fail", "-L", "-K", "-", *connect, "-o", str(output)]
    command += ["--cacert", str(lab_registry.directory / "ca.pem")]
    result = subprocess.run(
        [*command, f"https://ghcr.io/v2/{WGET}/blobs/{digest}"],
        input=f'header = "Authorization: Bearer {token}"\n',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert digest_bytes(output.read_bytes()) == digest
    assert output.stat().st_size == size


def test_registry_stops_on_sigterm_with_status_0_and_forgets_its_ports(tmp_path: Path) -> None:
    registry = start_registry(tmp_path)
    try:
        ports = json.loads((tmp_path / PORTS_FILE).read_text(encoding="utf-8"))
        assert ports["pid"] == registry.pid
        assert [ports[role] for role in ("registry", "auth", "cdn")] == [
            list(registry.ports[role]) for role in ("registry", "auth", "cdn")
        ]
        os.kill(registry.pid, signal.SIGTERM)
    finally:
        registry.stop()
    assert registry.exit_status == 0
    assert not (tmp_path / PORTS_FILE).exists()


def test_a_taken_port_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LabError, match=r"cannot listen on 127\.0\.0\.1"):
            start_registry(tmp_path, cdn=("127.0.0.1", taken.getsockname()[1]), timeout=10)
    assert not (tmp_path / PORTS_FILE).exists()
