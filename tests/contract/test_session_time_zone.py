"""The store's PostgreSQL sessions run in UTC whatever the server's or database's default zone.

Times then come back as ``datetime.UTC`` datetimes: under a named zone
psycopg built (and consumers hashed) every timestamp through ``zoneinfo``,
which took about half of the CPU a consumer spent reading a batch of the log.
Options given in the URL are kept.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from tests.conftest import Postgres
from tests.helpers import interaction


def test_sessions_are_in_utc_under_a_database_default_of_another_zone(
    own_postgres: Postgres,
) -> None:
    db = own_postgres.admin_dsn.rsplit("/", 1)[1]
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {db} SET timezone = 'America/New_York'")
    store = open_store(own_postgres.app_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW timezone")).scalar() == "UTC"
        received = dt.datetime(2026, 7, 1, 12, 30, tzinfo=dt.UTC)
        store.append_group([[prepare(interaction("t-zone", "e-zone"), received)]])
        (entry,) = store.read_log("t-zone", 0, 10)
        assert entry.receive_time == received
        assert entry.receive_time.tzinfo is dt.UTC
    finally:
        store.close()


def test_options_in_the_url_are_kept(own_postgres: Postgres) -> None:
    store = open_store(own_postgres.app_url + "?options=-c%20statement_timeout%3D4321")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "4321ms"
            assert conn.execute(sa.text("SHOW timezone")).scalar() == "UTC"
    finally:
        store.close()
