"""``verify`` checks what decides which content goes: the classification column, whole erasures.

Raw SQL as the database owner on a log of 15 events (checkpoints at 12 and 15),
both stores. The retention sweep finds content by ``event_content.data_classification``
alone (revision 0013), so a changed column erases content early or keeps it past its
deadline; an erasure of many ids is several records, and every reader takes the
erasure as whole from the records it finds. Until 2026-12-07 verify checked neither.
"""

from __future__ import annotations

import datetime as dt
from hashlib import sha256
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.erasure import erase, erased_ids
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.schema import events, log_entries
from aiaudit.common.v1 import event_pb2 as ev
from tests.conftest import Postgres
from tests.helpers import interaction
from tests.integrity.test_verify import Log, full_log  # noqa: F401 (the fixture)

RESTRICTED, PUBLIC = ev.DATA_CLASSIFICATION_RESTRICTED, ev.DATA_CLASSIFICATION_PUBLIC


@pytest.fixture
def postgres(own_postgres: Postgres) -> Postgres:
    """A database of the test's own: a tampered log would stay in the session's."""
    return own_postgres


def _classified(store: SqlEventStore, log: Log) -> list[str]:
    """Appends a RESTRICTED event (sequence 15) and one without content fields (16)."""
    restricted = interaction(log.tenant, "classified", text="card 4111")
    restricted.data_classification = RESTRICTED
    empty = ev.Event(
        event_id="classified-empty",
        tenant_id=log.tenant,
        event_type=ev.EVENT_TYPE_AGENT_HANDOFF,
        agent_handoff=ev.AgentHandoff(to_agent="b"),
        data_classification=RESTRICTED,
    )
    empty.occurred_time.GetCurrentTime()
    (receipts,) = store.append_group([prepare_batch([restricted, empty], dt.datetime.now(dt.UTC))])
    assert isinstance(receipts, list)
    assert [r.sequence for r in receipts] == [15, 16]
    with log.admin.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT seq, data_classification, content FROM event_content "
                "WHERE log_id = :t AND seq >= 14 ORDER BY seq"
            ),
            {"t": log.tenant},
        ).all()
    assert [(r[0], r[1], bytes(r[2]) == b"{}") for r in rows] == [
        (14, None, False),
        (15, RESTRICTED, False),
        (16, RESTRICTED, True),
    ]
    return [r.event_id for r in receipts]


def test_a_changed_classification_column_is_named(
    full_log: Log,  # noqa: F811 (the fixture)
    store: SqlEventStore,
    privacy_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each way a column can be changed, and the erased event's row gone (nothing to check)."""
    _classified(store, full_log)
    privacy = open_store(privacy_url)
    try:  # a classified event erased: no content row, no column
        erase(privacy, full_log.tenant, "data subject request", "dpo", ["classified"])
    finally:
        privacy.close()
    report = full_log.verify()
    assert report.ok and not report.warnings, report.problems + report.warnings
    full_log.execute(
        "UPDATE event_content SET data_classification = :c WHERE log_id = :t AND seq = 3", c=PUBLIC
    )
    full_log.execute(
        "UPDATE event_content SET data_classification = 0 WHERE log_id = :t AND seq = 16"
    )
    t = full_log.tenant
    assert full_log.problems() == [
        f"log {t} sequence 3 event {full_log.event(3)}: column event_content.data_classification "
        "is DATA_CLASSIFICATION_PUBLIC (1) but the committed event is "
        "DATA_CLASSIFICATION_UNSPECIFIED (held as NULL): content retention goes by the column "
        "(changed?)",
        f"log {t} sequence 16 event classified-empty: column event_content.data_classification "
        "is DATA_CLASSIFICATION_UNSPECIFIED (0) but the committed event is "
        "DATA_CLASSIFICATION_RESTRICTED (4): content retention goes by the column (changed?)",
    ]
    capsys.readouterr()
    assert main(full_log.argv()) == 1
    assert "sequence 3" in capsys.readouterr().out


def test_a_classified_events_column_set_to_null_is_a_warning(
    full_log: Log,  # noqa: F811 (the fixture)
    store: SqlEventStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """NULL is also what a replica of the previous version writes during a rolling upgrade
    (after 0013 filled the rows before it): named, exit 0. Content ``{}`` no sweep erases,
    and the migration leaves it NULL: nothing to say."""
    _classified(store, full_log)
    full_log.execute(
        "UPDATE event_content SET data_classification = NULL WHERE log_id = :t AND seq >= 15"
    )
    report = full_log.verify()
    assert report.ok, report.problems
    named = (
        f"log {full_log.tenant} sequence 15 event classified: column "
        "event_content.data_classification is NULL but the committed event is "
        "DATA_CLASSIFICATION_RESTRICTED (4): content retention keeps it as INTERNAL (written by "
        "a replica older than revision 0013 during a rolling upgrade, or set to NULL?)"
    )
    assert [str(w) for w in report.warnings] == [named]
    capsys.readouterr()
    assert main(full_log.argv()) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"warning: {named}"]
    assert err.splitlines()[-1].endswith("checked: 0 problem(s), 1 warning(s) (no damage)"), err


def _erase_in_parts(log: Log, privacy_url: str, *event_ids: str) -> list[str]:
    """A real erasure, one record per id (15 on); its records' event ids."""
    privacy = open_store(privacy_url)
    try:
        done = erase(privacy, log.tenant, "data subject request", "dpo", event_ids, per_record=1)
    finally:
        privacy.close()
    assert len(done.record_ids) == len(event_ids)
    report = log.verify()
    assert report.ok and not report.warnings, report.problems + report.warnings
    return done.record_ids


def _drop_tail(log: Log, seq: int) -> None:
    """Deletes the log's entries from ``seq`` on and its head with them (no checkpoint there)."""
    for table in ("event_content", "events", "log_entries"):
        log.execute(f"DELETE FROM {table} WHERE log_id = :t AND seq >= :s", s=seq)
    # The head only grows (a trigger): an attacker owning the tables switches it off first.
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs DISABLE TRIGGER logs_head_grows")
    log.execute("UPDATE logs SET size = :s WHERE log_id = :t", s=seq)
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs ENABLE TRIGGER logs_head_grows")


def test_an_erasures_last_part_cut_past_the_checkpoints_is_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    """Its last part names an id no event has: nothing else tells it was there. Past the
    last checkpoint (15) no signed root covers the records, and verify passed."""
    records = _erase_in_parts(full_log, privacy_url, full_log.event(2), "no-such-event")
    _drop_tail(full_log, 16)
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 15 event {records[0]}: erasure record part 1 of 2: "
        "part(s) 2 of its erasure after it are not among the log's intact records (deleted, "
        "changed, or the tail truncated?)"
    ]


def test_an_erasures_part_deleted_in_the_middle_is_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    ids = [full_log.event(i) for i in (2, 4, 6)]
    records = _erase_in_parts(full_log, privacy_url, *ids)
    for table in ("event_content", "events", "log_entries"):
        full_log.execute(f"DELETE FROM {table} WHERE log_id = :t AND seq = 16")
    problems = full_log.problems()
    assert (
        f"log {full_log.tenant} sequence 17 event {records[2]}: erasure record part 3 of 3: "
        "part(s) 2 of its erasure between part 1 at sequence 15 and it are not among the log's "
        "intact records (deleted, changed, or the tail truncated?)"
    ) in problems
    assert any("sequences 16..16 are missing" in p for p in problems)


def test_an_erasures_first_part_deleted_is_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    records = _erase_in_parts(full_log, privacy_url, full_log.event(2), full_log.event(4))
    full_log.execute("DELETE FROM events WHERE log_id = :t AND seq = 15")  # its entry kept
    assert (
        f"log {full_log.tenant} sequence 16 event {records[1]}: erasure record part 2 of 2: "
        "part(s) 1 of its erasure before it are not among the log's intact records (deleted, "
        "changed, or the tail truncated?)"
    ) in full_log.problems()


def _index(conn: sa.Connection, tenant: str, record: bytes, seq: int) -> None:
    """The ``erasure_names`` rows of a record appended by raw SQL, as the store writes them
    (without them verify names each missing row as well)."""
    conn.execute(
        sa.text("INSERT INTO erasure_names (log_id, event_id, record_seq) VALUES (:t, :e, :s)"),
        [{"t": tenant, "e": e, "s": seq} for e in erased_ids(record)],
    )


def test_an_erasures_part_recorded_twice_is_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    """A copy of the last part (another event id, its own leaf) appended past the checkpoints."""
    records = _erase_in_parts(full_log, privacy_url, full_log.event(2), full_log.event(4))
    with full_log.admin.begin() as conn:
        last = conn.execute(
            sa.select(events).where(events.c.log_id == full_log.tenant, events.c.seq == 16)
        ).one()
        entry = conn.execute(
            sa.select(log_entries).where(
                log_entries.c.log_id == full_log.tenant, log_entries.c.seq == 16
            )
        ).one()
        forged = bytes(last.canonical).replace(records[1].encode(), b"erasure-copy")
        conn.execute(
            sa.insert(events).values(
                {**last._asdict(), "seq": 17, "event_id": "erasure-copy", "canonical": forged}
            )
        )
        leaf = sha256(b"\x00" + forged).digest()
        conn.execute(
            sa.insert(log_entries).values(
                {**entry._asdict(), "seq": 17, "event_id": "erasure-copy", "leaf_hash": leaf}
            )
        )
        conn.execute(sa.text("UPDATE logs SET size = 18 WHERE log_id = :t"), {"t": full_log.tenant})
        _index(conn, full_log.tenant, forged, 17)
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 17 event erasure-copy: erasure record part 2 of 2 "
        "appears again (first at sequence 16): each part is recorded once (inserted?)"
    ]


def test_a_record_whose_part_count_no_int_can_hold_is_named_not_a_crash(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    """A record (its own leaf, past the checkpoints) whose ``erasure.part`` is 5,000 digits:
    ``int()`` refuses more than 4,300, and reading the record raised ValueError, in verify
    (a traceback) and in every reader of records (the search indexer, alerting, bundles)."""
    (record,) = _erase_in_parts(full_log, privacy_url, full_log.event(2))
    huge = b'"intValue":"' + b"9" * 5000 + b'"'
    with full_log.admin.begin() as conn:
        row = conn.execute(
            sa.select(events).where(events.c.log_id == full_log.tenant, events.c.seq == 15)
        ).one()
        entry = conn.execute(
            sa.select(log_entries).where(
                log_entries.c.log_id == full_log.tenant, log_entries.c.seq == 15
            )
        ).one()
        forged = bytes(row.canonical).replace(record.encode(), b"erasure-copy")
        assert forged.count(b'"intValue":"1"') == 2  # erasure.part and erasure.parts
        forged = forged.replace(b'"intValue":"1"', huge, 1)
        assert erased_ids(forged) == [full_log.event(2)]
        conn.execute(
            sa.insert(events).values(
                {**row._asdict(), "seq": 16, "event_id": "erasure-copy", "canonical": forged}
            )
        )
        leaf = sha256(b"\x00" + forged).digest()
        conn.execute(
            sa.insert(log_entries).values(
                {**entry._asdict(), "seq": 16, "event_id": "erasure-copy", "leaf_hash": leaf}
            )
        )
        conn.execute(sa.text("UPDATE logs SET size = 17 WHERE log_id = :t"), {"t": full_log.tenant})
        _index(conn, full_log.tenant, forged, 16)
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 16 event erasure-copy: erasure record: attributes "
        "erasure.part and erasure.parts are no part number of a count (forged?)"
    ]


def test_a_whole_erasure_in_parts_and_retention_records_verify(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
    tmp_path: Path,
) -> None:
    """Parts of 1 id, then retention records (no parts, one request alike): all whole."""
    from aiaudit.common import retention

    _erase_in_parts(full_log, privacy_url, *(full_log.event(i) for i in range(4)))
    privacy = open_store(privacy_url)
    try:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        swept = retention.sweep(privacy, 1, later, [full_log.tenant], chunk=5)
    finally:
        privacy.close()
    assert swept == {full_log.tenant: 11}  # records at 19, 20, 21: three of one request
    report = full_log.verify()
    assert report.ok and not report.warnings, report.problems + report.warnings
