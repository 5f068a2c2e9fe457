"""``erasure_names`` kept whole: ids no event can have, and ``aiaudit db reindex-erasures``.

The table is only an index to what the signed records name. A replica older than revision
``0014`` performing an erasure or a sweep writes none of its rows, and ``verify`` then names
them missing, exit 1, with no way to clear it; the repair writes the rows the intact records
name and the table lacks, and never deletes one (a row no record names stays, for ``verify``
to name: it was forged). A record naming an id longer than any event's (``aiaudit erase``
took any ``--event-id`` before 2026-12-06) failed its erasure, and revision ``0014``, on
PostgreSQL (``event_id`` is ``varchar(128)``).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common import erasure
from aiaudit.common.store import SqlEventStore, entries, open_store
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.integrity import storage
from tests.helpers import interaction
from tests.integrity.test_verify import Log, full_log, postgres  # noqa: F401 (the fixtures)


@pytest.fixture
def log(full_log: Log) -> Log:  # noqa: F811 (the fixture)
    """test_verify's log of 15 events, checkpoints at 12 and 15, verified in full mode."""
    return full_log


LONG = "x" * 200
"""An id ``aiaudit erase`` took before 2026-12-06: longer than any event's (128 at most)."""


def rows(log: Log) -> set[tuple[str, int]]:
    """The log's rows of ``erasure_names``: (event id, record's sequence)."""
    with log.admin.connect() as conn:
        found = conn.execute(
            sa.text("SELECT event_id, record_seq FROM erasure_names WHERE log_id = :t"),
            {"t": log.tenant},
        )
        return {(str(e), int(s)) for e, s in found}


def erase(url: str, log: Log, ids: list[str]) -> None:
    """An erasure as the privacy login (PostgreSQL: the role that may write the rows)."""
    store = open_store(url)
    try:
        erasure.erase(store, log.tenant, "data subject request", "dpo", ids)
    finally:
        store.close()


def reindex(url: str, *logs: str) -> int:
    argv = ["db", "reindex-erasures", "--database-url", url]
    return main([*argv, *(a for log in logs for a in ("--log", log))])


def test_a_record_naming_an_id_no_event_can_have_is_committed_and_verifies(
    log: Log, privacy_url: str
) -> None:
    """The erasure failed on PostgreSQL (value too long for varchar(128)); no row is owed
    for such an id, and verify does not name one missing."""
    erase(privacy_url, log, [log.event(2), LONG])
    assert rows(log) == {(log.event(2), 15)}
    assert log.verify().ok


def test_the_revision_writes_no_row_for_an_id_no_event_can_have(log: Log, privacy_url: str) -> None:
    """Revision ``0014`` read such a record from a store upgraded from ``0013`` and failed on
    PostgreSQL: the whole upgrade stopped there."""
    erase(privacy_url, log, [log.event(2), LONG])
    log.execute("DROP TABLE erasure_names")
    log.execute("UPDATE alembic_version SET version_num = '0013' WHERE version_num = '0014'")
    migrate(log.admin)
    assert rows(log) == {(log.event(2), 15)}
    assert log.verify().ok


def test_rows_a_replica_before_0014_did_not_write_are_written_again(
    log: Log, privacy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Verify names them missing (exit 1); the repair, as the privacy login, writes them
    (exit 0), idempotent; then verify passes."""
    t = log.tenant
    erase(privacy_url, log, [log.event(2), log.event(3)])
    erase(privacy_url, log, [log.event(4)])
    written = rows(log)
    assert written == {(log.event(2), 15), (log.event(3), 15), (log.event(4), 16)}
    log.execute("DELETE FROM erasure_names WHERE log_id = :t")  # as a replica before 0014
    assert main(log.argv()) == 1
    assert "erasure_names lacks the row" in capsys.readouterr().out
    assert reindex(privacy_url, t) == 0
    assert f"log {t}: 3 row(s) of erasure_names written (2 intact record(s) read)" in (
        capsys.readouterr().out
    )
    assert rows(log) == written
    assert reindex(privacy_url) == 0  # every log, and nothing left to write
    assert f"log {t}: 0 row(s) of erasure_names written" in capsys.readouterr().out
    assert rows(log) == written
    assert main(log.argv()) == 0


def test_a_row_no_record_names_is_kept_for_verify_to_name(
    log: Log, privacy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The repair never deletes: a row added by raw SQL is forged, and stays named."""
    erase(privacy_url, log, [log.event(2)])
    log.execute(
        "INSERT INTO erasure_names (log_id, event_id, record_seq) VALUES (:t, :e, 15)",
        e=log.event(5),
    )
    log.execute("DELETE FROM erasure_names WHERE log_id = :t AND event_id = :e", e=log.event(2))
    assert reindex(privacy_url, log.tenant) == 0
    assert rows(log) == {(log.event(2), 15), (log.event(5), 15)}
    assert log.problems() == [
        f"log {log.tenant} sequence 15: erasure_names has a row naming event "
        f"{log.event(5)!r} for this sequence, which holds no intact record naming it "
        "(inserted or changed?)"
    ]
    capsys.readouterr()


def test_an_unknown_log_is_refused_and_nothing_written(
    log: Log, privacy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    erase(privacy_url, log, [log.event(2)])
    log.execute("DELETE FROM erasure_names WHERE log_id = :t")
    assert reindex(privacy_url, log.tenant, "no-such-log") == 2
    assert "--log 'no-such-log': no such log" in capsys.readouterr().err
    assert rows(log) == set()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite has no roles
def test_the_writer_login_is_refused_with_the_role_to_use(
    log: Log, store_url: str, privacy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ingest's writer may not add to the index (only erasures and sweeps do): exit 1."""
    erase(privacy_url, log, [log.event(2)])
    log.execute("DELETE FROM erasure_names WHERE log_id = :t")
    assert reindex(store_url, log.tenant) == 1
    err = capsys.readouterr().err
    assert "permission denied" in err and "the privacy login" in err, err
    assert rows(log) == set()


def test_an_id_erased_before_any_event_had_it_is_no_put_back(
    log: Log, store: SqlEventStore, privacy_url: str
) -> None:
    """A record naming an id no event had yet erases nothing; an event given that id later
    keeps its content legitimately (README, Erasure): the record is before it, so neither
    ``VerifyEvent``'s lookup nor verify calls it put back. Another log's record naming the
    same id names nothing here either."""
    later = f"later-{log.tenant}"
    erase(privacy_url, log, [later])
    store.append_group([prepare_batch([interaction(log.tenant, later)], dt.datetime.now(dt.UTC))])
    other = f"{log.tenant}-other"
    store.append_group([prepare_batch([interaction(other, "x-1")], dt.datetime.now(dt.UTC))])
    privacy = open_store(privacy_url)
    try:
        erasure.erase(privacy, other, "dsr", "dpo", [later, log.event(3)])
    finally:
        privacy.close()
    with log.admin.connect() as conn:
        seq = entries.entry_sequence(conn, log.tenant, later)
        assert seq == 16
        assert storage.record_naming(conn, log.tenant, later, seq) is None
        assert storage.record_naming(conn, log.tenant, log.event(3), 3) is None
    assert rows(log) == {(later, 15)}
    report = log.verify()
    assert not [p for p in report.problems if "erasure" in str(p) or "put back" in str(p)], (
        report.problems
    )
