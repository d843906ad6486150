"""Registry credentials: where they are read from, and the hosts they may be sent to."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tofu3.credentials import Credentials, CredentialsRejected, CredentialsRequired, config_key
from tofu3.credentials.auth import BasicAuth, TokenAuth, plan_authentication, realm_allowed, refusal
from tofu3.credentials.docker_config import docker_credentials
from tofu3.credentials.resolve import password_from_stdin_text, resolve_credentials
from tofu3.errors import ConfigurationError, ProtocolViolation
from tofu3.reference import parse_reference

SECRET = "s3cr3t-Pa55"
ALICE = Credentials("alice", SECRET, source="test credentials")


def write_config(directory: Path, document: object) -> dict[str, str]:
    (directory / "config.json").write_text(json.dumps(document))
    return {"DOCKER_CONFIG": str(directory), "PATH": os.environ.get("PATH", "")}


def test_docker_hub_credentials_are_looked_up_under_dockers_own_key() -> None:
    assert config_key("registry-1.docker.io") == "https://index.docker.io/v1/"
    assert config_key("ghcr.io") == "ghcr.io"
    assert config_key("localhost:5000") == "localhost:5000"


def test_the_password_is_never_in_a_repr() -> None:
    assert SECRET not in repr(ALICE)
    assert SECRET not in repr(BasicAuth(ALICE.basic_authorization()))
    assert SECRET not in repr(TokenAuth("https://r.example/token", ALICE.basic_authorization()))


def test_basic_authorization_is_base64_of_user_colon_password() -> None:
    value = ALICE.basic_authorization()
    assert value.startswith("Basic ")
    assert base64.b64decode(value[6:]).decode() == f"alice:{SECRET}"


@pytest.mark.parametrize(
    ("user", "password"), [("al:ice", "x"), ("", "x"), ("a", ""), ("a", "x\ny")]
)
def test_unusable_credentials_are_refused_without_showing_the_password(
    user: str, password: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Credentials(user, password)
    assert password not in str(caught.value) or not password


def test_credentials_go_to_a_realm_on_the_registrys_own_host() -> None:
    header = 'Bearer realm="https://reg.example:5001/auth",service="reg"'
    plan = plan_authentication(
        header, registry_host="reg.example:5000", repository="team/app", credentials=ALICE
    )
    assert isinstance(plan, TokenAuth)
    assert plan.url.startswith("https://reg.example:5001/auth?service=reg&scope=")
    assert plan.authorization == ALICE.basic_authorization()


def test_docker_hub_credentials_go_to_auth_docker_io() -> None:
    assert realm_allowed("registry-1.docker.io", "https://auth.docker.io/token")
    assert not realm_allowed("ghcr.io", "https://auth.docker.io/token")


def test_credentials_are_not_sent_to_a_realm_on_another_host() -> None:
    header = 'Bearer realm="https://collector.evil.example/token",service="reg"'
    with pytest.raises(ConfigurationError) as caught:
        plan_authentication(
            header, registry_host="reg.example", repository="team/app", credentials=ALICE
        )
    assert "collector.evil.example" in str(caught.value)
    assert "--trust-realm" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_realm_host_the_user_trusted_may_have_the_credentials() -> None:
    header = 'Bearer realm="https://auth.corp.example/token"'
    plan = plan_authentication(
        header,
        registry_host="reg.corp.example",
        repository="app",
        credentials=ALICE,
        trusted_realm_hosts=frozenset({"auth.corp.example"}),
    )
    assert isinstance(plan, TokenAuth)
    assert plan.authorization is not None


def test_anonymous_token_flow_sends_nothing_whatever_the_realm() -> None:
    header = 'Bearer realm="https://elsewhere.example/token"'
    plan = plan_authentication(
        header, registry_host="reg.example", repository="a", credentials=None
    )
    assert plan == TokenAuth("https://elsewhere.example/token?scope=repository%3Aa%3Apull")


def test_basic_challenge_uses_the_credentials_with_the_registry_itself() -> None:
    plan = plan_authentication(
        'Basic realm="Registry Realm"', registry_host="r.example", repository="a", credentials=ALICE
    )
    assert plan == BasicAuth(ALICE.basic_authorization())


def test_basic_challenge_without_credentials_asks_for_them() -> None:
    with pytest.raises(CredentialsRequired, match="requires credentials"):
        plan_authentication(
            'Basic realm="x"', registry_host="r.example", repository="a", credentials=None
        )


def test_a_401_without_a_challenge_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation):
        plan_authentication(None, registry_host="r.example", repository="a", credentials=ALICE)


def test_refusals_say_whether_credentials_were_missing_or_wrong() -> None:
    assert isinstance(refusal(401, "r", None, what="token request"), CredentialsRequired)
    wrong = refusal(401, "r", ALICE, what="token request")
    assert isinstance(wrong, CredentialsRejected)
    assert SECRET not in str(wrong)
    assert refusal(500, "r", ALICE, what="token request") is None


def test_auths_entry_with_base64_auth(tmp_path: Path) -> None:
    pair = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    env = write_config(tmp_path, {"auths": {"localhost:5000": {"auth": pair}}})
    found = docker_credentials("localhost:5000", env)
    assert found is not None
    assert (found.username, found.password) == ("alice", SECRET)
    assert docker_credentials("localhost:5001", env) is None


def test_auths_entry_with_username_and_password_and_a_legacy_url_key(tmp_path: Path) -> None:
    env = write_config(
        tmp_path, {"auths": {"https://reg.example/v1/": {"username": "bob", "password": SECRET}}}
    )
    found = docker_credentials("reg.example", env)
    assert found is not None
    assert (found.username, found.password) == ("bob", SECRET)


def test_docker_hub_entry_is_found_for_registry_1(tmp_path: Path) -> None:
    pair = base64.b64encode(b"hubuser:hubpass").decode()
    env = write_config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": pair}}})
    found = docker_credentials("registry-1.docker.io", env)
    assert found is not None
    assert found.username == "hubuser"


def test_identity_tokens_are_refused_rather_than_misused(tmp_path: Path) -> None:
    env = write_config(tmp_path, {"auths": {"r.example": {"identitytoken": SECRET}}})
    with pytest.raises(ConfigurationError, match="identity token") as caught:
        docker_credentials("r.example", env)
    assert SECRET not in str(caught.value)


def test_credential_helper_named_for_the_registry_is_run_with_the_key_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-unit"
    helper.write_text(
        "#!/bin/sh\nread key\n"
        f'[ "$1" = get ] && [ "$key" = r.example ] && '
        f'printf \'{{"ServerURL":"%s","Username":"carol","Secret":"{SECRET}"}}\' "$key" && exit 0\n'
        "echo 'credentials not found in native keychain'; exit 1\n"
    )
    helper.chmod(0o755)
    env = write_config(tmp_path, {"credHelpers": {"r.example": "unit"}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    monkeypatch.setenv("PATH", env["PATH"])
    found = docker_credentials("r.example", env)
    store_env = write_config(tmp_path, {"credsStore": "unit"})
    missing = docker_credentials("other.example", store_env)
    assert found is not None
    assert (found.username, found.password) == ("carol", SECRET)
    assert missing is None


def test_a_global_store_whose_helper_is_not_installed_falls_back_to_auths(tmp_path: Path) -> None:
    env = write_config(
        tmp_path,
        {"credsStore": "not-installed-here", "auths": {"r.example": {"auth": ""}}},
    )
    assert docker_credentials("r.example", env) is None


def test_password_stdin_loses_exactly_one_trailing_newline() -> None:
    assert password_from_stdin_text("pw\n") == "pw"
    assert password_from_stdin_text("pw\r\n") == "pw"
    assert password_from_stdin_text("pw\n\n") == "pw\n"
    with pytest.raises(ConfigurationError):
        password_from_stdin_text("\n")


def test_username_credentials_apply_to_exactly_one_registry() -> None:
    one = [parse_reference("localhost:5000/a:1"), parse_reference("localhost:5000/b:2")]
    resolved = resolve_credentials(one, username="u", password="p")
    assert resolved.for_registry("localhost:5000") is not None
    two = [*one, parse_reference("ghcr.io/c:3")]
    with pytest.raises(ConfigurationError, match="one registry"):
        resolve_credentials(two, username="u", password="p")
    with pytest.raises(ConfigurationError, match="go together"):
        resolve_credentials(one, username="u", password=None)
