"""An entry deleted by raw SQL before the notary integrated it, with later entries stored.

Entries commit with their log's head, so the notary never meets a late one: a sequence
missing at its cursor while later ones are there is damage. It integrated nothing more of
that log, said nothing and reported SERVING (review, 2026-12-07): every later event of the
log stayed unsigned, its proofs "not yet checkpointed; retry" for ever, unnoticed until
someone ran verify. Now the log is signed up to the gap, named once, NOT_SERVING, and goes
on once the entry is back; the other logs are signed meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.schema import log_entries
from aiaudit.integrity import storage
from aiaudit.integrity.signers import FileKeys
from tests.helpers import wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append, stepping


def test_an_entry_missing_at_the_cursor_stops_its_log_there_and_is_named(
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    other = f"{tenant}-other"
    append(store, tenant, 3)
    engine = sa.create_engine(notaries.url)
    admin = sa.create_engine(admin_url)
    health: list[bool] = []

    def signed() -> dict[str, int]:
        with engine.connect() as conn:
            return storage.signed_sizes(conn)

    def step_until(done: object) -> None:
        wait_until(lambda: notary.step() or done())  # type: ignore[operator]

    try:
        with stepping(notaries.url, keys, tmp_path, health.append) as notary:
            step_until(lambda: signed().get(tenant) == 3)
            append(store, tenant, 2)  # sequences 3 and 4
            third = log_entries.c.log_id == tenant, log_entries.c.seq == 3
            with admin.begin() as conn:
                deleted = conn.execute(sa.select(log_entries).where(*third)).one()
                conn.execute(sa.delete(log_entries).where(*third))
            append(store, tenant, 2)
            append(store, other, 2)
            step_until(lambda: signed().get(other) == 2 and health[-1] is False)
            assert signed()[tenant] == 3
            assert [r.getMessage() for r in caplog.records] == [
                f"log {tenant} not integrated nor signed past its 3 leaves: it has no entry at "
                "sequence 3 but has one at 4 (deleted by raw SQL?); run aiaudit verify"
            ]
            with admin.begin() as conn:  # put back: the log goes on
                conn.execute(sa.insert(log_entries).values(**deleted._mapping))
            step_until(lambda: signed()[tenant] == 7 and health[-1] is True)
            assert len(caplog.records) == 1  # named once
    finally:
        engine.dispose()
        admin.dispose()


def test_the_newest_entries_deleted_before_they_were_integrated_are_named(
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No later entry to show the gap: the log's head, read before the entries, does."""
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    append(store, tenant, 3)
    engine = sa.create_engine(notaries.url)
    admin = sa.create_engine(admin_url)
    health: list[bool] = []

    def signed() -> int | None:
        with engine.connect() as conn:
            return storage.signed_sizes(conn).get(tenant)

    try:
        with stepping(notaries.url, keys, tmp_path, health.append) as notary:
            wait_until(lambda: notary.step() or signed() == 3)
            append(store, tenant, 2)  # sequences 3 and 4, the head 5
            with admin.begin() as conn:
                conn.execute(
                    sa.delete(log_entries).where(
                        log_entries.c.log_id == tenant, log_entries.c.seq >= 3
                    )
                )
            wait_until(lambda: notary.step() or bool(caplog.records))
            wait_until(lambda: notary.step() or health[-1] is False)
            assert signed() == 3
            assert [r.getMessage() for r in caplog.records] == [
                f"log {tenant} not integrated nor signed past its 3 leaves: it has no entry at "
                "sequence 3 but its head is 5 (deleted by raw SQL?); run aiaudit verify"
            ]
    finally:
        engine.dispose()
        admin.dispose()
