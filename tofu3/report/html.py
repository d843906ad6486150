"""The HTML report (``--html FILE``): one self-contained page (inline CSS, no script, no
external resource; a Content-Security-Policy says so to the browser). Every value is
HTML-escaped: registry and vantage text is untrusted."""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from tofu3.report.view import ReportView, build_view, cell_text, duration

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:80rem;padding:0 1rem;
color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
code,pre{font:13px/1.4 ui-monospace,monospace}
pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}
.accepted{color:#0a6b0a}.rejected{color:#b00020}.inconclusive{color:#8a6100}
.same{color:#0a6b0a}.different{color:#b00020;font-weight:bold}.missing{color:#777}
.verdict{font-size:1.2rem;font-weight:bold}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _code(value: object) -> str:
    return f"<code>{_e(value)}</code>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pins(view: ReportView, document: Mapping[str, Any]) -> str:
    if view.pinned_reference is None:
        return (
            f"<p>Nothing to pin: the verdict is <b>{_e(view.verdict)}</b>. Do not install what "
            "this reference names until a verification is accepted.</p>"
        )
    resolved = document["resolved"]
    if "url" in resolved:
        hex_digest = str(resolved["digest"]).partition(":")[2]
        name = str(resolved["url"]).rstrip("/").rpartition("/")[2] or "download"
        command = (
            f"curl -fL -o {shlex.quote(name)} {shlex.quote(str(resolved['url']))}\n"
            f"echo {shlex.quote(f'{hex_digest}  {name}')} | sha256sum -c"
        )
        return f"<pre>{_e(command)}</pre>"
    parts = [f"<pre>{_e(f'docker pull {view.pinned_reference}')}</pre>"]
    if view.bottles:
        parts.append(
            "<p>Homebrew checks each bottle file against its sha256 (the bottle layer's "
            "digest; the index's <code>sh.brew.bottle.digest</code> annotation names the same "
            "value):</p>"
        )
        rows = [
            [
                _code(b.tag),
                _code(b.file_name or ""),
                _code(b.sha256),
                "yes" if b.annotation_agrees else f"<b>no</b>: {_code(b.annotation or '')}",
            ]
            for b in view.bottles
        ]
        parts.append(_table(["Bottle", "File", "sha256", "Annotation agrees"], rows))
        block = "\n".join(
            ["bottle do", *(f'  sha256 {b.tag}: "{b.sha256}"' for b in view.bottles), "end"]
        )
        parts.append(f"<pre>{_e(block)}</pre>")
    return "".join(parts)


def render_section(document: Mapping[str, Any]) -> str:
    """One reference's part of the page."""
    view = build_view(document)
    verdict = _e(view.verdict)
    facts = _table(
        ["", ""],
        [[_e(label), "none" if v is None else _code(v)] for label, v in view.facts],
    )
    vantages = _table(
        ["Vantage", "Host", "curl", "Remote IPs seen", "Duration", "Host key", "Result"],
        [
            [
                _code(v["name"]),
                _code(v["host"]),
                _code(v["curl_version"] or "-"),
                ", ".join(_code(ip) for ip in v.get("remote_ips", [])) or "-",
                _e(duration(v)),
                _code(v.get("host_key_fingerprint") or "-"),
                "finished" if v["ok"] else f"failed: {_e(v.get('error') or '')}",
            ]
            for v in view.vantages
        ],
    )
    matrix = _table(
        ["Artifact", "Kind", "Size", "Digest", *(_code(n) for n in view.vantage_names)],
        [
            [
                _code(row.key),
                _e(row.kind),
                "" if row.size is None else f"{row.size:,}",
                _code(row.digest) if row.digest else "none",
                *(
                    f'<span class="{cell.mark}" title="{_e(cell.digest or "")}">'
                    f"{_e(cell_text(cell))}</span>"
                    for cell in row.cells
                ),
            ]
            for row in view.matrix
        ],
    )
    findings = (
        _table(
            ["Severity", "Code", "Vantage", "Artifact", "Message"],
            [
                [
                    _e(f["severity"]),
                    _code(f["code"]),
                    _code(f["vantage"]) if f.get("vantage") else "",
                    _code(f["artifact"]) if f.get("artifact") else "",
                    _e(f["message"]),
                ]
                for f in view.findings
            ],
        )
        if view.findings
        else "<p>None.</p>"
    )
    return (
        f'<section><h1 class="{verdict}">{verdict.upper()}: {_code(view.reference)}</h1>'
        f'<p class="verdict {verdict}">{verdict.upper()}: {_e(view.summary)}</p>{facts}'
        f"<h2>Vantages</h2>{vantages}<h2>Artifacts x vantages</h2>{matrix}"
        "<p>✓: this vantage received exactly these bytes; ✗: other bytes, with their digest "
        f"(full digest on hover); -: not seen by this vantage.</p><h2>Findings</h2>{findings}"
        f"<h2>Pin what was verified</h2>{_pins(view, document)}</section>"
    )


def render_html(documents: Sequence[Mapping[str, Any]]) -> str:
    """The page for one or more references."""
    title = ", ".join(f"{d['verdict'].upper()} {str(d['reference'])[:120]}" for d in documents)
    sections = "<hr>".join(render_section(d) for d in documents)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tofu3: {_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{sections}</body></html>\n"
    )
