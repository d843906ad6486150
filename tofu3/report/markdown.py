"""The Markdown report (``--markdown FILE``): fit to paste into a security-review ticket.

Verdict first; then the reference and agreed digests, the vantages, the artifact x vantage
digest matrix, the findings, and the commands that pin what was verified. Everything that
came from a registry or a vantage is escaped (it is untrusted text, and Markdown renderers
turn HTML and links into live content).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from tofu3.digest import short
from tofu3.report.view import ReportView, build_view, cell_text, duration

_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def text(value: object) -> str:
    """Untrusted text as inert Markdown: punctuation backslash-escaped, one line."""
    flat = " ".join(str(value).split())
    return _PUNCTUATION.sub(r"\\\1", flat)


def code(value: object, *, in_table: bool = True) -> str:
    """Untrusted text as a code span (a fence longer than any backtick run inside)."""
    flat = " ".join(str(value).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    body = flat.replace("|", "\\|") if in_table else flat
    return f"{fence}{pad}{body}{pad}{fence}"


def _plain(value: str) -> str:
    """A word safe inside a fenced code block: no control characters, no backticks."""
    return "".join(ch for ch in value if ch.isprintable() and ch != "`")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _facts(view: ReportView) -> list[str]:
    rows = [[label, "none" if value is None else code(value)] for label, value in view.facts]
    return _table(["", ""], rows)


def _vantages(view: ReportView) -> list[str]:
    rows = []
    for vantage in view.vantages:
        result = "finished" if vantage["ok"] else f"failed: {text(vantage.get('error') or '')}"
        rows.append(
            [
                code(vantage["name"]),
                code(vantage["host"]),
                code(vantage["curl_version"]) if vantage["curl_version"] else "-",
                ", ".join(code(ip) for ip in vantage.get("remote_ips", [])) or "-",
                duration(vantage),
                code(vantage["host_key_fingerprint"])
                if vantage.get("host_key_fingerprint")
                else "-",
                result,
            ]
        )
    header = ["Vantage", "Host", "curl", "Remote IPs seen", "Duration", "Host key", "Result"]
    return _table(header, rows)


def _matrix(view: ReportView) -> list[str]:
    rows = []
    for row in view.matrix:
        cells = []
        for cell in row.cells:
            shown = cell_text(cell)
            cells.append(
                shown if cell.mark != "different" else f"**✗** {code(short(cell.digest or ''))}"
            )
        rows.append(
            [
                code(row.key),
                row.kind,
                "" if row.size is None else f"{row.size:,}",
                code(row.digest) if row.digest else "none",
                *cells,
            ]
        )
    header = ["Artifact", "Kind", "Size", "Digest", *(code(n) for n in view.vantage_names)]
    return _table(header, rows)


def _findings(view: ReportView) -> list[str]:
    if not view.findings:
        return ["None."]
    rows = [
        [
            f["severity"],
            code(f["code"]),
            code(f["vantage"]) if f.get("vantage") else "",
            code(f["artifact"]) if f.get("artifact") else "",
            text(f["message"]),
        ]
        for f in view.findings
    ]
    return _table(["Severity", "Code", "Vantage", "Artifact", "Message"], rows)


def _pins(view: ReportView, document: Mapping[str, Any]) -> list[str]:
    if view.pinned_reference is None:
        return [
            f"Nothing to pin: the verdict is **{view.verdict}**. Do not install what this "
            "reference names until a verification is accepted."
        ]
    resolved = document["resolved"]
    if "url" in resolved:
        hex_digest = str(resolved["digest"]).partition(":")[2]
        name = _plain(str(resolved["url"]).rstrip("/").rpartition("/")[2]) or "download"
        return [
            "Download the file and check it against the digest the vantages agreed on:",
            "",
            "```sh",
            f"curl -fL -o {shlex.quote(name)} {shlex.quote(str(resolved['url']))}",
            f"echo {shlex.quote(f'{hex_digest}  {name}')} | sha256sum -c",
            "```",
        ]
    lines = [
        "Pull by digest, so that what you install is what the vantages saw:",
        "",
        "```sh",
        f"docker pull {view.pinned_reference}",
        "```",
    ]
    if view.bottles:
        lines += [
            "",
            "Homebrew checks each bottle file against its sha256 (the bottle layer's digest; "
            "the index's `sh.brew.bottle.digest` annotation names the same value):",
            "",
            *_table(
                ["Bottle", "File", "sha256", "Annotation agrees"],
                [
                    [
                        code(b.tag),
                        code(b.file_name) if b.file_name else "",
                        code(b.sha256),
                        "yes" if b.annotation_agrees else f"**no**: {code(b.annotation or '')}",
                    ]
                    for b in view.bottles
                ],
            ),
            "",
            "```ruby",
            "bottle do",
            *(f'  sha256 {b.tag}: "{b.sha256}"' for b in view.bottles),
            "end",
            "```",
        ]
        named = [b for b in view.bottles if b.file_name]
        if named:
            lines += ["", "To check a downloaded bottle file by hand:", "", "```sh"]
            lines += [
                f"echo {shlex.quote(f'{b.sha256}  {b.file_name}')} | shasum -a 256 -c"
                for b in named
            ]
            lines += ["```"]
    return lines


def render_one(document: Mapping[str, Any], *, json_report: tuple[str, str] | None = None) -> str:
    """One reference's Markdown. ``json_report`` is (file name, sha256) of the JSON report
    this Markdown goes with, when one was written."""
    view = build_view(document)
    lines = [
        f"# {view.verdict.upper()}: {code(view.reference, in_table=False)}",
        "",
        f"**{view.verdict.upper()}**: {text(view.summary)}",
        "",
        *_facts(view),
    ]
    if json_report is not None:
        name, sha256 = json_report
        lines += [
            "",
            f"JSON report: {code(name, in_table=False)}, sha256 {code(sha256, in_table=False)}.",
        ]
        if view.signoff is not None:
            lines += [
                "",
                "Check its sign-off with OpenSSH:",
                "",
                "```sh",
                f"ssh-keygen -Y verify -f allowed_signers "
                f"-I {shlex.quote(_plain(str(view.signoff['identity'] or 'ID')))} "
                f"-n {shlex.quote(_plain(str(view.signoff['namespace'])))} "
                f"-s {shlex.quote(_plain(name) + '.sig')} < {shlex.quote(_plain(name))}",
                "```",
            ]
    lines += ["", "## Vantages", "", *_vantages(view)]
    lines += ["", "## Artifacts x vantages", "", *_matrix(view)]
    lines += [
        "",
        "✓: this vantage received exactly these bytes; ✗: other bytes, with their digest; "
        "-: not seen by this vantage.",
    ]
    lines += ["", "## Findings", "", *_findings(view)]
    lines += ["", "## Pin what was verified", "", *_pins(view, document)]
    return "\n".join(lines) + "\n"


def render_markdown(
    documents: Sequence[Mapping[str, Any]], *, json_report: tuple[str, str] | None = None
) -> str:
    """The Markdown report for one or more references."""
    return "\n---\n\n".join(render_one(d, json_report=json_report) for d in documents)
