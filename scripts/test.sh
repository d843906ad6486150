#!/bin/sh
# Install what the tests need (system packages included) and run the whole suite: unit tests,
# and integration tests with real sshd, curl, the lab registry and the CNCF distribution
# registry. Network-namespace tests need root (CI runs as root).
set -eu
cd "$(dirname "$0")/.."
# zsh, fish, tcsh, busybox, dropbear-bin: vantages built like real ones (test_real_vantages.py).
sh scripts/install.sh docker-registry skopeo apache2-utils zsh fish tcsh busybox dropbear-bin
.venv/bin/ruff check tofu3 tests bench
.venv/bin/ruff format --check tofu3 tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
