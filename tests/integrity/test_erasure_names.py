"""``erasure_names``: which erasure or retention record names which event (revision ``0014``).

``VerifyEvent`` of an event whose content is present did not look for a later record naming
it (content put back from a backup: every reader served it again, and the answer was
VERIFIED), because that meant reading every later record, up to ~1.3 MB each. The table is
its index: written with each record, backfilled by the revision from the records there, read
by key. The plans of the statements as issued are read, not a clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aiaudit.common import erasure, retention
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.entries import entry_sequence
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.integrity import storage
from tests.helpers import interaction
from tests.plans import Issued, index_names, partitions_of, scans


def rows(engine: sa.Engine, tenant: str) -> set[tuple[str, int]]:
    """The log's rows of ``erasure_names``: (event id, record's sequence)."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT event_id, record_seq FROM erasure_names WHERE log_id = :t"),
            {"t": tenant},
        )
        return {(str(e), int(s)) for e, s in found}


def named_by_records(engine: sa.Engine, tenant: str) -> set[tuple[str, int]]:
    """What the log's intact records name: (event id, record's sequence), the truth."""
    with engine.connect() as conn:
        records = list(storage.erasure_records(conn, tenant, after=-1))
    return {(e, seq) for seq, form in records for e in erasure.erased_ids(form)}


def load(store: SqlEventStore, tenant: str, n: int, days_ago: int = 0) -> list[str]:
    """``n`` interactions received ``days_ago``; their ids."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    batch = [interaction(tenant, f"e-{days_ago}-{i}") for i in range(n)]
    store.append_group([prepare_batch(batch, when)])
    return [e.event_id for e in batch]


@pytest.fixture
def admin(admin_url: str) -> Iterator[sa.Engine]:
    """The store as its owner (the writer may not read the table: it has no need to)."""
    engine = sa.create_engine(admin_url)
    yield engine
    engine.dispose()


def test_erasures_and_retention_sweeps_write_the_rows_their_records_name(
    store: SqlEventStore, privacy_url: str, admin: sa.Engine, tenant: str
) -> None:
    """As the privacy login (PostgreSQL: the role's grant), in the record's transaction."""
    old = load(store, tenant, 7, days_ago=40)
    load(store, tenant, 2)
    privacy = open_store(privacy_url)
    try:
        done = erasure.erase(privacy, tenant, "dsr", "dpo", [*old[:5], "not-yet"], per_record=2)
        assert len(done.record_ids) == 3
        assert retention.sweep(privacy, 30, dt.datetime.now(dt.UTC), [tenant], chunk=1) == {
            tenant: 2
        }
    finally:
        privacy.close()
    expected = named_by_records(admin, tenant)
    assert {e for e, _ in expected} == {*old, "not-yet"}
    assert len(expected) == 8  # 6 named by the erasure's three records, 2 by two sweeps
    assert rows(admin, tenant) == expected


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite has no roles
def test_no_role_may_change_or_delete_a_row(
    store: SqlEventStore, privacy_url: str, admin: sa.Engine, tenant: str
) -> None:
    ids = load(store, tenant, 1)
    privacy = open_store(privacy_url)
    try:
        erasure.erase(privacy, tenant, "dsr", "dpo", ids)
        for statement in (
            "DELETE FROM erasure_names WHERE log_id = :t",
            "UPDATE erasure_names SET record_seq = 0 WHERE log_id = :t",
        ):
            denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied")
            with denied, privacy.engine.begin() as conn:
                conn.execute(sa.text(statement), {"t": tenant})
    finally:
        privacy.close()
    assert rows(admin, tenant) == {(ids[0], 1)}


def test_the_revision_writes_the_rows_of_the_intact_records_already_stored(
    new_store: sa.Engine, tenant: str
) -> None:
    """A store upgraded from ``0013`` holds records and no table: the revision reads each
    intact record (more than one page of them: 16 a page) and writes what it names; a
    record changed by raw SQL (its bytes no longer its leaf's) gets no row."""
    engine = new_store
    store = open_store(engine.url.render_as_string(hide_password=False))
    try:
        ids = load(store, tenant, 40)
        done = erasure.erase(store, tenant, "dsr", "dpo", ids[:38], per_record=2)
        assert len(done.record_ids) == 19
        changed = erasure.erase(store, tenant, "dsr", "dpo", ids[38:]).record_id
        expected = named_by_records(engine, tenant)
        assert rows(engine, tenant) == expected
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE erasure_names"))
            conn.execute(
                sa.text(
                    "UPDATE alembic_version SET version_num = '0013' WHERE version_num = '0014'"
                )
            )
            conn.execute(
                sa.text("UPDATE events SET canonical = :c WHERE log_id = :t AND event_id = :e"),
                {"c": b"{}", "t": tenant, "e": changed},
            )
        migrate(engine)
        migrate(engine)  # again: nothing to do
        backfilled = rows(engine, tenant)
        assert backfilled == named_by_records(engine, tenant)
        assert len(backfilled) == 38 and {e for e, _ in backfilled} == set(ids[:38])
    finally:
        store.close()


def test_verify_event_finds_the_records_naming_an_event_by_keys_not_by_reading_them(
    store: SqlEventStore, privacy_url: str, admin: sa.Engine, tenant: str
) -> None:
    """2,000 events and a record naming one; a put-back check reads one range of
    ``erasure_names``' key, then the record's entry and event row each by their key."""
    ids = load(store, tenant, 2_000)
    privacy = open_store(privacy_url)
    try:
        record = erasure.erase(privacy, tenant, "dsr", "dpo", [ids[5]]).record_id
    finally:
        privacy.close()
    load(store, tenant, 10)
    with admin.connect() as conn:
        seq = entry_sequence(conn, tenant, record)
        with Issued(admin, "erasure_names") as named, Issued(admin, "log_entries le") as read:
            assert storage.record_naming(conn, tenant, ids[5], 5) == seq
        assert storage.record_naming(conn, tenant, ids[5], seq) is None
        assert storage.record_naming(conn, tenant, ids[6], 6) is None
    sqlite = admin.dialect.name == "sqlite"
    (lookup,) = named.statements
    (fetch,) = read.statements
    if sqlite:  # the table is its key (WITHOUT ROWID), which tests.plans does not parse
        with admin.connect() as conn:
            (line,) = [
                r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {lookup[0]}", lookup[1])
            ]
        assert line.startswith("SEARCH erasure_names USING PRIMARY KEY (log_id=? AND event_id=?"), (
            line
        )
    else:
        keys = index_names(admin, "erasure_names_pkey")
        plan = scans(admin, *lookup)
        assert plan and all(s.index in keys and "event_id" in s.keys for s in plan), plan
    events = {"e", "events"} if sqlite else partitions_of(admin, "events", tenant)
    entries = {"le", "log_entries"}
    plan = scans(admin, *fetch)
    assert {s.table for s in plan} & events and {s.table for s in plan} & entries, plan
    for scan in plan:
        if scan.table in entries | events:  # by key, not a walk of the log
            assert ("seq=?" in scan.keys) if sqlite else ("seq = " in scan.keys), plan


def test_each_record_s_entry_is_read_by_its_key_on_a_database_without_statistics(
    new_store: sa.Engine, tenant: str
) -> None:
    """A review feared PostgreSQL would look up each record's entry through
    ``log_entries_event_id_key`` on ``log_id`` alone (a walk of the log's entries per record)
    where no statistics were gathered: a database of its own, never analysed, two logs of
    30,000 events; both plans read the entries' primary key by log and sequence."""
    engine = new_store
    store = open_store(engine.url.render_as_string(hide_password=False))
    try:
        ids = load(store, tenant, 30_000)
        load(store, f"{tenant}-other", 30_000)
        erasure.erase(store, tenant, "dsr", "dpo", [ids[5]])
        with Issued(engine, "events") as issued, engine.connect() as conn:
            assert len(list(storage.erasure_records(conn, tenant, 5))) == 1
    finally:
        store.close()
    (statement,) = issued.statements
    entries = [s for s in scans(engine, *statement) if s.table in {"le", "log_entries"}]
    assert entries, statement
    for scan in entries:
        if engine.dialect.name == "sqlite":
            assert "seq=?" in scan.keys, entries
        else:
            assert scan.index == "log_entries_pkey" and "seq = " in scan.keys, entries
