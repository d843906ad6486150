"""The JSON report (schema ``tofu3.report/v1``, extended only additively).

Nothing secret is in a Verdict, so nothing secret can reach a report: tokens stay inside the
curl config on the vantages, and URLs are recorded without their query strings.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tofu3 import __version__
from tofu3.observation import Observation
from tofu3.release.url import ReleaseReference
from tofu3.verdict import Verdict

SCHEMA = "tofu3.report/v1"


def _observation(obs: Observation) -> dict[str, Any]:
    document: dict[str, Any] = {
        "digest": obs.digest,
        "size": obs.size,
        "expected_digest": obs.expected.digest,
        "expected_size": obs.expected.size,
        "status": obs.status,
        "remote_ip": obs.remote_ip,
        "url": obs.url,
    }
    if obs.redirects is not None:
        document["redirects"] = obs.redirects
    return document


def _resolved(verdict: Verdict) -> dict[str, Any]:
    reference = verdict.reference
    resolved: dict[str, Any] = {
        "registry": reference.domain,
        "registry_host": reference.registry_host,
        "repository": reference.path,
        "tag": reference.effective_tag,
        "digest": verdict.root_digest,
        "pinned_digest": reference.digest,
    }
    if isinstance(reference, ReleaseReference):
        # A release file: the host stands where the registry would, its path for the
        # repository; the URLs say where the bytes came from (queries are never recorded).
        finals = {obs.url for run in verdict.runs for obs in run.observations if obs.url}
        resolved["repository"] = reference.url_path
        resolved["url"] = reference.url.split("?", 1)[0]
        resolved["final_url"] = next(iter(finals)) if len(finals) == 1 else None
    return resolved


def report_dict(verdict: Verdict, *, generated_at: datetime | None = None) -> dict[str, Any]:
    """The report for one reference, as a JSON-ready dict."""
    reference = verdict.reference
    when = generated_at or datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "tool": {"name": "tofu3", "version": __version__},
        "generated_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "reference": reference.original,
        "resolved": _resolved(verdict),
        "verdict": verdict.kind.value,
        "exit_code": verdict.exit_code,
        "pinned_reference": verdict.pinned_reference,
        "vantages": [
            {
                "name": run.name,
                "host": run.host,
                "ok": run.completed,
                "curl_version": run.curl_version,
                "hash_tool": run.hash_tool,
                "host_key_fingerprint": run.host_key_fingerprint,
                "duration_seconds": round(run.duration, 3),
                "remote_ips": sorted({o.remote_ip for o in run.observations if o.remote_ip}),
                "error": None if run.failure is None else run.failure.message,
                "error_code": None if run.failure is None else run.failure.code,
            }
            for run in verdict.runs
        ],
        "artifacts": [
            {
                "key": artifact.key,
                "kind": artifact.kind.value,
                "digest": artifact.digest,
                "size": artifact.size,
                "media_type": artifact.media_type,
                "platform": artifact.platform,
                "observations": {
                    name: _observation(obs) for name, obs in artifact.observations.items()
                },
                "agreed": artifact.agreed,
            }
            for artifact in verdict.artifacts
        ],
        "findings": [
            {
                "severity": finding.severity.value,
                "code": finding.code,
                "message": finding.message,
                "vantage": finding.vantage,
                "digest": finding.digest,
                "artifact": finding.key,
            }
            for finding in verdict.findings
        ],
    }
