"""A key wrapped ahead and committed late is counted by the rewrap, or not stored.

The bound on keys wrapped ahead (``SPARE_SECONDS``) was checked when a key was
taken; its row could commit later (a commit held by a synchronous standby, a slow
fsync) or be inserted later (an insert waiting for a lock), after the rewrap's
final count had said ``behind: 0``: retiring the old version then lost that
subject's content. The count now waits for every transaction writing
``content_keys``, and the store checks the bound again after the insert. Real
OpenBao, real PostgreSQL and SQLite; the services' keyring reads a clock of the
test's, and the service's transaction is held open at a hook in its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common.keys.keyring import SPARE_SECONDS
from aiaudit.common.keys.rewrap import RewrapReport, WritersBusyError, rewrap_keys
from aiaudit.common.keys.transit import TransitKek
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from tests.conftest import Postgres
from tests.contract.test_content_kek import openbao  # noqa: F401
from tests.contract.test_content_key_spares import Services, batch
from tests.contract.test_content_rewrap import readable, rewrap_token, sealed_events
from tests.helpers import wait_until
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)


class Background:
    """``work`` in a thread of its own; :meth:`result` joins it and re-raises its failure."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.value: Any = None
        self.failure: BaseException | None = None

        def run() -> None:
            try:
                self.value = work()
            except BaseException as exc:
                self.failure = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def result(self) -> Any:
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure
        return self.value


def held_at_commit(store: SqlEventStore) -> tuple[threading.Event, threading.Event]:
    """(committing, release): the store's first commit waits, its transaction open, until
    ``release`` (a commit held by a synchronous standby that is down)."""
    committing, release = threading.Event(), threading.Event()

    @sa.event.listens_for(store.engine, "commit")
    def hold(_conn: sa.Connection) -> None:
        if not committing.is_set():
            committing.set()
            assert release.wait(60)

    return committing, release


def operator(s: Services) -> tuple[sa.Engine, TransitKek, threading.Event]:
    """The rewrap's engine and KEK, and an event set when its count starts waiting for
    the writers (the statement that takes the lock is sent)."""
    kek = TransitKek(
        s.vault.client(rewrap_token(s.vault, s.settings)), s.settings.mount, s.settings.key
    )
    engine = sa.create_engine(s.admin_url)
    waiting = threading.Event()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.startswith(("LOCK TABLE", "BEGIN IMMEDIATE")):
            waiting.set()
        elif "FROM pg_locks WHERE virtualtransaction" in statement:
            waiting.set()  # it found a writer, and waits for it (PostgreSQL)

    return engine, kek, waiting


def blocked_on_content_keys(s: Services) -> bool:
    """PostgreSQL: a lock on ``content_keys`` is requested and not granted."""
    dsn = s.admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted "
            "AND relation = 'content_keys'::regclass"
        ).fetchone()
    return bool(row and row[0])


def test_a_key_committed_after_the_count_began_is_counted_behind(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """A spare under version 1 taken and inserted within the bound, its commit held past
    it: the rewrap's count waits for that commit and counts the key behind, so the
    operator runs again before retiring. Until 2026-12-07 the count ran past the open
    transaction, said ``behind: 0``, and the key committed after it: retiring version 1
    lost alice's content."""
    s = Services(openbao, sealed_store)
    s.keys.stock(1)
    s.rotate()
    # Under version 2: the run learns the version and writes nothing (on SQLite a write
    # would wait for the held writer, as the count does).
    texts = sealed_events(s.url, s.kek, ["bob"])
    s.clock.now += SPARE_SECONDS - 1
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    committing, release = held_at_commit(store)
    alice = batch(["alice"], "1")
    appending = Background(lambda: store.append_group([alice]))
    try:
        assert committing.wait(60)
        s.clock.now += 2  # the rewrap starts more than SPARE_SECONDS after the rotation
        engine, kek, waiting = operator(s)
        report = RewrapReport()
        rewrapping = Background(lambda: rewrap_keys(engine, kek, report))
        wait_until(lambda: waiting.is_set() or not rewrapping.thread.is_alive())
    finally:
        release.set()
    appending.result()
    rewrapping.result()
    engine.dispose()
    store.close()
    assert s.versions() == {"alice": 1, "bob": 2}
    assert (report.current, report.behind) == (1, 1)  # alice: committed during the count
    again = s.rewrap_and_retire(2)  # as the run says: again, then retire
    assert (again.rewrapped, again.current, again.behind) == (1, 1, 0)
    texts |= {e.event.event_id: f"secret of {e.subject}" for e in alice}
    assert readable(s.url, s.kek) == texts


def test_a_key_inserted_after_the_count_is_made_again(
    openbao: Vault,  # noqa: F811
    own_postgres: Postgres,
) -> None:
    """A spare under version 1 taken within the bound whose insert waits until after the
    rewrap's count (here held at the hook; in production, say, behind the count's lock):
    the store finds it past the bound once inserted, rolls back and stores a new key,
    under version 2. Until 2026-12-07 it was stored under version 1, which the operator
    had just retired on that run's ``behind: 0``. (On SQLite a writer holds the write
    lock from its BEGIN, before it takes a key: the count's lock follows its commit.)"""
    s = Services(openbao, own_postgres)
    texts = sealed_events(s.url, s.kek, ["bob"])
    s.keys.stock(1)
    s.rotate()
    s.clock.now += SPARE_SECONDS - 1
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    inserting, go = threading.Event(), threading.Event()

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def hold(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO content_keys") and not inserting.is_set():
            inserting.set()  # the key is taken (within the bound), not yet inserted
            assert go.wait(60)

    alice = batch(["alice"], "1")
    appending = Background(lambda: store.append_group([alice]))
    try:
        assert inserting.wait(60)
        s.clock.now += 2
        report = s.rewrap_and_retire(2)
    finally:
        go.set()
    appending.result()
    store.close()
    assert (report.rewrapped, report.behind) == (1, 0)
    assert s.versions() == {"alice": 2, "bob": 2}
    texts |= {e.event.event_id: f"secret of {e.subject}" for e in alice}
    assert readable(s.url, s.kek) == texts


def test_a_writer_held_past_the_timeout_fails_the_run(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """A commit held longer than the count will wait: the run fails, naming the table,
    instead of counting without it (or holding new subjects' inserts behind it)."""
    s = Services(openbao, sealed_store)
    s.rotate()
    sealed_events(s.url, s.kek, ["bob"])  # under version 2: nothing for the run to write
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    committing, release = held_at_commit(store)
    appending = Background(lambda: store.append_group([batch(["alice"], "1")]))
    try:
        assert committing.wait(60)
        engine, kek, _ = operator(s)
        report = RewrapReport()
        with pytest.raises(WritersBusyError, match=r"writing content_keys .* after 0.2 s"):
            rewrap_keys(engine, kek, report, writers_timeout=0.2)
    finally:
        release.set()
    appending.result()
    engine.dispose()
    store.close()
    assert (report.current, report.behind) == (1, 0)
