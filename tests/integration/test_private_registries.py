"""Private registries: the CNCF distribution registry with htpasswd auth and with token auth
(a token server from tests/integration/token_server.py), verified from the lab's three real
sshd vantages with credentials from --username/--password-stdin, Docker's config.json and a
docker-credential helper. Wrong or missing credentials end in a clear configuration error
(exit 2), never a verdict; the password reaches no command line, report or log.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.distribution import (
    DOCKER_REGISTRY,
    WGET_REPOSITORY,
    WGET_TAG,
    DistributionRegistry,
    bottle_tree,
    push_tree,
    real_ventura_bottle,
    start_distribution_registry,
)
from tests.integration.token_server import TokenServer, start_token_server, token_auth_section
from tests.integration.wrapped import start_wrapped
from tofu3.lab.manager import LabState, write_inventory
from tofu3.lab.pki import ensure_pki

pytestmark = pytest.mark.integration

USER = "tofu3-tester"
PASSWORD = "Corr3ct-h0rse-" + "battery"
WRONG = "not-the-password"
HTPASSWD = Path("/usr/bin/htpasswd")
VERIFY_TIMEOUT = 180.0
KINDS = ["htpasswd", "token"]

LOGGING_CURL = """#!/bin/sh
printf '%s\\n' "$*" >> {log}/argv.log
tee -a {log}/stdin.log | /usr/bin/curl "$@"
"""


@dataclass
class Private:
    """A registry that wants credentials, and the token server behind it (token mode)."""

    registry: DistributionRegistry
    token_server: TokenServer | None

    @property
    def reference(self) -> str:
        """The reference the tests verify."""
        return f"{self.registry.host}/{WGET_REPOSITORY}:{WGET_TAG}"

    def curl_args(self) -> list[str]:
        """Route a vantage's curl to the registry (and the token server) on 127.0.0.1."""
        args = ["--connect-to", f"{self.registry.host}:127.0.0.1:{self.registry.port}"]
        if self.token_server is not None:
            port = self.token_server.port
            args += ["--connect-to", f"localhost:{port}:127.0.0.1:{port}"]
        return args


def seeded_registry(
    directory: Path, ca_cert: Path, ca_key: Path, auth: dict[str, object]
) -> DistributionRegistry:
    """Push the wget tree into an open registry, stop it, and serve the same storage with
    ``auth`` on (pushing through auth would need a second set of push credentials)."""
    open_registry = start_distribution_registry(directory, ca_cert=ca_cert, ca_key=ca_key)
    try:
        push_tree(open_registry, WGET_REPOSITORY, WGET_TAG, bottle_tree([real_ventura_bottle()]))
    finally:
        open_registry.stop()
    assert not Path(f"/proc/{open_registry.pid}").exists()
    return start_distribution_registry(directory, ca_cert=ca_cert, ca_key=ca_key, auth=auth)


@pytest.fixture(scope="module", params=KINDS)
def private(
    request: pytest.FixtureRequest, loopback_lab: LabState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Private]:
    """A distribution registry with htpasswd auth, or with token auth; stopped by pid."""
    if not DOCKER_REGISTRY.is_file() or not HTPASSWD.is_file():
        pytest.fail("docker-registry and apache2-utils (htpasswd) must be installed")
    pki = ensure_pki(loopback_lab.directory)
    directory = tmp_path_factory.mktemp(f"private-{request.param}")
    token_server: TokenServer | None = None
    if request.param == "htpasswd":
        htpasswd = directory / "htpasswd"
        line = subprocess.run(
            [str(HTPASSWD), "-B", "-i", "-n", USER],
            input=PASSWORD,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        htpasswd.write_text(line)
        auth: dict[str, object] = {"htpasswd": {"realm": "tofu3-test", "path": str(htpasswd)}}
    else:
        token_server = start_token_server(
            directory / "tokens",
            ca_cert=pki.ca_cert,
            ca_key=pki.ca_key,
            username=USER,
            password=PASSWORD,
        )
        auth = token_auth_section(token_server)
    try:
        registry = seeded_registry(directory / "registry", pki.ca_cert, pki.ca_key, auth)
    except BaseException:
        if token_server is not None:
            token_server.stop()
        raise
    try:
        yield Private(registry, token_server)
    finally:
        registry.stop()
        if token_server is not None:
            token_server.stop()
        assert not Path(f"/proc/{registry.pid}").exists()


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """An empty $DOCKER_CONFIG directory: the developer's own ~/.docker is never read."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    return directory


def inventory_for(lab: LabState, path: Path, private: Private) -> Path:
    """The lab inventory, each vantage's curl routed to the private registry."""
    extra = {v.name: private.curl_args() for v in lab.vantages}
    return write_inventory(lab, path, curl_args_extra=extra)


def verify(
    private: Private,
    inventory: Path,
    docker_config: Path,
    *extra: str,
    stdin: str = "",
    path_prefix: Path | None = None,
    report: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``tofu3 verify REF -i INVENTORY --json`` with $DOCKER_CONFIG set."""
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": str(docker_config)}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    args = [sys.executable, "-m", "tofu3", "verify", private.reference, "-i", str(inventory)]
    args += ["--json", *extra]
    if report is not None:
        args += ["--report", str(report)]
    return subprocess.run(
        args,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        env=env,
        check=False,
    )


def assert_accepted(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "accepted"
    assert [v["ok"] for v in report["vantages"]] == [True, True, True]
    assert PASSWORD not in result.stdout + result.stderr


def test_correct_credentials_on_stdin_are_accepted(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)

    result = verify(
        private,
        inventory,
        docker_config,
        "--username",
        USER,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )

    assert_accepted(result)
    if private.token_server is not None:
        # Every vantage asked the realm with credentials, and got its own token.
        asked = [r for r in private.token_server.requests if r["path"] == "/token"]
        assert sum(r["authorized"] for r in asked) >= 3


def test_wrong_credentials_are_a_clear_error_not_a_verdict(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)

    result = verify(
        private, inventory, docker_config, "--username", USER, "--password-stdin", stdin=WRONG
    )

    assert result.returncode == 2, result.stderr
    assert "were refused" in result.stderr
    assert USER in result.stderr
    assert WRONG not in result.stdout + result.stderr
    assert '"accepted"' not in result.stdout


def test_no_credentials_is_a_clear_error_saying_they_are_required(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)

    result = verify(private, inventory, docker_config)

    assert result.returncode == 2, result.stderr
    assert "requires credentials" in result.stderr
    assert "--password-stdin" in result.stderr


def test_credentials_from_docker_config_json_are_used(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    document = {"auths": {private.registry.host: {"auth": pair}}}
    (docker_config / "config.json").write_text(json.dumps(document))
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)

    assert_accepted(verify(private, inventory, docker_config))


def test_credentials_from_a_docker_credential_helper_are_used(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "helper-asked"
    helper = bin_dir / "docker-credential-tofu3test"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        "read -r key\n"
        f"printf '%s\\n' \"$key\" >> {asked}\n"
        f'[ "$key" = "{private.registry.host}" ] || '
        "{ echo 'credentials not found in native keychain'; exit 1; }\n"
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$key"\n'
    )
    helper.chmod(0o755)
    (docker_config / "config.json").write_text(
        json.dumps({"credHelpers": {private.registry.host: "tofu3test"}})
    )
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)

    result = verify(private, inventory, docker_config, path_prefix=bin_dir)

    assert_accepted(result)
    assert asked.read_text().splitlines() == [private.registry.host]


def test_the_password_never_reaches_a_command_line_a_report_or_a_log(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    inventory, started, logs = start_wrapped(
        loopback_lab, tmp_path / "wrapped", LOGGING_CURL, ["ams", "sfo", "sgp"]
    )
    try:
        document = yaml.safe_load(inventory.read_text())
        for entry in document["vantages"]:
            entry["curl_args"] = [*entry.get("curl_args", []), *private.curl_args()]
        inventory.write_text(yaml.safe_dump(document))
        report = tmp_path / "report.json"

        result = verify(
            private,
            inventory,
            docker_config,
            "--username",
            USER,
            "--password-stdin",
            stdin=PASSWORD,
            report=report,
        )

        assert_accepted(result)
        argv = (logs / "argv.log").read_text()
        configs = (logs / "stdin.log").read_text()
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert basic in configs, "the credentials were not sent at all: this proves nothing"
        places = {
            "a curl command line": argv,
            "the report": report.read_text(),
            "tofu3's output": result.stdout + result.stderr,
            "the registry log": private.registry.log_tail(10_000),
        }
        for vantage in started:
            if vantage.log_path.is_file():
                places[f"{vantage.name}'s sshd log"] = vantage.log_path.read_text()
        for secret in (PASSWORD, basic.split(" ", 1)[1]):
            for where, text in places.items():
                assert secret not in text, f"the password reached {where}"
        # Where the credentials went: the token realm only (token auth), or the registry
        # itself (htpasswd); blobs under token auth carry the bearer token alone.
        for config in configs.split("show-error\n")[1:]:
            url = re.search(r'^url = "([^"]+)"', config, re.M)
            assert url is not None
            if basic in config:
                if private.token_server is not None:
                    assert url.group(1).startswith(private.token_server.realm), url.group(1)
                else:
                    assert url.group(1).startswith(f"https://{private.registry.host}/v2/")
            elif private.token_server is not None and "/blobs/" in url.group(1):
                assert "Authorization: Bearer " in config
    finally:
        for vantage in started:
            vantage.stop()


def test_fetch_downloads_with_the_same_credentials_on_the_coordinator(
    loopback_lab: LabState, private: Private, docker_config: Path, tmp_path: Path
) -> None:
    inventory = inventory_for(loopback_lab, tmp_path / "inventory.yaml", private)
    output = tmp_path / "layout"
    routes = [f"{private.registry.host}:127.0.0.1:{private.registry.port}"]
    if private.token_server is not None:
        port = private.token_server.port
        routes.append(f"localhost:{port}:127.0.0.1:{port}")
    argv = [sys.executable, "-m", "tofu3", "fetch", private.reference, "-o", str(output)]
    argv += ["-i", str(inventory), "--cacert", str(loopback_lab.ca_cert)]
    for route in routes:
        argv += ["--connect-to", route]
    argv += ["--username", USER, "--password-stdin"]
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": str(docker_config)}

    result = subprocess.run(
        argv,
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "FETCHED oci-layout" in result.stdout
    assert (output / "index.json").is_file()
    assert PASSWORD not in result.stdout + result.stderr
