"""One leader per job and database, on both stores: taken once, handed over, never shared."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from aiaudit.common import leader
from tests.conftest import Postgres

JOB = "tests.job"


def test_one_holder_at_a_time_and_the_lock_passes_on_release(store_url: str) -> None:
    engines = [sa.create_engine(store_url) for _ in range(2)]
    first, second = (leader.for_engine(e, JOB) for e in engines)
    other_job = leader.for_engine(engines[1], "tests.other")
    try:
        held = first.acquire()
        assert held is not None
        assert first.acquire() is held  # kept while held
        assert second.acquire() is None
        assert other_job.acquire() is not None  # each job has a lock of its own
        first.release()
        assert second.acquire() is not None
        assert first.acquire() is None
    finally:
        for lock in (first, second, other_job):
            lock.release()
        for e in engines:
            e.dispose()


def test_a_lock_whose_session_died_is_not_believed_held(postgres: Postgres) -> None:
    engines = [sa.create_engine(postgres.consumer_url) for _ in range(2)]
    first, second = (leader.for_engine(e, JOB) for e in engines)
    try:
        held = first.acquire()
        assert held is not None
        pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        held.rollback()
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The database restarted or cut the session: the lock went with it.
        assert second.acquire() is not None
        assert first.acquire() is None  # it notices, and asks again like any replica
    finally:
        first.release()
        second.release()
        for e in engines:
            e.dispose()


def test_a_holder_whose_session_died_is_not_the_leader_for_that_round(
    postgres: Postgres,
) -> None:
    """Even with the lock free again: another replica may have led in between, so the
    caller must start over (drop what it knew) before it leads again."""
    engine = sa.create_engine(postgres.consumer_url)
    lock = leader.for_engine(engine, JOB)
    try:
        held = lock.acquire()
        assert held is not None
        pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        held.rollback()
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert lock.acquire() is None
        again = lock.acquire()
        assert again is not None and again is not held
    finally:
        lock.release()
        engine.dispose()


def test_the_server_gives_up_on_a_vanished_leader_within_a_minute(postgres: Postgres) -> None:
    """Keepalives on the lock's session: a leader whose host is gone frees the lock in
    about 40 s (the operating system's default is two hours)."""
    engine = sa.create_engine(postgres.consumer_url)
    lock = leader.for_engine(engine, JOB)
    try:
        held = lock.acquire()
        assert held is not None
        settings = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        shown = [held.exec_driver_sql(f"SHOW {name}").scalar_one() for name in settings]
        assert shown == ["20", "5", "4"]  # seconds
        assert held.exec_driver_sql("SHOW tcp_user_timeout").scalar_one() == "40000"  # ms
    finally:
        lock.release()
        engine.dispose()


def test_the_notary_keeps_the_key_it_always_had() -> None:
    # Every earlier release locked this key: during a rolling upgrade old and new
    # notaries still contend for one lock, and the indexer's is another.
    assert leader.lock_key(leader.NOTARY) == -1632657418656556961
    assert leader.lock_key(leader.INDEXER) != leader.lock_key(leader.NOTARY)
