"""Properties of every parser of untrusted input: whatever arrives, the result is a value or a
tofu3 error (a Tofu3Error subclass), never another exception that would crash a run or, worse,
be caught somewhere as "some failure" and read as inconclusive.

Each parser gets raw input (bytes or text) and structured input shaped like the real thing, so
the deep validation paths run too; the structured tests also check that both outcomes really
happened, so a strategy that only ever produces garbage cannot pass unnoticed.

Inputs that once reached bugs (integers of more than 4300 digits, YAML scalars PyYAML cannot
build) are not generated here: they have their own tests in test_manifest.py,
test_challenge.py and test_inventory.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tofu3.digest import algorithm_of, hex_of, parse_digest
from tofu3.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidDigest,
    InventoryError,
    ProtocolViolation,
    ResponseTooLarge,
    Tofu3Error,
)
from tofu3.inventory import load_inventory_text
from tofu3.oci import media_types as mt
from tofu3.oci.challenge import parse_challenges, parse_token_response, token_url
from tofu3.oci.manifest import ImageManifest, Index, parse_manifest
from tofu3.oci.platform import parse_platform_filter

# No deadline and no "too slow" health check: CI machines are shared and noisy, and a slow
# draw says nothing about the parser.
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Field name -> strategy tables, typed loosely enough for values of mixed types.
Fields = dict[str, st.SearchStrategy[Any]]

SHA256_A = "sha256:" + "a" * 64

# --- Strategies -------------------------------------------------------------------------------

# JSON values; integers stay far below the 4300-digit conversion limit (a known bug).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)

content_types = st.sampled_from(
    [
        None,
        mt.OCI_INDEX,
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_SCHEMA1,
        mt.DOCKER_SCHEMA1_SIGNED,
        "application/json",
        "application/octet-stream",
        f"{mt.OCI_INDEX}; charset=utf-8",
        "text/html",
    ]
)
hex_text = st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=130)
good_digests = st.sampled_from(["sha256:", "sha512:"]).flatmap(
    lambda prefix: st.text(
        alphabet="0123456789abcdef",
        min_size=64 if prefix == "sha256:" else 128,
        max_size=64 if prefix == "sha256:" else 128,
    ).map(lambda hex_part: prefix + hex_part)
)
wild_digests = (
    st.builds("{}:{}".format, st.sampled_from(["sha256", "sha512", "md5", "SHA256", ""]), hex_text)
    | st.text(max_size=80)
    | json_scalars
)
good_sizes = st.integers(min_value=0, max_value=2**53 - 1)
wild_sizes = st.integers(min_value=-(2**64), max_value=2**64) | json_scalars
layer_types = st.sampled_from(
    ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.config.v1+json"]
)
platform_fields: Fields = {
    "os": st.sampled_from(["linux", "darwin", "unknown"]),
    "architecture": st.sampled_from(["amd64", "arm64", "unknown"]),
}
platform_optional: Fields = {
    "variant": st.sampled_from(["v8", "v7", ""]),
    "os.version": st.text(max_size=12),
}
platforms = st.fixed_dictionaries(platform_fields, optional=platform_optional)
annotation_maps = st.dictionaries(
    st.sampled_from(
        ["org.opencontainers.image.ref.name", "sh.brew.bottle.digest", "vnd.docker.reference.type"]
    )
    | st.text(max_size=10),
    st.text(max_size=20),
    max_size=3,
)


def _descriptors(media_types: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    required: Fields = {"mediaType": media_types, "digest": good_digests, "size": good_sizes}
    optional: Fields = {"platform": platforms, "annotations": annotation_maps}
    valid = st.fixed_dictionaries(required, optional=optional)
    anything: Fields = {
        "mediaType": media_types | json_scalars,
        "digest": good_digests | wild_digests,
        "size": good_sizes | wild_sizes,
        "platform": platforms | json_values,
        "annotations": annotation_maps | json_values,
    }
    wild = st.fixed_dictionaries({}, optional=anything)
    return st.one_of(valid, valid, valid, wild, json_values)


child_types = st.sampled_from(
    [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_SCHEMA1]
)
schema_versions = st.one_of(st.just(2), st.just(2), st.just(2), st.just(1), json_scalars)
index_fields: Fields = {
    "schemaVersion": schema_versions,
    "manifests": st.lists(_descriptors(child_types), max_size=4),
}
index_optional: Fields = {
    "mediaType": st.sampled_from([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST]) | json_scalars,
    "annotations": annotation_maps | json_values,
    "layers": st.lists(_descriptors(layer_types), max_size=2),
}
index_documents = st.fixed_dictionaries(index_fields, optional=index_optional)
manifest_fields: Fields = {
    "schemaVersion": schema_versions,
    "config": _descriptors(layer_types),
    "layers": st.lists(_descriptors(layer_types), max_size=4),
}
manifest_optional: Fields = {
    "mediaType": st.sampled_from([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST]) | json_scalars,
    "annotations": annotation_maps | json_values,
    "manifests": st.lists(_descriptors(child_types), max_size=2),
}
manifest_documents = st.fixed_dictionaries(manifest_fields, optional=manifest_optional)
manifest_documents_any = st.one_of(index_documents, manifest_documents, json_values)


# --- Manifests ----------------------------------------------------------------------------


@EXAMPLES
@given(data=st.binary(max_size=2048), content_type=content_types)
def test_parse_manifest_on_arbitrary_bytes_ends_in_a_value_or_an_integrity_error(
    data: bytes, content_type: str | None
) -> None:
    try:
        parsed = parse_manifest(data, content_type)
    except IntegrityError:
        return
    assert isinstance(parsed, Index | ImageManifest)


def test_parse_manifest_on_manifest_shaped_json_ends_in_a_value_or_an_integrity_error() -> None:
    outcomes: Counter[str] = Counter()

    @EXAMPLES
    @given(document=manifest_documents_any, content_type=content_types)
    def check(document: Any, content_type: str | None) -> None:
        data = json.dumps(document).encode()
        try:
            parsed = parse_manifest(data, content_type)
        except IntegrityError:
            outcomes["refused"] += 1
            return
        outcomes["parsed"] += 1
        # What is accepted is safe to use: every digest passes the grammar, every size is an
        # int a Go client would read the same way.
        descriptors = parsed.manifests if isinstance(parsed, Index) else parsed.blobs()
        for descriptor in descriptors:
            assert parse_digest(descriptor.digest) == descriptor.digest
            assert type(descriptor.size) is int
            assert 0 <= descriptor.size < 2**53

    check()
    assert outcomes["parsed"] > 0
    assert outcomes["refused"] > 0


# --- Challenges and tokens ------------------------------------------------------------------

schemes = st.sampled_from(["Bearer", "Basic", "bearer", "Negotiate"]) | st.from_regex(
    r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,8}", fullmatch=True
)
param_names = st.sampled_from(["realm", "service", "scope", "error", "Realm"]) | st.text(max_size=6)
param_values = st.sampled_from(
    [
        "https://ghcr.io/token",
        "https://auth.docker.io/token",
        "http://ghcr.io/token",
        "https://user:pw@ghcr.io/token",
        "ghcr.io",
        "repository:homebrew/core/wget:pull",
    ]
) | st.text(max_size=30)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


good_realms = st.sampled_from(
    ["https://ghcr.io/token", "https://auth.docker.io/token", "https://127.0.0.1:8443/t?x=1"]
)


@st.composite
def challenge_headers(draw: st.DrawFn) -> str:
    """One to three challenges; one header in two has a well-formed Bearer realm."""
    challenges = []
    if draw(st.booleans()):
        realm = [("realm", draw(good_realms), True)]
        service = draw(st.lists(st.just(("service", "ghcr.io", draw(st.booleans()))), max_size=1))
        challenges.append(
            "Bearer " + ",".join(f"{k}={_quoted(v) if q else v}" for k, v, q in realm + service)
        )
    for _ in range(draw(st.integers(min_value=0 if challenges else 1, max_value=2))):
        params = draw(st.lists(st.tuples(param_names, param_values, st.booleans()), max_size=4))
        rendered = ",".join(f"{k}={_quoted(v) if quote else v}" for k, v, quote in params)
        challenges.append(f"{draw(schemes)} {rendered}".rstrip())
    challenges = draw(st.permutations(challenges))
    header = draw(st.sampled_from([", ", ",", " , "])).join(challenges)
    if draw(st.integers(0, 2)) == 0:
        # One random edit somewhere: a stray quote, comma, backslash, control byte, anything.
        at = draw(st.integers(min_value=0, max_value=len(header)))
        header = header[:at] + draw(st.text(min_size=1, max_size=2)) + header[at:]
    return header


@EXAMPLES
@given(header=st.text(max_size=300))
def test_parse_challenges_on_arbitrary_text_ends_in_challenges_or_a_tofu3_error(
    header: str,
) -> None:
    try:
        challenges = parse_challenges(header)
    except (ProtocolViolation, ResponseTooLarge):
        return
    assert all(c.scheme == c.scheme.lower() for c in challenges)


def test_challenge_shaped_headers_end_in_a_token_url_or_a_tofu3_error() -> None:
    outcomes: Counter[str] = Counter()

    @EXAMPLES
    @given(header=challenge_headers(), repository=st.sampled_from(["homebrew/core/wget", "a/b"]))
    def check(header: str, repository: str) -> None:
        try:
            challenges = parse_challenges(header)
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            if bearer is None:
                outcomes["no bearer"] += 1
                return
            url = token_url(bearer, repository)
        except Tofu3Error:
            outcomes["refused"] += 1
            return
        outcomes["token url"] += 1
        # What goes into curl's config is https, one line, and unquoted.
        assert url.startswith("https://")
        assert not any(ord(c) <= 32 or c in '"\\' for c in url)

    check()
    assert outcomes["token url"] > 0
    assert outcomes["refused"] > 0


token_texts = st.from_regex(r"[A-Za-z0-9._~+/=-]{1,40}", fullmatch=True) | st.text(max_size=40)
token_fields: Fields = {
    "token": token_texts | json_values,
    "access_token": token_texts | json_values,
    "expires_in": json_scalars,
    "issued_at": st.text(max_size=25),
}
token_documents = st.fixed_dictionaries({}, optional=token_fields)


@EXAMPLES
@given(data=st.binary(max_size=512))
def test_parse_token_response_on_arbitrary_bytes_ends_in_a_token_or_a_tofu3_error(
    data: bytes,
) -> None:
    try:
        token = parse_token_response(data)
    except (ProtocolViolation, ResponseTooLarge):
        return
    assert re.fullmatch(r"[A-Za-z0-9._~+/=-]+", token)


def test_token_shaped_json_ends_in_a_safe_token_or_a_tofu3_error() -> None:
    outcomes: Counter[str] = Counter()

    @EXAMPLES
    @given(document=token_documents | json_values)
    def check(document: Any) -> None:
        try:
            token = parse_token_response(json.dumps(document).encode())
        except (ProtocolViolation, ResponseTooLarge):
            outcomes["refused"] += 1
            return
        outcomes["token"] += 1
        # A token is written into a curl config line: nothing there may end or escape it.
        assert not any(c in token for c in '"\\\r\n\t ')

    check()
    assert outcomes["token"] > 0
    assert outcomes["refused"] > 0


# --- Inventories ----------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True) | st.text(max_size=8)
hosts = st.sampled_from(
    ["203.0.113.10", "198.51.100.7", "192.0.2.44", "vantage.example", "[2001:db8::1]", "127.0.0.1"]
) | st.text(max_size=12)
ports = st.integers(min_value=1, max_value=65535) | st.integers(min_value=-(2**40), max_value=2**40)
curl_arg = st.sampled_from(
    [
        "--proxy",
        "socks5h://127.0.0.1:9050",
        "--cacert",
        "/x/ca.pem",
        "-4",
        "-k",
        "-kL",
        "--insecure",
    ]
) | st.text(max_size=10)
host_keys = st.sampled_from(
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC4YK3uUQPOZGD1C1dmwKdep7i9kRVlwYpAwR/OVgVKC",
        "ssh-dss AAAA",
        "AAAA",
    ]
) | st.text(max_size=20)
# Scalars for the YAML dumper: strings are quoted by it where YAML would resolve them.
yaml_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=10)
good_fields: Fields = {
    "port": st.integers(min_value=1, max_value=65535),
    "user": st.sampled_from(["tofu", "tofu3", "ubuntu"]),
    "identity_file": st.sampled_from(["~/.ssh/tofu3_ed25519", "/keys/id"]),
    "host_key": host_keys.filter(lambda key: key.startswith("ssh-ed25519")),
    "curl_args": st.lists(st.sampled_from(["--proxy", "socks5h://127.0.0.1:9050", "-4"])),
    "note": st.from_regex(r"[A-Za-z0-9 ,.]{0,20}", fullmatch=True),
}
wild_fields: Fields = {
    "port": ports | yaml_scalars,
    "user": st.sampled_from(["tofu", "root;id"]) | yaml_scalars,
    "identity_file": st.sampled_from(["~/.ssh/tofu3_ed25519"]) | yaml_scalars,
    "host_key": host_keys | yaml_scalars,
    "curl_args": st.lists(curl_arg, max_size=3) | yaml_scalars,
    "note": st.text(max_size=20) | st.lists(yaml_scalars, max_size=2),
}


@st.composite
def inventory_documents(draw: st.DrawFn) -> Any:
    """Inventories that are mostly well formed, with one part in three drawn wild."""
    wild = draw(st.integers(0, 2)) == 0
    fields = wild_fields if wild else good_fields

    def vantage(index: int) -> dict[str, Any]:
        item: dict[str, Any] = (
            {"name": draw(names), "host": draw(hosts)}
            if wild
            else {"name": f"v{index}", "host": f"10.0.0.{index}"}
        )
        for key in draw(st.lists(st.sampled_from(sorted(fields)), unique=True)):
            item[key] = draw(fields[key])
        if draw(st.integers(0, 9)) == 0:
            item[draw(st.sampled_from(["hostname", "Port", "extra"]))] = draw(yaml_scalars)
        return item

    count = draw(st.integers(0, 5) if wild else st.integers(2, 5))
    document: dict[str, Any] = {"vantages": [vantage(i) for i in range(count)]}
    if draw(st.booleans()):
        document["version"] = draw(st.just(1) | yaml_scalars) if wild else 1
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
        document["defaults"] = {key: draw(fields[key]) for key in keys}
        if wild and draw(st.booleans()):
            document["defaults"]["name"] = draw(names)
    if draw(st.integers(0, 9)) == 0:
        document[draw(st.sampled_from(["vantage", "default", "Version"]))] = draw(yaml_scalars)
    return document


@EXAMPLES
@given(text=st.text(max_size=400))
def test_load_inventory_text_on_arbitrary_text_ends_in_an_inventory_or_its_error(
    text: str,
) -> None:
    try:
        inventory = load_inventory_text(text)
    except InventoryError:
        return
    assert len(inventory.vantages) >= 3


def test_inventory_shaped_yaml_ends_in_an_inventory_or_its_error() -> None:
    outcomes: Counter[str] = Counter()

    @EXAMPLES
    @given(document=inventory_documents(), flow=st.booleans())
    def check(document: Any, flow: bool) -> None:
        text = yaml.safe_dump(document, sort_keys=False, default_flow_style=flow)
        try:
            inventory = load_inventory_text(text)
        except InventoryError:
            outcomes["refused"] += 1
            return
        outcomes["loaded"] += 1
        # What loads is what reaches ssh and a remote shell: checked, distinct, enough.
        assert len(inventory.vantages) >= 3
        assert len(set(inventory.names())) == len(inventory.vantages)
        for vantage in inventory.vantages:
            assert re.fullmatch(r"[A-Za-z0-9_.:%\[\]-]+", vantage.host)
            assert not vantage.host.startswith("-")
            assert 1 <= vantage.port <= 65535
            assert not {"-k", "--insecure", "-kL"} & set(vantage.curl_args)

    check()
    assert outcomes["loaded"] > 0
    assert outcomes["refused"] > 0


# --- Digests and platform filters --------------------------------------------------------------


@EXAMPLES
@given(value=st.text(max_size=140) | wild_digests | good_digests)
def test_parse_digest_ends_in_a_checked_digest_or_invalid_digest(value: object) -> None:
    try:
        digest = parse_digest(value)
    except InvalidDigest:
        return
    assert algorithm_of(digest) in ("sha256", "sha512")
    assert len(hex_of(digest)) == {"sha256": 64, "sha512": 128}[algorithm_of(digest)]
    assert re.fullmatch(r"[0-9a-f]+", hex_of(digest))


@EXAMPLES
@given(
    text=st.text(max_size=40)
    | st.from_regex(r"[a-zA-Z0-9_./;$ -]{0,20}", fullmatch=True)
    | st.from_regex(r"[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,3}", fullmatch=True)
)
def test_parse_platform_filter_ends_in_a_filter_or_a_configuration_error(text: str) -> None:
    try:
        parsed = parse_platform_filter(text)
    except ConfigurationError:
        return
    # An accepted filter carries nothing a shell or a URL would read specially.
    assert re.fullmatch(r"[a-z0-9._/-]+", parsed.text)
    assert parsed.bottle_tag is not None or parsed.os is not None
