"""Suite-wide rules: in CI nothing may be skipped, a skip there is a failure; no test writes
to the user's own ledger (~/.local/state/tofu3) or reads the user's ~/.ssh/config."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

# Shared, noisy machines: no per-example deadline and no "too slow" health check anywhere
# (a slow draw says nothing about the parser under test).
settings.register_profile("tofu3", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tofu3")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Under CI=true a skipped test counts as failed: CI runs as root with every system
    package installed, so nothing has a reason to skip there."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def private_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every tofu3 the tests run (in this process or a child) records to a ledger of the
    test session, never to the user's."""
    previous = os.environ.get("TOFU3_STATE_DIR")
    os.environ["TOFU3_STATE_DIR"] = str(tmp_path_factory.mktemp("tofu3-state"))
    yield
    if previous is None:
        os.environ.pop("TOFU3_STATE_DIR", None)
    else:
        os.environ["TOFU3_STATE_DIR"] = previous


@pytest.fixture(scope="session", autouse=True)
def no_user_ssh_config() -> Iterator[None]:
    """The developer's ~/.ssh/config (a ``Host *`` ProxyJump, say) must not change what the
    tests see; tests of ssh_config handling set TOFU3_SSH_CONFIG themselves."""
    previous = os.environ.get("TOFU3_SSH_CONFIG")
    os.environ["TOFU3_SSH_CONFIG"] = os.devnull
    yield
    if previous is None:
        os.environ.pop("TOFU3_SSH_CONFIG", None)
    else:
        os.environ["TOFU3_SSH_CONFIG"] = previous
