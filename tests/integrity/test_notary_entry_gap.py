"""Raw-SQL damage that a running notary passed over without a word, SERVING.

Entries commit with their log's head, so the notary never meets a late one: a sequence
missing at its cursor, below the head or before a later entry, is damage. So is a stored
checkpoint past the integrated tree (the notary stores only sizes it integrated). Until
2026-12-07 (review) the notary then integrated or signed nothing more of that log and said
nothing: every later event of the log stayed unsigned, its proofs "not yet checkpointed;
retry" for ever, unnoticed until someone ran verify. Now the log is signed up to the
damage, named once, NOT_SERVING, and goes on once it is repaired; the others are signed.

Each test repairs what it damaged (the session's notaries read every log of the database).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.schema import log_entries
from aiaudit.integrity import storage
from aiaudit.integrity.notary import Notary
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.tables import checkpoints
from tests.helpers import wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append, stepping


class Damaged:
    """A stepped notary over the store, its health, and the raw SQL that damaged it."""

    def __init__(self, notary: Notary, url: str, admin: sa.Engine, tenant: str) -> None:
        self.notary = notary
        self.health: list[bool] = []
        self.admin = admin
        self.tenant = tenant
        self._engine = sa.create_engine(url)
        self.repairs: list[Callable[[sa.Connection], object]] = []

    def step_until(self, done: Callable[[], bool]) -> None:
        wait_until(lambda: self.notary.step() or done())

    def signed(self, log_id: str | None = None) -> int | None:
        with self._engine.connect() as conn:
            return storage.signed_sizes(conn).get(log_id or self.tenant)

    def sizes(self) -> list[int]:
        with self._engine.connect() as conn:
            return [c.tree_size for c in storage.all_checkpoints(conn, self.tenant)]

    def delete_entries(self, seqs: range) -> None:
        """Deletes the log's entries at ``seqs``; ``repair`` puts them back."""
        where = log_entries.c.log_id == self.tenant, log_entries.c.seq.in_(seqs)
        with self.admin.begin() as conn:
            rows = [r._asdict() for r in conn.execute(sa.select(log_entries).where(*where))]
            conn.execute(sa.delete(log_entries).where(*where))
        self.repairs.append(lambda conn: conn.execute(sa.insert(log_entries), rows))

    def add_checkpoint_at(self, size: int) -> None:
        """Copies the log's stored checkpoint under ``size``; ``repair`` deletes the copy."""
        with self.admin.begin() as conn:
            real = conn.execute(sa.select(checkpoints).where(checkpoints.c.log_id == self.tenant))
            conn.execute(
                sa.insert(checkpoints).values(**{**real.one()._asdict(), "tree_size": size})
            )
        where = checkpoints.c.log_id == self.tenant, checkpoints.c.tree_size == size
        self.repairs.append(lambda conn: conn.execute(sa.delete(checkpoints).where(*where)))

    def repair(self) -> None:
        with self.admin.begin() as conn:
            for undo in self.repairs:
                undo(conn)
        self.repairs.clear()

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture
def damaged(notaries: Notaries, admin_url: str, tenant: str, tmp_path: Path) -> Iterator[Damaged]:
    admin = sa.create_engine(admin_url)
    health: list[bool] = []
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    with stepping(notaries.url, keys, tmp_path, health.append) as notary:
        d = Damaged(notary, notaries.url, admin, tenant)
        d.health = health
        try:
            yield d
        finally:
            d.repair()
            d.close()
            admin.dispose()


def named(caplog: pytest.LogCaptureFixture, tenant: str) -> list[str]:
    """The notary's errors about ``tenant`` (other tests' logs share the database)."""
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"log {tenant} ")]


def test_an_entry_missing_at_the_cursor_stops_its_log_there_and_is_named(
    store: SqlEventStore, damaged: Damaged, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    other = f"{tenant}-other"
    append(store, tenant, 3)
    damaged.step_until(lambda: damaged.signed() == 3)
    append(store, tenant, 2)  # sequences 3 and 4
    damaged.delete_entries(range(3, 4))
    append(store, tenant, 2)
    append(store, other, 2)
    damaged.step_until(lambda: damaged.signed(other) == 2 and damaged.health[-1] is False)
    assert damaged.signed() == 3
    assert named(caplog, tenant) == [
        f"log {tenant} not integrated nor signed past its 3 leaves: it has no entry at "
        "sequence 3 but has one at 4 (deleted by raw SQL?); run aiaudit verify"
    ]
    damaged.repair()  # put back: the log goes on
    damaged.step_until(lambda: damaged.signed() == 7)
    assert len(named(caplog, tenant)) == 1  # named once


def test_the_newest_entries_deleted_before_they_were_integrated_are_named(
    store: SqlEventStore, damaged: Damaged, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No later entry to show the gap: the log's head, read before the entries, does."""
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    append(store, tenant, 3)
    damaged.step_until(lambda: damaged.signed() == 3)
    append(store, tenant, 2)  # sequences 3 and 4, the head 5
    damaged.delete_entries(range(3, 5))
    damaged.step_until(lambda: bool(named(caplog, tenant)) and damaged.health[-1] is False)
    assert damaged.signed() == 3
    assert named(caplog, tenant) == [
        f"log {tenant} not integrated nor signed past its 3 leaves: it has no entry at "
        "sequence 3 but its head is 5 (deleted by raw SQL?); run aiaudit verify"
    ]


def test_a_stored_checkpoint_past_the_tree_is_named_not_passed_over(
    store: SqlEventStore, damaged: Damaged, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy of the log's real checkpoint row under size 1000: a running notary passed the
    log over, its new events unsigned (a restarted one named it)."""
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    append(store, tenant, 3)
    damaged.step_until(lambda: damaged.sizes() == [3])
    damaged.add_checkpoint_at(1000)
    append(store, tenant, 4)
    damaged.step_until(lambda: bool(named(caplog, tenant)) and damaged.health[-1] is False)
    assert damaged.sizes() == [3, 1000]
    assert named(caplog, tenant) == [
        f"log {tenant} not integrated nor signed: its 7 leaves do not extend its checkpoint "
        "of 1000 (no consistency proof from size 1000 to size 7); run aiaudit verify"
    ]
    damaged.repair()  # the held log is loaded again each pass: it goes on
    damaged.step_until(lambda: damaged.sizes() == [3, 7])
