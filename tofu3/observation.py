"""What the vantages saw: plain values, the only input of the verdict."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from tofu3.digest import Digest


class ArtifactKind(str, enum.Enum):
    """What an artifact is in the tree (contract values)."""

    INDEX = "index"
    MANIFEST = "manifest"
    CONFIG = "config"
    LAYER = "layer"
    FILE = "file"


class FailureKind(str, enum.Enum):
    """Which side of a trust boundary a vantage's failure is on."""

    TRANSPORT = "transport"  # could not finish: says nothing about the artifact
    INTEGRITY = "integrity"  # the registry or path said something wrong
    CONFIGURATION = "configuration"


@dataclass(frozen=True)
class Expected:
    """What the parent descriptor (as this vantage received it) promised."""

    digest: Digest | None
    size: int | None
    media_type: str | None


@dataclass(frozen=True)
class Observation:
    """One artifact as one vantage saw it."""

    key: str
    kind: ArtifactKind
    platform: str | None
    expected: Expected
    digest: Digest
    size: int
    media_type: str | None = None
    status: int = 0
    remote_ip: str = ""
    url: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Redirects followed to reach ``url``; None where they are not recorded.
    redirects: int | None = None


@dataclass(frozen=True)
class Failure:
    """Why a vantage did not finish."""

    kind: FailureKind
    code: str
    message: str
    key: str | None = None


@dataclass(frozen=True)
class VantageRun:
    """Everything one vantage did."""

    name: str
    host: str
    curl_version: str = ""
    hash_tool: str = ""
    host_key_fingerprint: str = ""
    observations: tuple[Observation, ...] = ()
    failure: Failure | None = None
    duration: float = 0.0

    @property
    def completed(self) -> bool:
        """True when the vantage did every step."""
        return self.failure is None

    def by_key(self) -> dict[str, Observation]:
        """Observations indexed by artifact key."""
        return {o.key: o for o in self.observations}
