"""The body of ``tofu3 fetch`` (its arguments are in fetch_cmd.py): verify, or rely on a
recent ledger entry, then download here and keep the artifact only if every byte matches."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tofu3.cli import credential_args, verify_outputs
from tofu3.cli.common import (
    EXIT_ACCEPTED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_REJECTED,
    EXIT_USAGE,
    check_jobs,
    print_error,
)
from tofu3.cli.verify_cmd import verify_all
from tofu3.errors import ConfigurationError, IntegrityError, InvalidUrl, TransportError
from tofu3.fetch.agreed import Agreed, from_entry, from_verdict, parse_max_age, recent_acceptance
from tofu3.fetch.fetcher import Fetched, check_output, fetch_agreed
from tofu3.inventory import Inventory, find_inventory, load_inventory
from tofu3.ledger.store import Ledger
from tofu3.oci.platform import parse_platform_filter
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference, is_url, parse_target
from tofu3.remote.https import HttpOptions, parse_connect_to
from tofu3.report.terminal import print_verdict
from tofu3.verdict import VerdictKind
from tofu3.verify import Options


def _target(args: argparse.Namespace) -> tuple[Reference, HttpOptions, Options, timedelta | None]:
    """Everything the command line says, checked before anything connects anywhere."""
    if args.sha256 is not None and not is_url(args.target):
        raise InvalidUrl("--sha256 pins a release file: it goes with a URL, not an image")
    reference = parse_target(args.target, args.sha256)
    platforms = tuple(parse_platform_filter(p) for p in args.platform)
    if platforms and isinstance(reference, ReleaseReference):
        raise ConfigurationError("--platform applies to images, not to a URL")
    check_jobs(args.jobs)
    if args.cacert is not None and not args.cacert.is_file():
        raise ConfigurationError(f"--cacert {args.cacert}: no such file")
    connect_to = tuple(parse_connect_to(t) for t in args.connect_to)
    max_age = parse_max_age(args.max_age) if args.max_age is not None else None
    check_output(args.output)
    credentials = credential_args.credentials_from_args(args, [reference])
    http = HttpOptions(cacert=args.cacert, connect_to=connect_to)
    options = Options(platforms=platforms, jobs=args.jobs, credentials=credentials)
    return reference, http, options, max_age


def _fetched_line(fetched: Fetched) -> str:
    return (
        f"[bold green]FETCHED[/] {fetched.kind.value} {escape(str(fetched.path))}: "
        f"{fetched.blobs} {'file' if fetched.blobs == 1 else 'files'}, {fetched.size:,} bytes, "
        f"every one matching what the vantages agreed on ({fetched.digest})"
    )


def _from_ledger(
    reference: Reference, inventory: Path, max_age: timedelta, out: Console
) -> Agreed | None:
    """The latest accepted verification of ``reference`` younger than ``max_age`` in the
    ledger verifications with ``inventory`` are recorded in, if there is one."""
    with Ledger.open_default(inventory) as ledger:
        entries = ledger.history(reference.name)
        where = ledger.path
    entry = recent_acceptance(entries, reference, now=datetime.now(timezone.utc), max_age=max_age)
    if entry is None:
        out.print(f"no accepted verification younger than {max_age} in {escape(str(where))}")
        return None
    agreed = from_entry(reference, entry)
    out.print(f"using {escape(agreed.source)} in {escape(str(where))}: {agreed.root}")
    return agreed


def _verify_afresh(
    args: argparse.Namespace,
    reference: Reference,
    inventory: Inventory,
    options: Options,
    *,
    out: Console,
    err: Console,
) -> Agreed | int:
    """Verify as ``tofu3 verify`` does, outputs and ledger included; what was agreed, or
    the exit status when nothing is to be fetched."""
    outputs = verify_outputs.Outputs(args)
    try:
        # Exactly as `tofu3 verify` does; a usage error is already printed there.
        verdicts, _, interrupted = verify_all([reference], inventory, options, err)
        if not verdicts:
            return EXIT_USAGE
        finished = outputs.finish(verdicts, many=False)
    finally:
        outputs.close()
    verdict = finished.verdicts[0]
    print_verdict(out, verdict)
    for note in finished.notes:
        err.print(escape(note), soft_wrap=True)
    for problem in finished.problems:
        print_error(err, problem)
    if interrupted:
        err.print("[red]interrupted[/]: nothing was fetched")
        return EXIT_REJECTED if verdict.kind is VerdictKind.REJECTED else EXIT_INTERRUPTED
    if verdict.kind is not VerdictKind.ACCEPTED:
        print_error(err, f"not fetched: the vantages' verdict is {verdict.kind.value}")
        return verdict.exit_code
    if finished.problems:
        print_error(err, "not fetched: the verification's outputs could not all be written")
        return EXIT_USAGE
    return from_verdict(verdict)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``tofu3 fetch``: 0 fetched, 1 rejected or mismatched, 2 usage, 3 inconclusive."""
    reference, http, options, max_age = _target(args)
    inventory_path = find_inventory(args.inventory)
    agreed = _from_ledger(reference, inventory_path, max_age, out) if max_age else None
    if agreed is None:
        inventory = load_inventory(inventory_path)
        fresh = _verify_afresh(args, reference, inventory, options, out=out, err=err)
        if isinstance(fresh, int):
            return fresh
        agreed = fresh
    try:
        fetched = fetch_agreed(
            agreed,
            args.output,
            platforms=options.platforms,
            http=http,
            credentials=options.credentials,
            jobs=options.jobs,
        )
    except IntegrityError as exc:
        print_error(err, f"not kept: {reference.original}: {exc.diagnostics()}")
        return EXIT_REJECTED
    except TransportError as exc:
        print_error(err, f"not fetched: {reference.original}: {exc.diagnostics()}")
        return EXIT_INCONCLUSIVE
    out.print(_fetched_line(fetched), soft_wrap=True)
    return EXIT_ACCEPTED
