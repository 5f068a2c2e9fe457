"""A failed statement's error names the statement, not its parameters.

The parameters of the store's statements are the events' user ids,
addresses and content; an error's text goes to logs (``append not
committed: ...``), which no erasure reaches. SQLAlchemy puts them there by
default (``[parameters: ...]``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore, pg_rows
from aiaudit.integrity.handlers import read_engine
from tests.conftest import Postgres

PERSONAL = "alice@example.com"


def _failure(engine: sa.Engine) -> str:
    with pytest.raises(sa.exc.DBAPIError) as failed, engine.connect() as conn:
        conn.execute(sa.text("SELECT :who FROM no_such_table"), {"who": PERSONAL})
    return str(failed.value)


def test_the_store_engines_keep_parameters_out_of_error_texts(store: SqlEventStore) -> None:
    for engine in (store.engine, read_engine(store)):
        text = _failure(engine)
        assert "no_such_table" in text  # the statement is still named
        assert PERSONAL not in text


def test_a_failed_hot_read_keeps_its_parameters_out_too(postgres: Postgres, tenant: str) -> None:
    """The stored-event reads skip SQLAlchemy (``pg_rows``) and build its error themselves."""
    store = open_store(postgres.app_url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as failed, store.engine.connect() as conn:
            pg_rows(conn, "SELECT %(who)s::text FROM no_such_table", {"who": PERSONAL})
    finally:
        store.close()
    assert "no_such_table" in str(failed.value) and PERSONAL not in str(failed.value)
