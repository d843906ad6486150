"""What ``tofu3 verify`` does once the verdicts are in: the tag history (ledger, TAG_MOVED),
the report files (JSON, Markdown, HTML), the sign-off signature, the attestation, and the
ledger entries. Everything is written atomically and whatever the verdict.

Prepared before anything is verified (a bad option, an unusable key or an unopenable ledger
stops the run before any vantage is contacted), finished after.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tofu3.digest import digest_bytes, hex_of
from tofu3.errors import ConfigurationError, LedgerError, SigningKeyError, Tofu3Error
from tofu3.inventory import find_inventory
from tofu3.ledger.policy import TagHistory, apply_tag_history
from tofu3.ledger.record import entry_for, history_for
from tofu3.ledger.store import Ledger
from tofu3.report.document import Signoff, build_document, render_document, timestamp
from tofu3.report.files import write_report_file
from tofu3.verdict import Verdict

if TYPE_CHECKING:
    from tofu3.signing.keys import Signer

# The renderers and the signing code are imported where an option asks for them: start-up
# time is part of every verification (docs/performance.md).

PASSPHRASE_ENV = "TOFU3_KEY_PASSPHRASE"  # noqa: S105 (the name of a variable, not a secret)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The output, sign-off and ledger options of ``tofu3 verify``."""
    parser.add_argument(
        "--markdown", metavar="FILE", type=Path, help="write a Markdown report to FILE"
    )
    parser.add_argument(
        "--html", metavar="FILE", type=Path, help="write a self-contained HTML report to FILE"
    )
    parser.add_argument(
        "--attestation",
        metavar="FILE",
        type=Path,
        help="write a signed in-toto SLSA verification summary (DSSE, JSON Lines) to FILE; "
        "needs --sign-key",
    )
    parser.add_argument(
        "--sign-key",
        metavar="KEY",
        help="sign the report off: writes REPORT.sig (SSHSIG) next to --report. KEY is a "
        "private key file, a .pub file of a key in ssh-agent, or agent:SHA256:FINGERPRINT",
    )
    parser.add_argument(
        "--signer", metavar="ID", help="the identity signing off (recorded in the report)"
    )
    parser.add_argument(
        "--accept-tag-move",
        action="store_true",
        help="accept a tag that now names other content than when it was last accepted, and "
        "remember the new digest",
    )


def passphrase_source(what: str) -> Callable[[], bytes]:
    """Where a key's passphrase comes from: $TOFU3_KEY_PASSPHRASE, else a prompt on the
    terminal. Never the command line."""

    def ask() -> bytes:
        if PASSPHRASE_ENV in os.environ:
            return os.environ[PASSPHRASE_ENV].encode()
        if not sys.stdin.isatty():
            raise SigningKeyError(
                f"{what} is encrypted: set {PASSPHRASE_ENV} or run on a terminal to be asked"
            )
        return getpass.getpass(f"passphrase for {what}: ").encode()

    return ask


def _sha256(data: bytes) -> str:
    return hex_of(digest_bytes(data))


@dataclass
class Finished:
    """The final verdicts and what was written."""

    verdicts: list[Verdict]
    json_text: str
    notes: list[str] = field(default_factory=list)  # what was written, for stderr
    problems: list[str] = field(default_factory=list)  # errors after the verdict (exit 2)


class Outputs:
    """The outputs of one ``tofu3 verify`` run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        if args.attestation is not None and args.sign_key is None:
            raise ConfigurationError("--attestation needs --sign-key: an attestation is signed")
        if args.signer is not None and args.sign_key is None:
            raise ConfigurationError("--signer needs --sign-key")
        if args.sign_key is not None and args.report is None and args.attestation is None:
            raise ConfigurationError(
                "--sign-key needs --report FILE (the signature goes to FILE.sig) or --attestation"
            )
        self._signer: Signer | None = None
        # The lab's inventory has a ledger of its own (tofu3.ledger.store.ledger_path).
        self._ledger = Ledger.open_default(find_inventory(args.inventory))
        try:
            if args.sign_key is not None:
                from tofu3.signing.loader import load_signer  # noqa: PLC0415 - see top

                self._signer = load_signer(args.sign_key, passphrase_source(args.sign_key))
        except BaseException:
            self._ledger.close()
            raise

    def close(self) -> None:
        """Let go of the key and the ledger."""
        if self._signer is not None:
            self._signer.close()
        self._ledger.close()

    def _signoff(self) -> Signoff | None:
        if self._signer is None:
            return None
        from tofu3.signing import sshsig  # noqa: PLC0415 - see top

        public = self._signer.public_key
        return Signoff(
            identity=self._args.signer,
            public_key=public.openssh(),
            fingerprint=public.fingerprint,
            namespace=sshsig.REPORT_NAMESPACE,
        )

    def finish(self, verdicts: list[Verdict], *, many: bool) -> Finished:
        """Apply the tag history, write every output, record every verdict in the ledger."""
        now = datetime.now(timezone.utc)
        stamp = timestamp(now)
        problems: list[str] = []
        finals: list[Verdict] = []
        documents: list[dict[str, Any]] = []
        histories: list[TagHistory | None] = []
        signoff = self._signoff()
        for verdict in verdicts:
            history = history_for(
                self._ledger, verdict.reference, accept_tag_move=self._args.accept_tag_move
            )
            final = verdict if history is None else apply_tag_history(verdict, history, stamp)
            finals.append(final)
            histories.append(history)
            documents.append(
                build_document(final, generated_at=now, tag_history=history, signoff=signoff)
            )
        # Each document rendered once: its text is the report for one reference, and its hash
        # goes into the ledger.
        texts = [render_document(document) for document in documents]
        json_text = (render_document(documents) if many else texts[0]) if documents else ""
        finished = Finished(finals, json_text, problems=problems)
        if documents:
            self._write(documents, json_text, finished)
        for final, text, history in zip(finals, texts, histories, strict=True):
            report_sha256 = _sha256(text.encode())
            try:
                self._ledger.record(
                    entry_for(
                        final, verified_at=stamp, report_sha256=report_sha256, history=history
                    )
                )
            except LedgerError as exc:
                problems.append(exc.diagnostics())
        return finished

    def _write(self, documents: list[dict[str, Any]], json_text: str, done: Finished) -> None:
        args = self._args
        report: tuple[str, str] | None = None
        if args.report is not None:
            data = json_text.encode()
            write_report_file(args.report, data)
            report = (args.report.name, _sha256(data))
            if self._signer is not None:
                self._sign_report(self._signer, args.report, data, done)
        if args.markdown is not None:
            from tofu3.report.markdown import render_markdown  # noqa: PLC0415 - see top

            write_report_file(
                args.markdown, render_markdown(documents, json_report=report).encode()
            )
        if args.html is not None:
            from tofu3.report.html import render_html  # noqa: PLC0415 - see top

            write_report_file(args.html, render_html(documents).encode())
        if args.attestation is not None and self._signer is not None:
            self._attest(self._signer, args.attestation, documents, report, done)

    def _sign_report(self, signer: Signer, path: Path, data: bytes, done: Finished) -> None:
        from tofu3.signing import sshsig  # noqa: PLC0415 - see top

        signature_path = path.with_name(path.name + ".sig")
        try:
            signature = sshsig.sign(data, signer)
        except Tofu3Error as exc:
            done.problems.append(f"the report was written but not signed: {exc.diagnostics()}")
            return
        write_report_file(signature_path, signature)
        public = signer.public_key
        done.notes.append(
            f"wrote {signature_path}: signed off by {self._args.signer or '(no --signer)'} with "
            f"{public.label} key {public.fingerprint} (namespace {sshsig.REPORT_NAMESPACE})"
        )

    def _attest(
        self,
        signer: Signer,
        path: Path,
        documents: list[dict[str, Any]],
        report: tuple[str, str] | None,
        done: Finished,
    ) -> None:
        from tofu3.report.attestation import (  # noqa: PLC0415 - see top
            PAYLOAD_TYPE,
            NothingToAttest,
            serialize,
            statement,
        )
        from tofu3.signing.dsse import sign_envelope  # noqa: PLC0415 - see top

        lines = []
        for document in documents:
            try:
                payload = serialize(statement(document, report=report))
                envelope = sign_envelope(PAYLOAD_TYPE, payload, signer)
            except NothingToAttest as exc:
                done.problems.append(f"no attestation for {document['reference']}: {exc}")
                continue
            except Tofu3Error as exc:
                done.problems.append(f"the attestation was not signed: {exc.diagnostics()}")
                return
            lines.append(json.dumps(envelope.to_json(), separators=(",", ":")))
        if lines:
            write_report_file(path, ("\n".join(lines) + "\n").encode())
            done.notes.append(f"wrote {path}")
