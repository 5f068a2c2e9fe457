"""Migration alerting_0004: windows saved by the previous engine are as of the alerting cursor."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from aiaudit.alerting.engine import CONSUMER, WINDOWS
from aiaudit.common.store import cursors
from aiaudit.common.store.migrate import migrate


def test_the_windows_cursor_starts_at_the_alerting_cursor(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(cursors.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "alerting_0003")
        cursors.advance(conn, CONSUMER, "t1", 42)
        cursors.advance(conn, "search-indexer", "t2", 7)
    migrate(engine)
    with engine.connect() as conn:
        assert cursors.position(conn, WINDOWS, "t1") == 42
        assert cursors.position(conn, WINDOWS, "t2") == 0  # no alerting cursor: nothing to keep
