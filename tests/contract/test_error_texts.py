"""A failed statement's error names the statement, not its parameters.

The parameters of the store's statements are the events' user ids,
addresses and content; an error's text goes to logs (``append not
committed: ...``), which no erasure reaches. SQLAlchemy puts them there by
default (``[parameters: ...]``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aiaudit.common.store.sql import SqlEventStore
from aiaudit.integrity.handlers import read_engine

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
