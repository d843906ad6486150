"""The Markdown and HTML reports: verdict first, reference and agreed digests, one row per
vantage, the artifact x vantage matrix, the findings, and the commands that pin what was
verified (docker pull by digest; each bottle's sha256 as Homebrew checks it). Untrusted text
from registries and vantages cannot inject markup or break out of a code block."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tests.unit.bottle_verdicts import (
    BOTTLE,
    BOTTLE_FILE,
    EVIL,
    INDEX,
    WHEN,
    honest,
    one_vantage_served_another_layer,
    one_vantage_unreachable,
    run,
    tree,
)
from tofu3.digest import hex_of, short
from tofu3.reference import parse_reference
from tofu3.report.document import Signoff, build_document
from tofu3.report.html import render_html
from tofu3.report.markdown import code, render_markdown, text
from tofu3.verdict import Verdict, decide

SIGNOFF = Signoff("alice@example.org", "ssh-ed25519 AAAA", "SHA256:" + "B" * 43, "ns@tofu3.dev")


def _document(verdict: Verdict, **kwargs: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(
        json.dumps(build_document(verdict, generated_at=WHEN, **kwargs))
    )
    return parsed


def test_an_accepted_bottle_report_leads_with_the_verdict_and_pins_what_was_verified() -> None:
    markdown = render_markdown(
        [_document(honest(), signoff=SIGNOFF)], json_report=("r.json", "f" * 64)
    )
    lines = markdown.splitlines()

    assert lines[0] == "# ACCEPTED: `ghcr.io/homebrew/core/wget:1.24.5`"
    assert lines[2].startswith("**ACCEPTED**: 3 of 3 vantages finished and agree")
    assert f"| Digest the vantages agreed on | `{INDEX}` |" in lines
    assert f"docker pull ghcr.io/homebrew/core/wget@{INDEX}" in lines
    assert f'  sha256 arm64_sonoma: "{hex_of(BOTTLE)}"' in lines
    assert f"echo '{hex_of(BOTTLE)}  {BOTTLE_FILE}' | shasum -a 256 -c" in lines
    assert f"| `arm64_sonoma` | `{BOTTLE_FILE}` | `{hex_of(BOTTLE)}` | yes |" in lines
    assert "-n ns@tofu3.dev -s r.json.sig < r.json" in markdown
    assert markdown.index("## Vantages") < markdown.index("## Artifacts x vantages")
    assert markdown.index("## Findings") < markdown.index("## Pin what was verified")


def test_each_vantage_has_a_row_with_host_curl_remote_ips_and_duration() -> None:
    markdown = render_markdown([_document(honest())])

    for name in ("ams", "sfo", "sgp"):
        assert (
            f"| `{name}` | `{name}.example.net:22` | `8.5.0` | `140.82.112.33`, "
            f"`185.199.108.154` | 2.41 s |"
        ) in markdown


def test_a_rejected_report_marks_the_odd_vantage_in_the_matrix_and_pins_nothing() -> None:
    markdown = render_markdown([_document(one_vantage_served_another_layer())])
    layer_row = next(
        line for line in markdown.splitlines() if "layer[0]" in line and "| layer |" in line
    )

    assert markdown.startswith("# REJECTED: ")
    assert layer_row.endswith(f"| ✓ | ✓ | **✗** `{short(EVIL)}` |")
    assert "| critical | `DIGEST_MISMATCH` | `sgp` |" in markdown
    assert "docker pull" not in markdown
    assert "sha256 arm64_sonoma" not in markdown
    assert "Nothing to pin: the verdict is **rejected**" in markdown


def test_an_unreachable_vantage_shows_its_error_and_dashes() -> None:
    markdown = render_markdown([_document(one_vantage_unreachable())])

    assert "| `sgp` | `sgp.example.net:22` | - | - |" in markdown
    assert "failed: connection refused" in markdown
    assert "| ✓ | ✓ | - |" in markdown


def test_a_bottle_whose_annotation_names_other_bytes_is_flagged() -> None:
    observations = tuple(
        replace(o, annotations={**o.annotations, "sh.brew.bottle.digest": "0" * 64})
        if o.kind.value == "manifest"
        else o
        for o in tree()
    )
    verdict = decide(
        parse_reference("ghcr.io/homebrew/core/wget:1.24.5"),
        [run(n, observations) for n in ("ams", "sfo", "sgp")],
    )

    markdown = render_markdown([_document(verdict)])

    assert f"| **no**: `{'0' * 64}` |" in markdown


def test_registry_text_cannot_inject_markup_or_escape_a_code_block() -> None:
    hostile = "<img src=x onerror=alert(1)> [click](http://evil) | `x` ```\n# heading"
    observations = tuple(
        replace(o, annotations={**o.annotations, "org.opencontainers.image.title": hostile})
        if o.kind.value == "layer"
        else o
        for o in tree()
    )
    verdict = decide(
        parse_reference("ghcr.io/homebrew/core/wget:1.24.5"),
        [run(n, observations) for n in ("ams", "sfo", "sgp")],
    )
    document = _document(verdict)
    document["findings"] = [
        {"severity": "warning", "code": "X", "message": hostile, "vantage": None, "digest": None}
    ]

    markdown = render_markdown([document])
    page = render_html([document])

    assert markdown.count("<img") == markdown.count("\\<img") == 1  # escaped, inert
    assert "<img" not in page and "&lt;img" in page
    assert "](http://evil)" not in markdown
    assert "\n# heading" not in markdown
    assert hostile not in markdown  # the bottle file name is not a plain word: left out
    assert text("a|b<c>") == "a\\|b\\<c\\>"
    assert code("a`b|c") == "``a`b\\|c``"


def test_the_html_page_is_self_contained_and_says_the_same() -> None:
    page = render_html([_document(honest()), _document(one_vantage_served_another_layer())])

    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page
    assert "<script" not in page and "http://" not in page.replace("http-equiv", "")
    assert "src=" not in page and "<link" not in page
    assert "ACCEPTED: <code>ghcr.io/homebrew/core/wget:1.24.5</code>" in page
    assert "REJECTED: <code>ghcr.io/homebrew/core/wget:1.24.5</code>" in page
    assert f"docker pull ghcr.io/homebrew/core/wget@{INDEX}" in page
    assert f"sha256 arm64_sonoma: &quot;{hex_of(BOTTLE)}&quot;" in page
