"""The verdict: a pure function of the observations (no I/O).

ACCEPTED only when every vantage completed every step, all agree on every digest, every
digest and size matches its descriptor, and the pinned digest matches when there is one.
REJECTED on any evidence of tampering. INCONCLUSIVE when a vantage could not finish and
nothing contradicted anything.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tofu3.digest import Digest, short
from tofu3.observation import ArtifactKind, FailureKind, Observation, VantageRun
from tofu3.reference import Reference


class VerdictKind(str, enum.Enum):
    """The three outcomes (contract values)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> int:
        """0 accepted, 1 rejected, 3 inconclusive (the CLI contract)."""
        return {"accepted": 0, "rejected": 1, "inconclusive": 3}[self.value]


class Severity(str, enum.Enum):
    """How much a finding weighs."""

    CRITICAL = "critical"  # evidence of tampering: rejects
    ERROR = "error"  # a vantage could not finish: inconclusive at best
    WARNING = "warning"  # worth reading; does not change the verdict


@dataclass(frozen=True)
class Finding:
    """One thing the verdict noticed. ``code`` is a stable string."""

    severity: Severity
    code: str
    message: str
    vantage: str | None = None
    digest: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Artifact:
    """One node of the tree, with what each vantage saw of it."""

    key: str
    kind: ArtifactKind
    platform: str | None
    digest: Digest | None
    size: int | None
    media_type: str | None
    observations: dict[str, Observation]
    agreed: bool


@dataclass(frozen=True)
class Verdict:
    """The decision and everything it rests on."""

    reference: Reference
    kind: VerdictKind
    runs: tuple[VantageRun, ...]
    artifacts: tuple[Artifact, ...]
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    root_digest: Digest | None = None

    @property
    def exit_code(self) -> int:
        """The process exit status for this verdict."""
        return self.kind.exit_code

    @property
    def pinned_reference(self) -> str | None:
        """The digest-pinned reference to use from now on (only when accepted)."""
        if self.kind is not VerdictKind.ACCEPTED or self.root_digest is None:
            return None
        return self.reference.pinned(self.root_digest)


def _natural(key: str) -> tuple[object, ...]:
    if key == "root":
        return (0,)
    parts = re.split(r"(\d+)", key)
    return (1, *[(int(p), "") if p.isdigit() else (-1, p) for p in parts])


def decide(reference: Reference, runs: Sequence[VantageRun]) -> Verdict:
    """Decide from what the vantages saw. Checks are numbered so a reviewer can audit them."""
    findings: list[Finding] = []
    names = [run.name for run in runs]

    # (1) Every vantage must have finished every step. A vantage that failed on an integrity
    #     problem (bytes that contradict their digest, malformed manifests, unsafe redirects)
    #     is evidence; one that failed in transport is only an absence of evidence.
    for run in runs:
        failure = run.failure
        if failure is None:
            continue
        severity = Severity.CRITICAL if failure.kind is FailureKind.INTEGRITY else Severity.ERROR
        findings.append(
            Finding(severity, failure.code, failure.message, vantage=run.name, key=failure.key)
        )
    if not runs:
        findings.append(Finding(Severity.ERROR, "NO_VANTAGES", "no vantage ran"))
    for run in runs:
        # A vantage that "finished" without seeing the reference proves nothing.
        if run.completed and not any(obs.key == "root" for obs in run.observations):
            findings.append(
                Finding(
                    Severity.ERROR,
                    "INCOMPLETE_OBSERVATIONS",
                    f"{run.name} reported no observation of the reference itself",
                    vantage=run.name,
                )
            )

    # (2) Every observation must match the descriptor its vantage was given.
    for run in runs:
        for obs in run.observations:
            where = _where(obs)
            if obs.expected.digest is not None and obs.digest != obs.expected.digest:
                code = "PINNED_DIGEST_MISMATCH" if obs.key == "root" else "DIGEST_MISMATCH"
                findings.append(
                    Finding(
                        Severity.CRITICAL,
                        code,
                        f"{where} on {run.name}: expected {obs.expected.digest}, "
                        f"the bytes hash to {obs.digest}",
                        vantage=run.name,
                        digest=obs.expected.digest,
                        key=obs.key,
                    )
                )
            if obs.expected.size is not None and obs.size != obs.expected.size:
                findings.append(
                    Finding(
                        Severity.CRITICAL,
                        "SIZE_MISMATCH",
                        f"{where} on {run.name}: descriptor says {obs.expected.size} bytes, "
                        f"{obs.size} received",
                        vantage=run.name,
                        digest=obs.expected.digest,
                        key=obs.key,
                    )
                )

    # (3) All vantages that saw an artifact must have seen the same bytes, and every vantage
    #     that completed must have seen the same set of artifacts.
    by_key: dict[str, dict[str, Observation]] = {}
    for run in runs:
        for obs in run.observations:
            by_key.setdefault(obs.key, {})[run.name] = obs
    completed = [run.name for run in runs if run.completed]
    artifacts: list[Artifact] = []
    for key in sorted(by_key, key=_natural):
        seen = by_key[key]
        groups: dict[str, list[str]] = {}
        for name in names:
            if name in seen:
                groups.setdefault(seen[name].digest, []).append(name)
        missing = [name for name in completed if name not in seen]
        first = next(iter(seen.values()))
        agreed = len(groups) == 1 and not missing
        if len(groups) > 1:
            sides = "; ".join(
                f"{', '.join(vantages)} saw {short(digest)}" for digest, vantages in groups.items()
            )
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    "VANTAGE_DISAGREEMENT",
                    f"{_where(first)}: vantages disagree: {sides}",
                    vantage=_odd_one_out(list(groups.values())),
                    digest=first.expected.digest,
                    key=key,
                )
            )
        if missing:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    "VANTAGE_DISAGREEMENT",
                    f"{_where(first)}: seen by {', '.join(seen)} but not by "
                    f"{', '.join(missing)}, which saw a different tree",
                    vantage=missing[0] if len(missing) == 1 else None,
                    digest=first.expected.digest,
                    key=key,
                )
            )
        digests = {obs.digest for obs in seen.values()}
        artifacts.append(
            Artifact(
                key=key,
                kind=first.kind,
                platform=first.platform,
                digest=first.digest if len(digests) == 1 else first.expected.digest,
                size=first.size if len({o.size for o in seen.values()}) == 1 else None,
                media_type=first.media_type,
                observations=seen,
                agreed=agreed,
            )
        )

    # (4) The decision: any critical finding rejects; otherwise any error leaves it open.
    if any(f.severity is Severity.CRITICAL for f in findings):
        kind = VerdictKind.REJECTED
    elif any(f.severity is Severity.ERROR for f in findings) or not all(
        run.completed for run in runs
    ):
        kind = VerdictKind.INCONCLUSIVE
    else:
        kind = VerdictKind.ACCEPTED
    root = by_key.get("root", {})
    root_digests = {obs.digest for obs in root.values()}
    return Verdict(
        reference=reference,
        kind=kind,
        runs=tuple(runs),
        artifacts=tuple(artifacts),
        findings=tuple(findings),
        root_digest=next(iter(root_digests)) if len(root_digests) == 1 else None,
    )


def _odd_one_out(groups: list[list[str]]) -> str | None:
    """The one vantage outside a clear majority, if there is exactly one; else None."""
    sizes = sorted((len(g) for g in groups), reverse=True)
    if len(sizes) < 2 or sizes[0] == sizes[1]:
        return None
    outside = [name for group in groups if len(group) != sizes[0] for name in group]
    return outside[0] if len(outside) == 1 else None


def _where(obs: Observation) -> str:
    if obs.key == "root":
        return f"{obs.kind.value} (the reference itself)"
    return f"{obs.kind.value} {obs.key}"
