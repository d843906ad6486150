"""The body of ``tofu3 report sign|verify`` (its arguments are in report_cmd.py)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tofu3.cli.common import EXIT_ACCEPTED, EXIT_REJECTED, print_error
from tofu3.cli.verify_outputs import passphrase_source
from tofu3.errors import ConfigurationError, IntegrityError, ReportInconsistent, SignatureError
from tofu3.report.attestation import PAYLOAD_TYPE, STATEMENT_TYPE, VSA_PREDICATE_TYPE
from tofu3.report.files import write_report_file
from tofu3.report.recheck import recheck
from tofu3.signing import sshsig
from tofu3.signing.allowed_signers import AllowedSigner, parse_allowed_signers, principals_for
from tofu3.signing.dsse import read_envelopes, verify_envelope
from tofu3.signing.keys import PublicKey
from tofu3.signing.loader import load_signer

MAX_REPORT_BYTES = 64 * 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise ConfigurationError(f"{path} is larger than any tofu3 report")
    return data


def _documents(data: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ReportInconsistent("the report is not JSON") from None
    documents = parsed if isinstance(parsed, list) else [parsed]
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise ReportInconsistent("not a tofu3 report (an object, or an array of objects)")
    return documents


def run_sign(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 report sign``: refuse a report whose verdicts do not follow from it."""
    data = _read(args.report, "report")
    try:
        documents = _documents(data)
        for document in documents:
            recheck(document)
    except IntegrityError as exc:
        print_error(err, f"{args.report}: not signed: {exc.diagnostics()}")
        return EXIT_REJECTED
    signer = load_signer(args.key, passphrase_source(args.key))
    try:
        public = signer.public_key
        for document in documents:
            claimed = (document.get("signoff") or {}).get("fingerprint")
            if claimed is not None and claimed != public.fingerprint:
                print_error(
                    err,
                    f"{args.report}: not signed: the report names {claimed} as its signing "
                    f"key, not {public.fingerprint}",
                )
                return EXIT_REJECTED
        armored = sshsig.sign(data, signer)
    finally:
        signer.close()
    signature = args.report.with_name(args.report.name + ".sig")
    write_report_file(signature, armored)
    identity = args.signer or "ID"
    err.print(f"wrote {escape(str(signature))}: {public.label} key {public.fingerprint}")
    err.print(
        "allowed_signers line: "
        + escape(f'{identity} namespaces="{sshsig.REPORT_NAMESPACE}" {public.openssh()}'),
        soft_wrap=True,
    )
    err.print(
        escape(
            f"check with: ssh-keygen -Y verify -f allowed_signers -I {identity} "
            f"-n {sshsig.REPORT_NAMESPACE} -s {signature} < {args.report}"
        ),
        soft_wrap=True,
    )
    return EXIT_ACCEPTED


def _who(key: PublicKey, principals: list[str]) -> str:
    return f"{', '.join(principals)} with {key.label} key {key.fingerprint}"


def run_verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 report verify``."""
    data = _read(args.report, "report")
    signers = parse_allowed_signers(
        _read(args.allowed_signers, "allowed signers").decode(errors="replace"),
        str(args.allowed_signers),
    )
    now = datetime.now(timezone.utc)
    try:
        if _is_attestation(data):
            return _verify_attestation(args, data, signers, now, out=out, err=err)
        return _verify_report(args, data, signers, now, out=out, err=err)
    except IntegrityError as exc:
        print_error(err, f"{args.report}: {exc.diagnostics()}")
        return EXIT_REJECTED


def _is_attestation(data: bytes) -> bool:
    first = data.lstrip()[:4096]
    return first.startswith(b"{") and b'"payloadType"' in first.split(b"\n", 1)[0]


def _verify_report(
    args: argparse.Namespace,
    data: bytes,
    signers: list[AllowedSigner],
    now: datetime,
    *,
    out: Console,
    err: Console,
) -> int:
    # (1) The signature: good, in the tofu3 report namespace, over exactly these bytes.
    signature_path = args.signature or args.report.with_name(args.report.name + ".sig")
    key = sshsig.verify(data, _read(signature_path, "signature"), sshsig.REPORT_NAMESPACE)
    # (2) The key may sign tofu3 reports, as the identity given or the one the report names.
    documents = _documents(data)
    claimed = {(d.get("signoff") or {}).get("identity") for d in documents} - {None}
    identity = args.identity or (next(iter(claimed)) if len(claimed) == 1 else None)
    principals = principals_for(signers, key, sshsig.REPORT_NAMESPACE, identity=identity, when=now)
    out.print(
        escape(f'Good "{sshsig.REPORT_NAMESPACE}" signature for {_who(key, principals)}'),
        soft_wrap=True,
    )
    # (3) A report that names its signer must name this key.
    for document in documents:
        signoff = document.get("signoff")
        if signoff is not None and signoff.get("fingerprint") != key.fingerprint:
            raise ReportInconsistent(
                f"the report says it was signed off with key {signoff.get('fingerprint')}, "
                f"but {key.fingerprint} signed it"
            )
    # (4) Every verdict follows from the observations recorded with it.
    verdicts = []
    for document in documents:
        unknown = recheck(document)
        verdicts.append(document["verdict"])
        out.print(
            escape(
                f"{document['verdict'].upper()} {document['reference']}: the verdict follows "
                f"from the observations of {len(document['vantages'])} vantages on "
                f"{len(document['artifacts'])} artifacts"
            ),
            soft_wrap=True,
        )
        if unknown:
            err.print(escape(f"note: fields this tofu3 does not know were not checked: {unknown}"))
    if args.require_accepted and any(v != "accepted" for v in verdicts):
        print_error(err, "--require-accepted: not every verdict in the report is accepted")
        return EXIT_REJECTED
    return EXIT_ACCEPTED


def _verify_attestation(
    args: argparse.Namespace,
    data: bytes,
    signers: list[AllowedSigner],
    now: datetime,
    *,
    out: Console,
    err: Console,
) -> int:
    candidates = []
    for signer in signers:
        if signer.key is None:
            continue
        try:
            principals_for(
                [signer], signer.key, sshsig.REPORT_NAMESPACE, identity=args.identity, when=now
            )
        except SignatureError:
            continue
        candidates.append(signer.key)
    results = []
    for envelope in read_envelopes(data):
        key = verify_envelope(envelope, candidates)
        if envelope.payload_type != PAYLOAD_TYPE:
            raise SignatureError(f"unexpected payloadType {envelope.payload_type[:80]!r}")
        try:
            statement = json.loads(envelope.payload)
            predicate = statement["predicate"]
            result = str(predicate["verificationResult"])
            resource = str(predicate["resourceUri"])
            levels = [str(level) for level in predicate["verifiedLevels"]]
        except (ValueError, KeyError, TypeError):
            raise ReportInconsistent("the attestation's payload is not a VSA statement") from None
        if statement.get("_type") != STATEMENT_TYPE or (
            statement.get("predicateType") != VSA_PREDICATE_TYPE
        ):
            raise ReportInconsistent("the attestation is not an in-toto SLSA VSA statement")
        principals = principals_for(
            signers, key, sshsig.REPORT_NAMESPACE, identity=args.identity, when=now
        )
        out.print(
            escape(
                f"Good attestation signature for {_who(key, principals)}: {result} "
                f"{resource} ({', '.join(levels)})"
            ),
            soft_wrap=True,
        )
        results.append(result)
    if args.require_accepted and any(r != "PASSED" for r in results):
        print_error(err, "--require-accepted: not every attestation says PASSED")
        return EXIT_REJECTED
    return EXIT_ACCEPTED
