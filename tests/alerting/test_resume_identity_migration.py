"""Migration alerting_0005: the store's id and the writer epochs that resume tokens name.

The changes made before it belong to the epoch ``''``, whose row holds the head the
migration found: a token the new code gives for those positions resumes. On PostgreSQL
the alerting role reads the store's id and moves its own epochs, and nothing more.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.service import (
    AlertingService,
    Changes,
    OutOfRangeError,
    ResumePoint,
    ResumeTokenError,
)
from aiaudit.alerting.store import AlertStore, Position
from aiaudit.alerting.tables import epochs, heads
from aiaudit.alerting.tables import store as store_t
from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.migrate import migrate
from tests.alerting.conftest import bare_alert, login
from tests.conftest import Postgres


def test_changes_made_before_it_resume_and_later_ones_take_an_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(cursors.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "alerting_0004")
        conn.execute(sa.text("INSERT INTO alerting_heads (tenant, change_seq) VALUES ('t1', 7)"))
    old = AlertStore(engine)
    with engine.begin() as conn:
        old.insert_alert(conn, bare_alert("t1", change_seq=7))
    migrate(engine)
    with engine.connect() as conn:
        (store_id,) = conn.execute(sa.select(store_t.c.store_id)).scalars().all()
        assert len(store_id) == 32
        assert conn.execute(sa.select(epochs)).all() == [("t1", "", 7)]
    migrate(engine)  # again: nothing changes
    with engine.connect() as conn:
        assert conn.execute(sa.select(store_t.c.store_id)).scalars().all() == [store_id]
        assert conn.execute(sa.select(sa.func.count()).select_from(epochs)).scalar() == 1
    events = open_store(url)
    try:
        alerts = AlertStore(engine)
        service = AlertingService(events, alerts, RuleBook(alerts), Changes())
        with engine.connect() as conn:
            here = alerts.position(conn, "t1")
        assert here == Position(store_id, 7, "")
        service.subscribe("t1", ResumePoint(3, here))  # as ListAlerts gives it now
        with alerts.write() as conn, conn.begin():
            seq = alerts.lock_head(conn, "t1") + 1
            alerts.set_head(conn, "t1", seq)
        with engine.connect() as conn:
            later = alerts.position(conn, "t1")
            assert later.head == 8 and later.epoch not in ("", here.epoch)
            assert conn.execute(sa.select(heads.c.epoch)).scalar() == later.epoch
        service.subscribe("t1", ResumePoint(8, later))
        service.subscribe("t1", ResumePoint(7, here))  # still held: this store wrote them
        with pytest.raises(ResumeTokenError) as other:
            service.subscribe("t1", ResumePoint(7, Position("f" * 32, 7, "")))
        assert other.value.reason == "RESUME_TOKEN_OTHER_STORE"
        with pytest.raises(ResumeTokenError) as forked:  # an epoch that never got to 8
            service.subscribe("t1", ResumePoint(8, Position(store_id, 8, "")))
        assert forked.value.reason == "RESUME_TOKEN_OTHER_HISTORY"
        with pytest.raises(OutOfRangeError):
            service.subscribe("t1", ResumePoint(9, Position(store_id, 9, later.epoch)))
    finally:
        events.close()
        engine.dispose()


def test_the_alerting_role_reads_the_store_id_and_moves_only_its_epochs(
    postgres: Postgres, tenant: str
) -> None:
    engine = sa.create_engine(login(postgres, "aiaudit_alerting"))
    try:
        alerts = AlertStore(engine)
        with alerts.write() as conn, conn.begin():
            seq = alerts.lock_head(conn, tenant) + 1
            alerts.set_head(conn, tenant, seq)  # inserts its epoch, then moves it
        with alerts.write() as conn, conn.begin():
            alerts.set_head(conn, tenant, alerts.lock_head(conn, tenant) + 1)
        with engine.connect() as conn:
            assert alerts.position(conn, tenant).head == 2
            assert alerts.holds(conn, tenant, alerts.position(conn, tenant).epoch, 2)
        for refused in (
            sa.update(store_t).values(store_id="f" * 32),
            sa.insert(store_t).values(store_id="f" * 32),
            sa.delete(store_t),
            sa.update(epochs).where(epochs.c.tenant == tenant).values(epoch="x"),
            sa.update(epochs).where(epochs.c.tenant == tenant).values(tenant="x"),
            sa.delete(epochs).where(epochs.c.tenant == tenant),
        ):
            with (
                pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                engine.begin() as conn,
            ):
                conn.execute(refused)
    finally:
        engine.dispose()


def test_a_writer_keeps_its_epoch_only_while_the_store_holds_what_it_wrote(
    store_url: str, tenant: str, request: pytest.FixtureRequest
) -> None:
    """A store whose epoch row is behind the writer (restored from a backup) starts another:
    the old epoch is never moved past what the restored store holds."""
    if store_url.startswith("sqlite"):
        engine = sa.create_engine(store_url)
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        engine = sa.create_engine(pg.admin_url)
    try:
        alerts = AlertStore(engine)
        for _ in range(3):
            with alerts.write() as conn, conn.begin():
                alerts.set_head(conn, tenant, alerts.lock_head(conn, tenant) + 1)
        with engine.connect() as conn:
            first = alerts.position(conn, tenant)
        with engine.begin() as conn:  # restored to after the first change
            conn.execute(sa.update(heads).where(heads.c.tenant == tenant).values(change_seq=1))
            conn.execute(sa.update(epochs).where(epochs.c.tenant == tenant).values(last_seq=1))
        for _ in range(3):
            with alerts.write() as conn, conn.begin():
                alerts.set_head(conn, tenant, alerts.lock_head(conn, tenant) + 1)
        with engine.connect() as conn:
            now = alerts.position(conn, tenant)
            assert now.head == 4 and now.epoch != first.epoch
            assert not alerts.holds(conn, tenant, first.epoch, 3)
            assert alerts.holds(conn, tenant, first.epoch, 1)
            assert alerts.holds(conn, tenant, now.epoch, 4)
    finally:
        engine.dispose()
