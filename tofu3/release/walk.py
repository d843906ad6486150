"""A release file's three-vantage download: each vantage fetches the URL with its own curl
(redirects followed, https only, at most ``Limits.max_redirects``), hashes the body as it
streams, and reports digest, size, status, remote address, redirect count and the final URL
(without its query). The verdict is tofu3.verdict.decide over one FILE observation per
vantage, so agreement and the ``--sha256`` pin are judged exactly as for an image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tofu3.digest import algorithm_of
from tofu3.errors import (
    HttpError,
    Tofu3Error,
)
from tofu3.observation import ArtifactKind, Expected, Failure, Observation, VantageRun
from tofu3.reference import Reference
from tofu3.release.url import ReleaseReference
from tofu3.remote.port import BlobRequest, Request, VantagePort
from tofu3.verify import (
    Connected,
    Options,
    Progress,
    failure_of,
    run_on_vantages,
    verify_connected,
)

_HTTP_OK = 200


def verify_target_connected(
    reference: Reference, connected: Sequence[Connected], options: Options, progress: Progress
) -> list[VantageRun]:
    """Run a verification on connected vantages: a release file's download for a URL, the
    registry protocol for an image reference."""
    if isinstance(reference, ReleaseReference):
        return verify_release_connected(reference, connected, options, progress)
    return verify_connected(reference, connected, options, progress)


def verify_release_connected(
    reference: ReleaseReference,
    connected: Sequence[Connected],
    options: Options,
    progress: Progress,
) -> list[VantageRun]:
    """Download on every connected vantage in parallel. On Ctrl-C, close every connection
    (which ends curl on the vantages) and raise VerificationInterrupted, as image
    verification does."""
    return run_on_vantages(connected, lambda item: _download(reference, item, options, progress))


def _download(
    reference: ReleaseReference, item: Connected, options: Options, progress: Progress
) -> VantageRun:
    name = item.vantage.name
    start = time.monotonic()
    observations: tuple[Observation, ...] = ()
    failure: Failure | None = None
    progress.step(name, "downloading")
    try:
        observations = (_observe(reference, item.port, name, progress),)
    except Tofu3Error as exc:
        failure = failure_of(exc)
    progress.finished(name, failure is None, "done" if failure is None else failure.message)
    return VantageRun(
        name=name,
        host=item.vantage.address,
        curl_version=item.port.facts.curl_version,
        hash_tool=item.port.facts.hash_tool,
        host_key_fingerprint=item.port.host_key_fingerprint,
        observations=observations,
        failure=failure,
        duration=time.monotonic() - start,
    )


def _observe(
    reference: ReleaseReference, port: VantagePort, name: str, progress: Progress
) -> Observation:
    def on_progress(seen: int) -> None:
        progress.transfer(name, "file", seen, None)

    algorithm = algorithm_of(reference.digest) if reference.digest else "sha256"
    (download,) = port.download(
        [
            BlobRequest(
                Request(reference.url, follow_redirects=True),
                algorithm=algorithm,
                what=f"file {reference.url_path}",
            )
        ],
        jobs=1,
        on_progress=on_progress,
    )
    connection = download.connection
    if connection.status != _HTTP_OK:
        raise HttpError(
            f"vantage {name!r}: {connection.url_effective or reference.url_path}: "
            f"HTTP {connection.status}",
            status=connection.status,
        )
    return Observation(
        key="root",
        kind=ArtifactKind.FILE,
        platform=None,
        expected=Expected(reference.digest, None, None),
        digest=download.digest,
        size=connection.size,
        media_type=connection.content_type,
        status=connection.status,
        remote_ip=connection.remote_ip,
        url=connection.url_effective,
        redirects=connection.redirects,
    )
