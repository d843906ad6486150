"""Orchestration: connect to every vantage, have each walk the artifact's tree on its own,
collect observations, and hand them to the (pure) verdict.

Two phases. (1) Connect and probe every vantage in parallel; a configuration problem on any
of them (unknown host key, curl too old) stops the run before anything runs anywhere.
(2) Each vantage, in parallel, runs the registry protocol independently: its own token, its
own view of the tag, its own index, its own blobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from tofu3.credentials import RegistryCredentials
from tofu3.digest import Digest
from tofu3.errors import (
    ConfigurationError,
    IntegrityError,
    MalformedManifest,
    Tofu3Error,
    TransportError,
    UnsupportedManifest,
)
from tofu3.inventory import Inventory, Vantage
from tofu3.limits import DEFAULT_LIMITS, Limits
from tofu3.observation import (
    ArtifactKind,
    Expected,
    Failure,
    FailureKind,
    Observation,
    VantageRun,
)
from tofu3.oci.manifest import Descriptor, ImageManifest, Index, Manifest, parse_manifest
from tofu3.oci.platform import PlatformFilter, entry_labels, select
from tofu3.protocol import (
    PING,
    FetchedManifest,
    RegistrySession,
    TokenCache,
    manifest_request,
    ping_request,
)
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference
from tofu3.remote.port import FetchRequest, FirstRequest, VantagePort
from tofu3.remote.ssh import SshConnection
from tofu3.remote.ssh_config import load_ssh_config, resolve_vantage
from tofu3.verdict import Verdict, decide


class Progress(Protocol):
    """Where verification reports what it is doing (the CLI draws it; tests may record it)."""

    def step(self, vantage: str, text: str) -> None:
        """``vantage`` started a step."""

    def transfer(self, vantage: str, label: str, done: int, total: int | None) -> None:
        """``vantage`` has received ``done`` bytes of ``label``."""

    def finished(self, vantage: str, ok: bool, text: str) -> None:
        """``vantage`` is done."""


class SilentProgress:
    """A Progress that shows nothing."""

    def step(self, vantage: str, text: str) -> None:
        """Ignore."""

    def transfer(self, vantage: str, label: str, done: int, total: int | None) -> None:
        """Ignore."""

    def finished(self, vantage: str, ok: bool, text: str) -> None:
        """Ignore."""


@dataclass(frozen=True)
class Options:
    """How to verify."""

    platforms: tuple[PlatformFilter, ...] = ()
    jobs: int = 4
    limits: Limits = DEFAULT_LIMITS
    # Registry credentials by registry host; they reach a vantage only inside curl's stdin.
    credentials: RegistryCredentials = field(default_factory=RegistryCredentials)


@dataclass(frozen=True)
class Connected:
    """A vantage whose session is open and probed."""

    vantage: Vantage
    port: VantagePort
    # Pull tokens for the whole run: a batch asks each realm once per repository.
    tokens: TokenCache = field(default_factory=TokenCache)


def connect_all(
    inventory: Inventory,
    progress: Progress,
    limits: Limits = DEFAULT_LIMITS,
    prefetch: Sequence[FirstRequest] = (),
) -> tuple[list[Connected], list[VantageRun]]:
    """Connect to every vantage and open its one session, in parallel. Returns the usable
    vantages and runs for the unreachable ones. Raises the first ConfigurationError (after
    closing every connection): an unknown host key, two entries that are one machine, or an
    unusable vantage stops everything. (1) connect; (2) check the vantages are distinct;
    (3) open the session, whose first exchange carries the probe and ``prefetch`` (the
    registries' ``GET /v2/``): nothing runs on any vantage before (2) has passed."""
    started = {vantage.name: time.monotonic() for vantage in inventory.vantages}
    config = load_ssh_config()  # read once for every vantage

    def failed_run(vantage: Vantage, exc: TransportError, fingerprint: str = "") -> VantageRun:
        progress.finished(vantage.name, False, exc.diagnostics())
        return VantageRun(
            name=vantage.name,
            host=vantage.address,
            host_key_fingerprint=fingerprint,
            failure=failure_of(exc),
            duration=time.monotonic() - started[vantage.name],
        )

    def connect(vantage: Vantage) -> SshConnection | VantageRun:
        progress.step(vantage.name, "connecting")
        try:
            return SshConnection.connect(vantage, limits, resolve_vantage(vantage, config))
        except TransportError as exc:
            return failed_run(vantage, exc)

    def probed(vantage: Vantage, connection: SshConnection) -> Connected | VantageRun:
        try:
            progress.step(vantage.name, "probing curl")
            session = connection.start_session(vantage.curl_args)
            session.open(prefetch)
        except TransportError as exc:
            connection.close()
            return failed_run(vantage, exc, connection.host_key_fingerprint)
        except BaseException:
            connection.close()
            raise
        return Connected(vantage=vantage, port=session)

    failed: list[VantageRun] = []
    open_connections: list[tuple[Vantage, SshConnection]] = []
    errors: list[ConfigurationError] = []
    with ThreadPoolExecutor(max_workers=len(inventory.vantages)) as pool:
        futures = [(v, pool.submit(connect, v)) for v in inventory.vantages]
        for vantage, future in futures:
            try:
                result = future.result()
            except ConfigurationError as exc:
                errors.append(exc)
                continue
            if isinstance(result, SshConnection):
                open_connections.append((vantage, result))
            else:
                failed.append(result)
        if not errors:
            try:
                _refuse_shared_vantages(open_connections)
            except ConfigurationError as exc:
                errors.append(exc)
        connected: list[Connected] = []
        if not errors:
            probes = [(pool.submit(probed, v, c), c) for v, c in open_connections]
            for probing, connection in probes:
                try:
                    outcome = probing.result()
                except ConfigurationError as exc:
                    errors.append(exc)
                    connection.close()
                    continue
                if isinstance(outcome, Connected):
                    connected.append(outcome)
                else:
                    failed.append(outcome)
    if errors:
        for _, connection in open_connections:
            connection.close()
        raise errors[0]
    return connected, failed


def _refuse_shared_vantages(connections: Sequence[tuple[Vantage, SshConnection]]) -> None:
    """Two inventory entries that turn out to be one machine are not independent vantages:
    refuse them before anything runs. The inventory already refuses the same host:port
    written twice; this catches what only the connection shows, such as two names (or an
    alias and an address) for one address and port, or one host key behind two routes."""
    by_peer: dict[tuple[str, int], str] = {}
    by_key: dict[str, str] = {}
    for vantage, connection in connections:
        name, peer = vantage.name, connection.peer
        if peer is not None:
            other = by_peer.setdefault(peer, name)
            if other != name:
                raise ConfigurationError(
                    f"vantages {other!r} and {name!r} both reach {peer[0]}:{peer[1]}: "
                    "they are not independent (give each vantage its own machine)"
                )
        fingerprint = connection.host_key_fingerprint
        if fingerprint:
            other = by_key.setdefault(fingerprint, name)
            if other != name:
                raise ConfigurationError(
                    f"vantages {other!r} and {name!r} present the same SSH host key "
                    f"{fingerprint}: they are one machine (or clones sharing a key), so they "
                    "are not independent"
                )


def verify(
    reference: Reference,
    inventory: Inventory,
    options: Options = Options(),
    progress: Progress | None = None,
) -> Verdict:
    """Verify ``reference`` from every vantage in ``inventory``; return the verdict."""
    sink = progress or SilentProgress()
    connected, failed = connect_all(
        inventory, sink, options.limits, prefetch_for([reference], options.limits)
    )
    try:
        runs = verify_connected(reference, connected, options, sink)
    finally:
        close_all(connected)
    return decide_runs(reference, inventory, runs, failed)


def prefetch_for(references: Sequence[Reference], limits: Limits) -> list[FirstRequest]:
    """The requests every walk of ``references`` starts with, for the sessions' first
    exchange: each registry's ``GET /v2/``, and, only where that is answered 200 (a registry
    that needs no token), the first reference's root manifest there."""
    first: dict[str, Reference] = {}
    for reference in references:
        if not isinstance(reference, ReleaseReference):
            first.setdefault(reference.registry_host, reference)
    return [
        FirstRequest(
            FetchRequest(ping_request(host), limits.token_bytes, PING),
            FetchRequest(
                manifest_request(reference, reference.manifest_reference),
                limits.manifest_bytes,
                f"manifest {reference.manifest_reference}",
            ),
        )
        for host, reference in first.items()
    ]


def close_all(connected: Sequence[Connected]) -> None:
    """End every session (each vantage's shell then ends what it started)."""
    for item in connected:
        item.port.close()


def decide_runs(
    reference: Reference,
    inventory: Inventory,
    runs: Sequence[VantageRun],
    unreachable: Sequence[VantageRun],
) -> Verdict:
    """The verdict over the vantages that ran and those that could not be reached, in
    inventory order. Raises ConfigurationError when every vantage failed on the user's
    input (a --platform that matches nothing anywhere)."""
    order = {name: i for i, name in enumerate(inventory.names())}
    all_runs = sorted([*runs, *unreachable], key=lambda run: order[run.name])
    _raise_shared_configuration_error(all_runs)
    return decide(reference, all_runs)


class VerificationInterrupted(Exception):
    """Ctrl-C during a verification, with every run as it stood: vantages that had finished
    keep their observations; the others are marked INTERRUPTED. Every connection is closed
    by then, so nothing is left running on any vantage."""

    def __init__(self, runs: list[VantageRun]) -> None:
        super().__init__("interrupted")
        self.runs = runs


INTERRUPTED = Failure(
    kind=FailureKind.TRANSPORT,
    code="INTERRUPTED",
    message="interrupted by the user before this vantage finished",
)
_INTERRUPT_GRACE_SECONDS = 10.0


def verify_connected(
    reference: Reference, connected: Sequence[Connected], options: Options, progress: Progress
) -> list[VantageRun]:
    """Run the protocol on every connected vantage in parallel. On Ctrl-C, close every
    connection (which ends the remote commands) and raise VerificationInterrupted."""
    return run_on_vantages(connected, lambda item: _walk(reference, item, options, progress))


def run_on_vantages(
    connected: Sequence[Connected], work: Callable[[Connected], VantageRun]
) -> list[VantageRun]:
    """``work`` on every connected vantage in parallel, one thread each. On Ctrl-C, close
    every connection (which ends the remote commands) and raise VerificationInterrupted with
    each vantage's run as it stood."""
    if not connected:
        return []
    pool = ThreadPoolExecutor(max_workers=len(connected))
    futures = [pool.submit(work, item) for item in connected]
    try:
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        close_all(connected)
        runs: list[VantageRun] = []
        for item, future in zip(connected, futures, strict=True):
            try:
                run = future.result(timeout=_INTERRUPT_GRACE_SECONDS)
            except Exception:
                run = VantageRun(name=item.vantage.name, host=item.vantage.address)
                run = replace(run, failure=INTERRUPTED)
            if run.failure is None or run.failure.kind is not FailureKind.INTEGRITY:
                # Evidence of tampering stands; anything else was cut short by the user.
                run = replace(run, failure=INTERRUPTED) if run.failure is not None else run
            runs.append(run)
        raise VerificationInterrupted(runs) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _raise_shared_configuration_error(runs: Sequence[VantageRun]) -> None:
    """A --platform that matches nothing everywhere is the user's mistake, not a verdict."""
    failures = [run.failure for run in runs]
    if failures and all(f is not None and f.kind is FailureKind.CONFIGURATION for f in failures):
        first = failures[0]
        raise ConfigurationError(first.message if first is not None else "configuration error")


def failure_of(exc: Tofu3Error, key: str | None = None) -> Failure:
    """Which side of the trust boundary a vantage's error is on."""
    if isinstance(exc, IntegrityError):
        kind = FailureKind.INTEGRITY
    elif isinstance(exc, ConfigurationError):
        kind = FailureKind.CONFIGURATION
    else:
        kind = FailureKind.TRANSPORT
    code = getattr(exc, "code", "CONFIGURATION_ERROR")
    return Failure(kind=kind, code=str(code), message=exc.diagnostics(), key=key)


class _Walk:
    """One vantage's walk of the tree: root, selected children, blobs."""

    def __init__(
        self, reference: Reference, item: Connected, options: Options, progress: Progress
    ) -> None:
        self.reference = reference
        self.name = item.vantage.name
        self.options = options
        self.progress = progress
        self.session = RegistrySession(
            item.port, reference, options.limits, item.tokens, options.credentials
        )
        self.observations: list[Observation] = []

    def record(self, observation: Observation) -> None:
        self.observations.append(observation)

    def run(self) -> None:
        self.progress.step(self.name, "token")
        # The root manifest rides with the token where the transport can chain them.
        self.session.authenticate(then=self.reference.manifest_reference)
        self.progress.step(self.name, f"manifest {self.reference.manifest_reference}")
        root = self.session.manifest(
            self.reference.manifest_reference,
            what=f"manifest {self.reference.manifest_reference}",
            expected=self.reference.digest,
        )
        parsed = self._parse(root, f"manifest {self.reference.manifest_reference}")
        kind = ArtifactKind.INDEX if isinstance(parsed, Index) else ArtifactKind.MANIFEST
        self.record(
            Observation(
                key="root",
                kind=kind,
                platform=None,
                expected=Expected(self.reference.digest, None, None),
                digest=root.digest,
                size=len(root.body),
                media_type=parsed.media_type,
                status=root.connection.status,
                remote_ip=root.connection.remote_ip,
                url=root.connection.url_effective,
            )
        )
        blobs: list[tuple[str, str | None, ArtifactKind, Descriptor]] = []
        if isinstance(parsed, Index):
            self._children(parsed, "root", {root.digest}, 1, blobs)
        else:
            blobs.extend(self._blobs_of(parsed, "root", None))
        self._download(blobs)

    def _parse(self, fetched: FetchedManifest, what: str) -> Manifest:
        """Parse manifest bytes; a refusal names this vantage and the manifest."""
        try:
            return parse_manifest(fetched.body, fetched.content_type, self.options.limits)
        except (MalformedManifest, UnsupportedManifest) as exc:
            raise type(exc)(f"vantage {self.name!r}: {what}: {exc}") from None

    def _children(
        self,
        index: Index,
        parent_key: str,
        seen: set[Digest],
        depth: int,
        blobs: list[tuple[str, str | None, ArtifactKind, Descriptor]],
    ) -> None:
        if depth > self.options.limits.max_index_depth:
            raise MalformedManifest(
                f"vantage {self.name!r}: index {parent_key}: indexes nested more than "
                f"{self.options.limits.max_index_depth} deep, deeper than tofu3 follows"
            )
        chosen = select(index, self.options.platforms)
        self.progress.step(self.name, f"{len(chosen)} manifests")

        labels = dict(zip((id(d) for d in chosen), entry_labels(index, chosen), strict=True))
        for descriptor in chosen:
            if descriptor.digest in seen:
                raise MalformedManifest(
                    f"vantage {self.name!r}: index entry {labels[id(descriptor)]} points back "
                    f"to {descriptor.digest}: a cycle"
                )
        # The whole level in one SSH command: one curl on the vantage, --jobs at a time.
        fetched_all = self.session.manifests(
            [(d.digest, f"manifest {labels[id(d)]}") for d in chosen],
            jobs=max(1, self.options.jobs),
        )
        results: list[tuple[Descriptor, str, Manifest]] = []
        for descriptor, fetched in zip(chosen, fetched_all, strict=True):
            label = labels[id(descriptor)]
            key = f"{parent_key}/{label}" if parent_key != "root" else label
            parsed = self._parse(fetched, f"manifest {label}")
            if parsed.media_type != descriptor.media_type:
                raise MalformedManifest(
                    f"vantage {self.name!r}: manifest {label} is a {parsed.media_type} but "
                    "the index says "
                    f"{descriptor.media_type}"
                )
            self.record(
                Observation(
                    key=key,
                    kind=ArtifactKind.INDEX if isinstance(parsed, Index) else ArtifactKind.MANIFEST,
                    platform=label,
                    expected=Expected(descriptor.digest, descriptor.size, descriptor.media_type),
                    digest=fetched.digest,
                    size=len(fetched.body),
                    media_type=parsed.media_type,
                    status=fetched.connection.status,
                    remote_ip=fetched.connection.remote_ip,
                    url=fetched.connection.url_effective,
                    annotations=dict(descriptor.annotations),
                )
            )
            results.append((descriptor, key, parsed))
        for descriptor, key, parsed in results:
            if isinstance(parsed, Index):
                self._children(parsed, key, seen | {descriptor.digest}, depth + 1, blobs)
            elif isinstance(parsed, ImageManifest):
                blobs.extend(self._blobs_of(parsed, key, labels[id(descriptor)]))

    @staticmethod
    def _blobs_of(
        manifest: ImageManifest, parent_key: str, platform: str | None
    ) -> list[tuple[str, str | None, ArtifactKind, Descriptor]]:
        prefix = "" if parent_key == "root" else f"{parent_key}/"
        items: list[tuple[str, str | None, ArtifactKind, Descriptor]] = [
            (f"{prefix}config", platform, ArtifactKind.CONFIG, manifest.config)
        ]
        items.extend(
            (f"{prefix}layer[{i}]", platform, ArtifactKind.LAYER, layer)
            for i, layer in enumerate(manifest.layers)
        )
        return items

    def _download(self, blobs: list[tuple[str, str | None, ArtifactKind, Descriptor]]) -> None:
        # The same blob (a shared config, say) is downloaded once per vantage.
        unique: dict[Digest, Descriptor] = {}
        for _, _, _, descriptor in blobs:
            unique.setdefault(descriptor.digest, descriptor)
        self.progress.step(self.name, f"{len(unique)} blobs")
        total = sum(d.size for d in unique.values())

        def on_progress(done: int) -> None:
            self.progress.transfer(self.name, str(len(unique)), done, total)

        # Every blob in one SSH command: one curl on the vantage, --jobs at a time.
        downloads = self.session.blobs(
            [(digest, f"blob {digest}") for digest in unique],
            jobs=max(1, self.options.jobs),
            on_progress=on_progress,
        )
        results = dict(zip(unique, downloads, strict=True))
        for key, platform, kind, descriptor in blobs:
            result = results[descriptor.digest]
            connection = result.connection
            self.record(
                Observation(
                    key=key,
                    kind=kind,
                    platform=platform,
                    expected=Expected(descriptor.digest, descriptor.size, descriptor.media_type),
                    digest=result.digest,
                    size=connection.size,
                    media_type=descriptor.media_type,
                    status=connection.status,
                    remote_ip=connection.remote_ip,
                    url=connection.url_effective,
                    annotations=dict(descriptor.annotations),
                )
            )


def _walk(
    reference: Reference, item: Connected, options: Options, progress: Progress
) -> VantageRun:
    start = time.monotonic()
    walk = _Walk(reference, item, options, progress)
    failure: Failure | None = None
    try:
        walk.run()
    except Tofu3Error as exc:
        failure = failure_of(exc)
    text = "done" if failure is None else failure.message
    progress.finished(item.vantage.name, failure is None, text)
    return VantageRun(
        name=item.vantage.name,
        host=item.vantage.address,
        curl_version=item.port.facts.curl_version,
        hash_tool=item.port.facts.hash_tool,
        host_key_fingerprint=item.port.host_key_fingerprint,
        observations=tuple(sorted(walk.observations, key=lambda o: o.key)),
        failure=failure,
        duration=time.monotonic() - start,
    )
