"""The ledger: every verification recorded whatever the verdict, the last accepted digest of
a tag found again, and many concurrent writers (threads and processes) that neither corrupt
the store nor lose an entry."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from tests.unit.bottle_verdicts import (
    INDEX,
    MOVED_INDEX,
    WGET,
    honest,
    one_vantage_served_another_layer,
)
from tofu3.errors import LedgerError
from tofu3.ledger.policy import PreviousAcceptance, TagHistory, apply_tag_history
from tofu3.ledger.record import entry_for, history_for
from tofu3.ledger.store import FILE_NAME, Ledger, default_directory, ledger_path
from tofu3.reference import parse_reference

WRITERS = 6
ENTRIES_EACH = 40


def _record(ledger: Ledger, when: str, *, moved: bool = False) -> None:
    verdict = honest(root=MOVED_INDEX if moved else INDEX)
    ledger.record(entry_for(verdict, verified_at=when, report_sha256="ab" * 32, history=None))


def test_every_verdict_is_recorded_and_listed_oldest_first(tmp_path: Path) -> None:
    with Ledger(tmp_path / FILE_NAME) as ledger:
        _record(ledger, "2026-10-01T09:15:00Z")
        rejected = one_vantage_served_another_layer()
        ledger.record(
            entry_for(
                rejected, verified_at="2026-10-02T09:15:00Z", report_sha256="cd" * 32, history=None
            )
        )

        entries = ledger.history("ghcr.io/homebrew/core/wget", tag="1.24.5")

    assert [e.verdict for e in entries] == ["accepted", "rejected"]
    first, second = entries
    assert first.digest == INDEX and first.by_tag and first.tag == "1.24.5"
    assert first.vantage_digests == {"ams": INDEX, "sfo": INDEX, "sgp": INDEX}
    assert [name for name, _, ok in first.vantages if ok] == ["ams", "sfo", "sgp"]
    assert "VANTAGE_DISAGREEMENT" in second.findings
    assert second.report_sha256 == "cd" * 32


def test_the_last_accepted_digest_of_a_tag_is_found_and_rejections_do_not_replace_it(
    tmp_path: Path,
) -> None:
    with Ledger(tmp_path / FILE_NAME) as ledger:
        _record(ledger, "2026-10-01T09:15:00Z")
        moved = apply_tag_history(
            honest(root=MOVED_INDEX),
            TagHistory(PreviousAcceptance(INDEX, "2026-10-01T09:15:00Z", WGET)),
            "2026-10-02T00:00:00Z",
        )
        ledger.record(
            entry_for(
                moved, verified_at="2026-10-02T00:00:00Z", report_sha256="0" * 64, history=None
            )
        )

        previous = ledger.last_accepted("ghcr.io/homebrew/core/wget", "1.24.5")
        history = history_for(ledger, parse_reference(WGET), accept_tag_move=False)
        pinned = history_for(ledger, parse_reference(f"{WGET}@{INDEX}"), accept_tag_move=False)

    assert previous is not None and previous.digest == INDEX
    assert previous.verified_at == "2026-10-01T09:15:00Z"
    assert history == TagHistory(previous, False)
    assert pinned is None  # a digest-pinned reference does not consult the tag


def test_an_accepted_tag_move_is_remembered_as_the_new_digest(tmp_path: Path) -> None:
    before = TagHistory(PreviousAcceptance(INDEX, "2026-10-01T09:15:00Z", WGET), True)
    verdict = apply_tag_history(honest(root=MOVED_INDEX), before, "2026-10-02T00:00:00Z")
    with Ledger(tmp_path / FILE_NAME) as ledger:
        _record(ledger, "2026-10-01T09:15:00Z")
        ledger.record(
            entry_for(
                verdict, verified_at="2026-10-02T00:00:00Z", report_sha256="0" * 64, history=before
            )
        )

        previous = ledger.last_accepted("ghcr.io/homebrew/core/wget", "1.24.5")
        entries = ledger.history("ghcr.io/homebrew/core/wget", digest=MOVED_INDEX)

    assert previous is not None and previous.digest == MOVED_INDEX
    assert [e.tag_move_accepted for e in entries] == [True]


def test_the_ledger_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tofu3" / FILE_NAME
    Ledger(path).close()

    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_ledger_from_a_newer_tofu3_is_refused(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(LedgerError, match="newer tofu3"):
        Ledger(path)


def test_an_unwritable_state_directory_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    with pytest.raises(LedgerError):
        Ledger(blocker / FILE_NAME)


def test_the_state_directory_follows_tofu3_state_dir_then_xdg_state_home() -> None:
    assert default_directory({"TOFU3_STATE_DIR": "/srv/t3"}) == Path("/srv/t3")
    assert default_directory({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/tofu3")
    relative = default_directory({"XDG_STATE_HOME": "relative/state"})
    assert relative == Path.home() / ".local" / "state" / "tofu3"
    assert default_directory({}) == Path.home() / ".local" / "state" / "tofu3"


def test_a_lab_inventory_records_to_the_labs_own_ledger(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "state.json").write_text("{}")
    (lab / "inventory.yaml").write_text("version: 1\n")
    mine = tmp_path / "inventory.yaml"
    mine.write_text("version: 1\n")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}

    assert ledger_path(lab / "inventory.yaml", env) == lab / FILE_NAME
    assert ledger_path(mine, env) == tmp_path / "state" / "tofu3" / FILE_NAME
    assert ledger_path(None, env) == tmp_path / "state" / "tofu3" / FILE_NAME
    overridden = {**env, "TOFU3_STATE_DIR": str(tmp_path / "tests")}
    assert ledger_path(lab / "inventory.yaml", overridden) == tmp_path / "tests" / FILE_NAME


def _writer(path: str, writer: int) -> None:
    with Ledger(Path(path)) as ledger:
        for n in range(ENTRIES_EACH):
            _record(ledger, f"2026-11-27T03:{writer:02d}:{n:02d}Z")


def test_concurrent_processes_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(path), w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [p.exitcode for p in processes] == [0] * WRITERS
    with Ledger(path) as ledger:
        assert ledger.count() == WRITERS * ENTRIES_EACH
        times = {e.verified_at for e in ledger.history("ghcr.io/homebrew/core/wget")}
    assert len(times) == WRITERS * ENTRIES_EACH
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_threads_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            _writer(str(path), writer)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with Ledger(path) as ledger:
        assert ledger.count() == WRITERS * ENTRIES_EACH
