"""Remote command lines: everything tofu3 runs on a vantage is POSIX sh, whatever the login
shell of the vantage's user."""

from __future__ import annotations

import shlex


def remote_sh(script: str) -> str:
    """A command line that runs ``script`` in POSIX sh whatever the vantage user's login shell."""
    return f"exec sh -c {shlex.quote(script)}"
