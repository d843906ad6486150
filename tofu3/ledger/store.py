"""The ledger's SQLite store: one row per verification, whatever the verdict.

Where: ``$TOFU3_STATE_DIR/ledger.sqlite3`` when that is set, else
``$XDG_STATE_HOME/tofu3/ledger.sqlite3``, else ``~/.local/state/tofu3/ledger.sqlite3``; the
directory is made 0700 and the file 0600. Verifications against a lab (an inventory.yaml
beside a lab's state.json) go to that lab's own ``ledger.sqlite3``: the lab serves made-up
content under real names (ghcr.io/homebrew/core/wget:1.24.5), which must never become what
the real tag is expected to name.

Concurrency: WAL journal, a busy timeout, and every write in its own ``BEGIN IMMEDIATE``
transaction, so several tofu3 runs at once wait for each other instead of failing, and no
entry is lost or half-written. Entries are only ever added.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tofu3.digest import Digest
from tofu3.errors import LedgerError
from tofu3.ledger.policy import PreviousAcceptance

STATE_DIR_ENV = "TOFU3_STATE_DIR"
FILE_NAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    verified_at TEXT NOT NULL,
    reference TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT,
    by_tag INTEGER NOT NULL,
    pinned_digest TEXT,
    digest TEXT,
    verdict TEXT NOT NULL,
    tag_move_accepted INTEGER NOT NULL DEFAULT 0,
    vantages TEXT NOT NULL,
    vantage_digests TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    findings TEXT NOT NULL,
    report_sha256 TEXT NOT NULL,
    tofu3_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verifications_by_tag
    ON verifications (repository, tag, verified_at);
"""


_COLUMNS = (
    "SELECT id, verified_at, reference, repository, tag, by_tag, pinned_digest, digest, "
    "verdict, tag_move_accepted, vantages, vantage_digests, artifacts, findings, "
    "report_sha256, tofu3_version FROM verifications "
)
_LAST_ACCEPTED = (
    _COLUMNS + "WHERE repository = ? AND tag = ? AND by_tag = 1 AND verdict = 'accepted' "
    "AND digest IS NOT NULL ORDER BY verified_at DESC, id DESC LIMIT 1"
)
_HISTORY = (
    _COLUMNS + "WHERE repository = ? AND (? IS NULL OR tag = ?) "
    "AND (? IS NULL OR digest = ? OR pinned_digest = ?) ORDER BY verified_at, id"
)


def default_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV]).expanduser()
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative path.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "tofu3"


def ledger_path(inventory: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The ledger a verification with ``inventory`` is recorded in (see the module docstring)."""
    env = os.environ if environ is None else environ
    if not env.get(STATE_DIR_ENV) and inventory is not None:
        directory = inventory.expanduser().resolve().parent
        if inventory.name == "inventory.yaml" and (directory / "state.json").is_file():
            return directory / FILE_NAME
    return default_directory(env) / FILE_NAME


@dataclass(frozen=True)
class Entry:
    """One recorded verification."""

    verified_at: str  # ISO 8601, UTC, "Z"
    reference: str  # as given
    repository: str  # registry/repository (or the URL of a release file)
    tag: str | None
    by_tag: bool  # the tag was resolved (no digest in the reference)
    pinned_digest: Digest | None
    digest: Digest | None  # what every vantage agreed the reference names, if they did
    verdict: str
    tag_move_accepted: bool
    vantages: tuple[tuple[str, str, bool], ...]  # (name, host, finished)
    vantage_digests: Mapping[str, str]  # vantage -> digest it saw for the reference
    artifacts: Mapping[str, str | None]  # artifact key -> agreed digest
    findings: tuple[str, ...]  # finding codes
    report_sha256: str
    tofu3_version: str
    id: int | None = None


def _set_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite can answer "database is locked" here at once, without its busy
    handler, while another process is creating or recovering the same file: retried."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Ledger:
    """An open ledger. Use as a context manager, or call close()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                # Created 0600 before SQLite opens it: the history is nobody else's business.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            _set_wal(self._db)
            self._db.execute("PRAGMA synchronous = FULL")
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise LedgerError(
                        f"{path} was written by a newer tofu3 (ledger version {version})"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from None

    @classmethod
    def open_default(cls, inventory: Path | None = None) -> Ledger:
        """The ledger for verifications with ``inventory`` (the user's, or a lab's)."""
        return cls(ledger_path(inventory))

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record(self, entry: Entry) -> int:
        """Add ``entry`` in one transaction; return its id."""
        row = (
            entry.verified_at,
            entry.reference,
            entry.repository,
            entry.tag,
            int(entry.by_tag),
            entry.pinned_digest,
            entry.digest,
            entry.verdict,
            int(entry.tag_move_accepted),
            json.dumps([list(v) for v in entry.vantages]),
            json.dumps(dict(entry.vantage_digests), sort_keys=True),
            json.dumps(dict(entry.artifacts)),
            json.dumps(list(entry.findings)),
            entry.report_sha256,
            entry.tofu3_version,
        )
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT INTO verifications (verified_at, reference, repository, tag, by_tag, "
                    "pinned_digest, digest, verdict, tag_move_accepted, vantages, "
                    "vantage_digests, artifacts, findings, report_sha256, tofu3_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                return int(cursor.lastrowid or 0)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write to the ledger {self.path}: {exc}") from None

    def last_accepted(self, repository: str, tag: str) -> PreviousAcceptance | None:
        """The latest accepted verification that resolved ``repository:tag`` by its tag."""
        rows = self._select(_LAST_ACCEPTED, (repository, tag))
        if not rows:
            return None
        entry = rows[0]
        if entry.digest is None:  # the query excludes it; checked for the type
            return None
        return PreviousAcceptance(entry.digest, entry.verified_at, entry.reference)

    def history(
        self, repository: str, *, tag: str | None = None, digest: str | None = None
    ) -> list[Entry]:
        """Every entry for ``repository`` (only ``tag``'s, or only those that saw ``digest``,
        when given), oldest first."""
        return self._select(_HISTORY, (repository, tag, tag, digest, digest, digest))

    def count(self) -> int:
        """How many entries there are."""
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM verifications").fetchone()[0])
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from None

    def _select(self, query: str, parameters: Sequence[object]) -> list[Entry]:
        try:
            rows = self._db.execute(query, parameters).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from None
        return [_entry(row) for row in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _entry(row: tuple[object, ...]) -> Entry:
    (id_, when, reference, repository, tag, by_tag, pinned, digest, verdict, moved) = row[:10]
    vantages, vantage_digests, artifacts, findings, report_sha256, version = row[10:]
    return Entry(
        id=int(str(id_)),
        verified_at=str(when),
        reference=str(reference),
        repository=str(repository),
        tag=None if tag is None else str(tag),
        by_tag=bool(by_tag),
        pinned_digest=None if pinned is None else Digest(str(pinned)),
        digest=None if digest is None else Digest(str(digest)),
        verdict=str(verdict),
        tag_move_accepted=bool(moved),
        vantages=tuple((str(n), str(h), bool(ok)) for n, h, ok in json.loads(str(vantages))),
        vantage_digests=json.loads(str(vantage_digests)),
        artifacts=json.loads(str(artifacts)),
        findings=tuple(json.loads(str(findings))),
        report_sha256=str(report_sha256),
        tofu3_version=str(version),
    )
