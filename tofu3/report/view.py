"""What the Markdown and HTML reports show, drawn from the JSON report document alone (so
they say exactly what the JSON says): the verdict, the reference and agreed digests, the
vantages, the artifact x vantage matrix, the findings, and how to pin what was verified.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tofu3.digest import short

BOTTLE_DIGEST = "sh.brew.bottle.digest"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
# Registry-supplied words that go into commands and code blocks must be plain words.
_BOTTLE_TAG = re.compile(r"[a-z0-9_]{1,64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,200}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Cell:
    """One vantage's view of one artifact."""

    mark: str  # "same", "different", "missing"
    digest: str | None


@dataclass(frozen=True)
class MatrixRow:
    """One artifact and what each vantage saw of it."""

    key: str
    kind: str
    size: int | None
    digest: str | None
    agreed: bool
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Bottle:
    """A Homebrew bottle and the sha256 Homebrew checks it against."""

    tag: str
    file_name: str | None
    sha256: str  # the hex of the bottle's layer digest
    annotation: str | None  # sh.brew.bottle.digest in the index entry

    @property
    def annotation_agrees(self) -> bool:
        """Whether the index's sh.brew.bottle.digest names the same bytes."""
        return self.annotation == self.sha256


@dataclass(frozen=True)
class ReportView:
    """Everything a human-readable report shows for one reference."""

    verdict: str
    reference: str
    summary: str
    facts: tuple[tuple[str, str | None], ...]  # (label, value or None for "none")
    vantage_names: tuple[str, ...]
    vantages: tuple[Mapping[str, Any], ...]
    matrix: tuple[MatrixRow, ...]
    findings: tuple[Mapping[str, Any], ...]
    pinned_reference: str | None
    bottles: tuple[Bottle, ...]
    signoff: Mapping[str, Any] | None


def _summary(document: Mapping[str, Any]) -> str:
    vantages = document["vantages"]
    done = sum(1 for v in vantages if v["ok"])
    if document["verdict"] == "accepted":
        return (
            f"{done} of {len(vantages)} vantages finished and agree on every one of "
            f"{len(document['artifacts'])} artifacts; every digest and size matches."
        )
    findings = document["findings"]
    first = next((f for f in findings if f["severity"] == "critical"), None) or next(
        iter(findings), None
    )
    reason = first["message"] if first else "see the findings"
    more = len(findings) - 1
    return reason + (f" (and {more} more findings)" if more > 0 else "")


def _cells(artifact: Mapping[str, Any], names: tuple[str, ...]) -> tuple[Cell, ...]:
    cells = []
    for name in names:
        seen = artifact["observations"].get(name)
        if seen is None:
            cells.append(Cell("missing", None))
            continue
        expected_size = seen.get("expected_size")
        good = seen["digest"] == artifact["digest"] and (
            expected_size is None or seen["size"] == expected_size
        )
        cells.append(Cell("same" if good else "different", seen["digest"]))
    return tuple(cells)


def _bottles(artifacts: list[Mapping[str, Any]]) -> tuple[Bottle, ...]:
    by_key = {a["key"]: a for a in artifacts if "key" in a}
    bottles = []
    for artifact in artifacts:
        annotations = artifact.get("annotations") or {}
        if artifact["kind"] != "manifest" or BOTTLE_DIGEST not in annotations:
            continue
        layer = by_key.get(f"{artifact['key']}/layer[0]")
        if layer is None or not layer.get("digest"):
            continue
        tag = str(annotations.get(REF_NAME, "")).rpartition(".")[2]
        sha256 = str(layer["digest"]).removeprefix("sha256:")
        if not _BOTTLE_TAG.fullmatch(tag) or not _HEX64.fullmatch(sha256):
            continue  # not a bottle as Homebrew publishes them: nothing Homebrew would check
        title = str((layer.get("annotations") or {}).get(TITLE, ""))
        bottles.append(
            Bottle(
                tag=tag,
                file_name=title if _FILE_NAME.fullmatch(title) else None,
                sha256=sha256,
                annotation=annotations.get(BOTTLE_DIGEST),
            )
        )
    return tuple(bottles)


def build_view(document: Mapping[str, Any]) -> ReportView:
    """The view of one report document."""
    resolved = document["resolved"]
    names = tuple(v["name"] for v in document["vantages"])
    signoff = document.get("signoff")
    facts: list[tuple[str, str | None]] = [
        ("Reference", document["reference"]),
        ("Registry", resolved["registry"]),
        ("Repository", resolved["repository"]),
        ("Tag", resolved.get("tag")),
        ("Digest pinned in the reference", resolved.get("pinned_digest")),
        ("Digest the vantages agreed on", resolved.get("digest")),
        ("Pinned reference (use this)", document.get("pinned_reference")),
        ("Verified at", document.get("generated_at")),
        ("Verified by", f"{document['tool']['name']} {document['tool']['version']}")
        if "tool" in document
        else ("Verified by", None),
    ]
    history = document.get("tag_history")
    if history is not None:
        previous = history["previous_accepted"]
        facts.append(
            (
                "Tag last accepted as",
                None if previous is None else f"{previous['digest']} at {previous['verified_at']}",
            )
        )
    if signoff is not None:
        who = signoff["identity"] or "(no identity given)"
        facts.append(("Signed off by", f"{who}, key {signoff['fingerprint']}"))
    matrix = tuple(
        MatrixRow(
            key=a.get("key", ""),
            kind=a["kind"],
            size=a["size"],
            digest=a["digest"],
            agreed=a["agreed"],
            cells=_cells(a, names),
        )
        for a in document["artifacts"]
    )
    accepted = document["verdict"] == "accepted"
    return ReportView(
        verdict=document["verdict"],
        reference=document["reference"],
        summary=_summary(document),
        facts=tuple(facts),
        vantage_names=names,
        vantages=tuple(document["vantages"]),
        matrix=matrix,
        findings=tuple(document["findings"]),
        pinned_reference=document.get("pinned_reference") if accepted else None,
        bottles=_bottles(document["artifacts"]) if accepted else (),
        signoff=signoff,
    )


def duration(vantage: Mapping[str, Any]) -> str:
    """A vantage's duration for people: ``2.41 s``."""
    seconds = vantage.get("duration_seconds")
    return "" if seconds is None else f"{seconds:.2f} s"


def cell_text(cell: Cell) -> str:
    """A matrix cell in plain text: ✓, ✗ with the digest seen instead, or -."""
    if cell.mark == "same":
        return "✓"
    if cell.mark == "missing" or cell.digest is None:
        return "-"
    return f"✗ {short(cell.digest)}"
