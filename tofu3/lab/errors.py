"""The lab's one error type.

A lab that cannot start or stop is a problem with the user's set-up (ports, permissions,
leftovers of an earlier lab), not with any artifact, so it is a configuration error (exit 2).
"""

from __future__ import annotations

from tofu3.errors import ConfigurationError


class LabError(ConfigurationError):
    """The lab could not be started, inspected, changed or stopped."""
