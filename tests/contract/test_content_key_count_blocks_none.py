"""The rewrap's wait for writers of ``content_keys`` holds no new subject's append.

The final count waited for the writers with ``LOCK TABLE content_keys IN SHARE
MODE``: PostgreSQL queues every later ``RowExclusiveLock`` behind a waiting
request, so while a writer held the table (an erasure deleting keys, a commit
held by a synchronous standby) every append of a new subject stalled under its
logs' head locks, and ingest's writer, whose transaction waits at most 1 s for a
lock (``SET LOCAL lock_timeout``), failed its whole group, every tenant's
batches, with ``LockNotAvailable``. The count now waits for the transactions
that held the table when it began, as ``CREATE INDEX CONCURRENTLY`` does, and
takes no lock. Real OpenBao and PostgreSQL.
"""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from aiaudit.common.keys.rewrap import RewrapReport, rewrap_keys
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from tests.conftest import Postgres
from tests.contract.test_content_kek import openbao  # noqa: F401
from tests.contract.test_content_key_commit_bound import (
    Background,
    blocked_on_content_keys,
    operator,
)
from tests.contract.test_content_key_spares import Services, batch
from tests.contract.test_content_rewrap import readable, sealed_events
from tests.helpers import wait_until
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)

INGEST_LOCK_TIMEOUT = 1.0
"""ingest's writer: ``committer.LOCK_TIMEOUT``, for the whole transaction."""


def test_a_new_subject_appends_while_the_count_waits(
    openbao: Vault,  # noqa: F811
    own_postgres: Postgres,
) -> None:
    """An erasure's transaction holds ``content_keys`` (it deletes keys); a rewrap's count
    waits for it; meanwhile ingest appends a batch of a new subject with its 1 s lock
    timeout: it commits at once, and the count, once the erasure ends, finds nothing
    behind. Until 2026-12-07 the append waited behind the count's lock request and
    failed with ``LockNotAvailable`` (the group's every batch refused)."""
    s = Services(openbao, own_postgres)
    s.rotate()
    texts = sealed_events(s.url, s.kek, ["bob"])  # under version 2
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    dsn = s.admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    erasure = psycopg.connect(dsn)
    engine, kek, waiting = operator(s)
    reads: list[str] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def seen(_c: object, _cur: object, statement: str, *_: object) -> None:
        reads.append(statement)

    try:
        erasure.execute("DELETE FROM content_keys WHERE subject = 'nobody'")  # holds it
        report = RewrapReport()
        rewrapping = Background(lambda: rewrap_keys(engine, kek, report))
        wait_until(lambda: waiting.is_set() or not rewrapping.thread.is_alive())
        # The count waits for the erasure (its lock request queued, on the old code).
        wait_until(lambda: blocked_on_content_keys(s) or any("= ANY" in r for r in reads))
        assert rewrapping.thread.is_alive()
        alice = batch(["alice"], "1")
        (outcome,) = store.append_group([alice], lock_timeout=INGEST_LOCK_TIMEOUT)
        assert isinstance(outcome, list) and len(outcome) == len(alice)
        assert rewrapping.thread.is_alive()  # the erasure still open: no count yet
    finally:
        erasure.rollback()
        erasure.close()
    rewrapping.result()
    engine.dispose()
    store.close()
    assert (report.current, report.behind) == (1, 0)  # bob; alice, after the count began
    assert s.versions() == {"alice": 2, "bob": 2}
    texts |= {e.event.event_id: f"secret of {e.subject}" for e in alice}
    assert readable(s.url, s.kek) == texts
