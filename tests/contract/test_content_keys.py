"""Envelope encryption on every store: content sealed at rest under per-subject data keys.

Each test writes through a store holding a keyring (a file KEK in ``tmp_path``)
and looks at the rows with raw SQL, or reads them back through a store with
another keyring, none, or the same KEK in a second "process" (a second store
object with a cache of its own).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aiaudit.common.erasure import erase
from aiaudit.common.keys import seal
from aiaudit.common.keys.kek import FileKek, KekError
from aiaudit.common.keys.keyring import DamagedKeyError, Keyring
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.schema import content_keys, event_content
from aiaudit.common.store.sql import Conflict
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.integrity.verify import verify_store
from tests.conftest import Postgres
from tests.helpers import interaction


def keyed(url: str, kek_file: Path) -> SqlEventStore:
    return open_store(url, keys=Keyring(FileKek(kek_file)))


def append(store: SqlEventStore, *events: ev.Event) -> None:
    (outcome,) = store.append_group([prepare_batch(list(events), dt.datetime.now(dt.UTC))])
    assert not isinstance(outcome, Conflict)


def raw_content(url: str, tenant: str) -> list[tuple[bytes, bytes]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(event_content.c.salt, event_content.c.content)
            .where(event_content.c.log_id == tenant)
            .order_by(event_content.c.seq)
        ).all()
    engine.dispose()
    return [(bytes(s), bytes(c)) for s, c in rows]


def key_rows(url: str, tenant: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(content_keys.c.subject, content_keys.c.key_id).where(
                content_keys.c.log_id == tenant
            )
        ).all()
    engine.dispose()
    return {str(s): int(k) for s, k in rows}


def move_content(url: str, tenant: str, source: int, target: int) -> None:
    """Copies one event's sealed content row onto another, as someone with database access could."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        (moved,) = conn.execute(
            sa.select(event_content.c.content).where(
                event_content.c.log_id == tenant, event_content.c.seq == source
            )
        ).one()
        conn.execute(
            sa.update(event_content)
            .where(event_content.c.log_id == tenant, event_content.c.seq == target)
            .values(content=moved)
        )
    engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store_url(sealed_store: Postgres | str) -> str:
    return sealed_store if isinstance(sealed_store, str) else sealed_store.app_url


@pytest.fixture
def privacy_url(sealed_store: Postgres | str) -> str:
    return sealed_store if isinstance(sealed_store, str) else sealed_store.privacy_url


@pytest.fixture
def admin_url(sealed_store: Postgres | str) -> str:
    return sealed_store if isinstance(sealed_store, str) else sealed_store.admin_url


def test_content_is_sealed_at_rest_and_reads_back(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    store = keyed(store_url, tmp_path / "kek")
    append(
        store,
        interaction(tenant, "a-1", text="alice's card 4111 1111", user="alice"),
        interaction(tenant, "a-2", text="alice again", user="alice"),
        interaction(tenant, "b-1", text="bob's note", user="bob"),
    )
    rows = raw_content(store_url, tenant)
    assert len(rows) == 3
    for salt, content in rows:
        assert salt == b"", "the salt is sealed with the content, not kept beside it"
        assert content[0] == seal.XAES_256_GCM
        assert b"4111" not in content and b"alice" not in content and b"bob" not in content
    assert set(key_rows(store_url, tenant)) == {"alice", "bob"}, "one data key per subject"
    again = keyed(store_url, tmp_path / "kek")  # another process: nothing cached
    found = {s.event_id: s for s in again.read_log(tenant, 0, 10)}
    assert found["a-1"].to_event().input.messages[0].parts[0].text == "alice's card 4111 1111"
    assert found["b-1"].to_event().input.messages[0].parts[0].text == "bob's note"
    assert found["a-1"].salt is not None and len(found["a-1"].salt) == 32
    store.close()
    again.close()


def test_a_group_over_many_logs_and_subjects_gets_one_key_each(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """Keys of a group are read and made together (the multi-statement path: >= 32 rows)."""
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(f"{tenant}-0", "old", user="u0"))  # one key exists already
    existing = key_rows(store_url, f"{tenant}-0")["u0"]
    store.close()
    store = keyed(store_url, tmp_path / "kek")  # nothing cached: the group must find it
    logs = [f"{tenant}-{i}" for i in range(20)]
    events = [
        interaction(log, f"e-{n}", text=f"{log} {user}", user=user)
        for n, (log, user) in enumerate((log, f"u{j}") for log in logs for j in range(2))
    ]
    (outcome,) = store.append_group([prepare_batch(events, dt.datetime.now(dt.UTC))])
    assert not isinstance(outcome, Conflict) and len(outcome) == 40
    assert key_rows(store_url, f"{tenant}-0")["u0"] == existing
    reader = keyed(store_url, tmp_path / "kek")
    for log in logs:
        assert set(key_rows(store_url, log)) == {"u0", "u1"}
        texts = {
            s.to_event().actor.user_id: s.to_event().input.messages[0].parts[0].text
            for s in reader.read_log(log, 0, 10)
            if s.event_id != "old"
        }
        assert texts == {"u0": f"{log} u0", "u1": f"{log} u1"}
    store.close()
    reader.close()


def test_a_key_made_in_an_attempt_that_rolled_back_is_never_used(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """A retried event beside a new subject's first: the optimistic attempt makes bob's key,
    fails on the taken id and rolls back; the retry must make the key again, not seal bob's
    events under the one that was never stored (found by a review: they read as erased)."""
    store = keyed(store_url, tmp_path / "kek")
    first = interaction(tenant, "dup-1", user="alice")
    append(store, first)
    now = dt.datetime.now(dt.UTC)
    bob = interaction(tenant, "bob-1", text="bob's secret", user="bob")
    (dup,), (new,) = store.append_group([prepare_batch([first], now), prepare_batch([bob], now)])
    assert dup.duplicate and not new.duplicate
    append(store, interaction(tenant, "bob-2", text="bob again", user="bob"))
    reader = keyed(store_url, tmp_path / "kek")  # another process
    for event_id in ("bob-1", "bob-2"):
        found = reader.get_event(tenant, event_id)
        assert found is not None and found.content is not None, event_id
    store.close()
    reader.close()


@pytest.mark.parametrize("damage", ["flipped byte", "a short key"])
def test_a_damaged_data_key_is_damage_of_its_subject_alone(
    store_url: str, admin_url: str, tmp_path: Path, tenant: str, damage: str
) -> None:
    """One key row altered: its subject's events read as damage (not a KEK outage, which
    stopped every tenant: found by two reviews), verify names them and checks the rest,
    and a group commit writes the other tenants' batches."""
    kek = tmp_path / "kek"
    store = keyed(store_url, kek)
    other = f"{tenant}-z"
    for log in (tenant, other):
        append(store, *(interaction(log, f"{log}-{i}", user="alice") for i in range(3)))
    store.close()
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        wrapped = bytes(
            conn.execute(
                sa.select(content_keys.c.wrapped).where(content_keys.c.log_id == tenant)
            ).scalar_one()
        )
        change: dict[str, object] = {
            "flipped byte": {"wrapped": wrapped[:-1] + bytes([wrapped[-1] ^ 1])},
            "a short key": {"wrapped": FileKek(kek).wrap([b"k" * 20])[0]},
        }[damage]
        conn.execute(
            sa.update(content_keys).where(content_keys.c.log_id == tenant).values(**change)
        )
    _damage_of_its_subject_alone(store_url, engine, kek, tenant, other)


def test_a_data_key_stored_as_text_is_damage_of_its_subject_alone(
    tmp_path: Path, tenant: str
) -> None:
    """SQLite keeps any type in any column: a wrapped key rewritten as text by raw SQL made
    every read of its subject's content, and every append for the subject, fail with
    OperationalError (it is no UTF-8): to search a store outage, "retry", for good, with
    the key's bytes quoted in the error. It is a key that does not open, as any altered."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    open_store(url, run_migrations=True).close()
    kek = tmp_path / "kek"
    store = keyed(url, kek)
    other = f"{tenant}-z"
    for log in (tenant, other):
        append(store, *(interaction(log, f"{log}-{i}", user="alice") for i in range(3)))
    store.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE content_keys SET wrapped = CAST(wrapped AS TEXT) WHERE log_id = :t"),
            {"t": tenant},
        )
    _damage_of_its_subject_alone(url, engine, kek, tenant, other)


def test_a_key_row_naming_another_kek_is_still_opened_by_its_own(
    store_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    """The ``kek`` column only says which KEK to expect: a row renamed (one text column
    changed) stopped every tenant as a KEK outage (found by a review); it opens."""
    kek = tmp_path / "kek"
    store = keyed(store_url, kek)
    append(store, interaction(tenant, "e-0", text="still here", user="alice"))
    store.close()
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(content_keys)
            .where(content_keys.c.log_id == tenant)
            .values(kek="file:0000000000000000")
        )
    engine.dispose()
    reader = keyed(store_url, kek)
    (found,) = reader.read_log(tenant, 0, 10)
    assert found.to_event().input.messages[0].parts[0].text == "still here"
    reader.close()


def test_retry_is_recognised_and_a_changed_retry_refused_through_sealed_content(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    store = keyed(store_url, tmp_path / "kek")
    first = interaction(tenant, "a-1", text="original", user="alice")
    append(store, first)
    fresh = keyed(store_url, tmp_path / "kek")  # compares against the stored, sealed row
    (same,) = fresh.append_group([prepare_batch([first], dt.datetime.now(dt.UTC))])
    assert not isinstance(same, Conflict) and same[0].duplicate and same[0].sequence == 0
    changed = interaction(tenant, "a-1", text="altered", user="alice")
    (refused,) = fresh.append_group([prepare_batch([changed], dt.datetime.now(dt.UTC))])
    assert isinstance(refused, Conflict)
    assert len(raw_content(store_url, tenant)) == 1
    store.close()
    fresh.close()


def test_erasing_a_subject_destroys_its_key_and_later_writes_get_a_new_one(
    store_url: str, privacy_url: str, tmp_path: Path, tenant: str
) -> None:
    """A writer that cached alice's key before the erasure must not seal with it after."""
    writer = keyed(store_url, tmp_path / "kek")
    append(writer, interaction(tenant, "a-1", user="alice"), interaction(tenant, "b-1", user="bob"))
    old = key_rows(store_url, tenant)
    eraser = keyed(privacy_url, tmp_path / "kek")
    done = erase(eraser, tenant, "gdpr", "officer", subject_id="alice")
    assert done.erased == ["a-1"]
    keys = key_rows(store_url, tenant)
    assert "alice" not in keys and keys["bob"] == old["bob"]
    # The writer's cache still holds alice's old key: one event alone takes the
    # one-statement path on PostgreSQL, which must notice the key epoch moved.
    append(writer, interaction(tenant, "a-2", text="after the erasure", user="alice"))
    new = key_rows(store_url, tenant)
    assert new["alice"] != old["alice"]
    reader = keyed(store_url, tmp_path / "kek")
    found = {s.event_id: s for s in reader.read_log(tenant, 0, 10)}
    assert found["a-1"].content is None, "erased"
    assert found["a-2"].to_event().input.messages[0].parts[0].text == "after the erasure"
    assert found["b-1"].content is not None
    for each in (writer, eraser, reader):
        each.close()


def test_a_sealed_row_moved_onto_another_event_does_not_open(
    store_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "a-1", text="one", user="alice"))
    append(store, interaction(tenant, "a-2", text="two", user="alice"))
    move_content(admin_url, tenant, 0, 1)
    reader = keyed(store_url, tmp_path / "kek")
    with pytest.raises(SealError, match="'a-2'"):
        reader.read_log(tenant, 0, 10)
    store.close()
    reader.close()


def test_sealed_content_needs_the_same_kek(store_url: str, tmp_path: Path, tenant: str) -> None:
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "a-1", user="alice"))
    other = keyed(store_url, tmp_path / "other-kek")
    with pytest.raises(KekError, match="wrapped by KEK file:"):
        other.read_log(tenant, 0, 10)
    bare = open_store(store_url, keys=None)
    with pytest.raises(KekError, match="no KEK configured"):
        bare.read_log(tenant, 0, 10)
    for each in (store, other, bare):
        each.close()


def test_rows_in_clear_still_read_beside_sealed_ones(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """Content written before encryption was configured stays readable."""
    bare = open_store(store_url, keys=None)
    append(bare, interaction(tenant, "old", text="from before", user="alice"))
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "new", text="from after", user="alice"))
    (clear, _), (_, sealed) = raw_content(store_url, tenant)
    assert len(clear) == 32 and sealed[0] == seal.XAES_256_GCM
    found = {s.event_id: s.to_event() for s in store.read_log(tenant, 0, 10)}
    assert found["old"].input.messages[0].parts[0].text == "from before"
    assert found["new"].input.messages[0].parts[0].text == "from after"
    bare.close()
    store.close()


def test_rows_sealed_in_the_first_format_still_read(
    store_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    """Rows written under AES-256-GCM with 12-byte nonces (format 0x01, before
    XAES-256-GCM) open, and are still bound to their event."""
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "a-1", text="from before", user="alice"))
    append(store, interaction(tenant, "a-2", text="two", user="alice"))
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        (wrapped,) = conn.execute(
            sa.select(content_keys.c.wrapped).where(content_keys.c.log_id == tenant)
        ).one()
        (key,) = FileKek(tmp_path / "kek").unwrap([bytes(wrapped)])
        assert key is not None
        for seq, event_id in enumerate(["a-1", "a-2"]):
            row = event_content.c.log_id == tenant, event_content.c.seq == seq
            (sealed,) = conn.execute(sa.select(event_content.c.content).where(*row)).one()
            salt, content = seal.open_sealed(seal.DataKey(key), tenant, event_id, bytes(sealed))
            # The first format, written from its description: 0x01 || key id || nonce || AES-GCM.
            kid, nonce = bytes(sealed[1:9]), os.urandom(12)
            aad = b"aiaudit content v1\x00" + tenant.encode() + b"\x00" + event_id.encode() + kid
            old = b"\x01" + kid + nonce + AESGCM(key).encrypt(nonce, salt + content, aad)
            conn.execute(sa.update(event_content).where(*row).values(content=old))
    reader = keyed(store_url, tmp_path / "kek")
    (first, second) = reader.read_log(tenant, 0, 10)
    assert first.to_event().input.messages[0].parts[0].text == "from before"
    assert second.to_event().input.messages[0].parts[0].text == "two"
    report = verify_store(
        engine, [], "x", log_ids=[tenant], content_keys=Keyring(FileKek(tmp_path / "kek"))
    )
    assert [p for p in report.problems if p.event_id] == []
    engine.dispose()
    move_content(admin_url, tenant, 0, 1)  # a first-format row moved onto another event fails
    with pytest.raises(SealError, match="'a-2'"):
        keyed(store_url, tmp_path / "kek").read_log(tenant, 0, 10)
    store.close()
    reader.close()


class InterruptingKek:
    """A file KEK whose first unwrap waits for another writer's append to the same log.

    Were the unwrap made under that log's head lock, the append would wait for
    the lock, held by the very append that is unwrapping.
    """

    def __init__(self, path: Path, interruption: Callable[[], None], down: bool = False) -> None:
        """``down``: every unwrap then fails, as with Vault out of reach."""
        self._kek = FileKek(path)
        self.name = self._kek.name
        self._interruption: Callable[[], None] | None = interruption
        self._down = down
        self.unwraps = 0

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        return self._kek.wrap(keys)

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        self.unwraps += 1
        if self._interruption is not None:
            interruption, self._interruption = self._interruption, None
            pool = ThreadPoolExecutor(1)
            try:
                pool.submit(interruption).result(timeout=20)
            finally:
                pool.shutdown(wait=False)  # were it waiting for the lock, it would not return
        if self._down:
            raise KekError("Vault at 127.0.0.1:1 did not answer")
        return self._kek.unwrap(wrapped)


def test_a_stored_key_is_unwrapped_before_the_log_is_locked(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """A restarted writer unwraps its subjects' keys (through Vault, in production)
    holding no lock, so a slow KEK never holds the log's other appends."""
    kek = tmp_path / "kek"
    writer = keyed(store_url, kek)
    append(writer, interaction(tenant, "w-1", user="alice"))
    slow = InterruptingKek(kek, lambda: append(writer, interaction(tenant, "w-2", user="alice")))
    restarted = open_store(store_url, keys=Keyring(slow))
    append(restarted, interaction(tenant, "r-1", user="alice"))
    assert slow.unwraps == 1, "the key opened before the lock is the one used under it"
    events = [s.event_id for s in restarted.read_log(tenant, 0, 10)]
    assert events == ["w-1", "w-2", "r-1"]
    writer.close()
    restarted.close()


def test_the_log_read_without_content_needs_no_key(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """Canonical forms and leaves are not sealed: reading only them needs no KEK."""
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "a-1", text="one", user="alice"))
    bare = open_store(store_url, keys=None)
    with pytest.raises(KekError, match="no KEK configured"):
        bare.read_log(tenant, 0, 10)
    (read,) = bare.read_log(tenant, 0, 10, content=False)
    assert (read.event_id, read.salt, read.content) == ("a-1", None, None)
    assert read.to_event().actor.user_id == "alice" and read.leaf_hash
    bare.close()
    store.close()


def test_a_kek_out_of_reach_fails_the_append_before_the_log_is_locked(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """The failed unwrap is not tried again under the lock (for Vault's timeout once more)."""
    kek = tmp_path / "kek"
    writer = keyed(store_url, kek)
    append(writer, interaction(tenant, "w-1", user="alice"))
    down = InterruptingKek(
        kek, lambda: append(writer, interaction(tenant, "w-2", user="alice")), down=True
    )
    restarted = open_store(store_url, keys=Keyring(down))
    with pytest.raises(KekError, match="did not answer"):
        append(restarted, interaction(tenant, "r-1", user="alice"))
    assert down.unwraps == 1
    assert [s.event_id for s in writer.read_log(tenant, 0, 10)] == ["w-1", "w-2"]
    writer.close()
    restarted.close()


def test_a_held_key_whose_stored_row_was_altered_seals_nothing_more(
    store_url: str, privacy_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    """Once the writer reads the row again (an erasure moved the log's epoch), a key it
    holds serves only the exact row it was opened from: content sealed under a key whose
    row no longer opens would be readable by this process alone."""
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(tenant, "a-1", user="alice"), interaction(tenant, "b-1", user="bob"))
    eraser = keyed(privacy_url, tmp_path / "kek")
    erase(eraser, tenant, "gdpr", "dpo", subject_id="bob")
    eraser.close()
    engine = sa.create_engine(admin_url)
    alice = (content_keys.c.log_id == tenant, content_keys.c.subject == "alice")
    with engine.begin() as conn:
        wrapped = bytes(conn.execute(sa.select(content_keys.c.wrapped).where(*alice)).scalar_one())
        altered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
        conn.execute(sa.update(content_keys).where(*alice).values(wrapped=altered))
    engine.dispose()
    with pytest.raises(DamagedKeyError, match="'alice'"):
        append(store, interaction(tenant, "a-2", text="secret", user="alice"))
    assert [s.event_id for s in store.read_log(tenant, 0, 10, content=False)][-1] != "a-2"
    store.close()


def test_a_row_of_another_kek_is_damage_even_when_the_group_holds_good_keys(
    store_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    """One foreign row among keys this process opened is that subject's damage, not an
    outage, so a group commit retries the other batches alone and they are written."""
    store = keyed(store_url, tmp_path / "kek")
    append(store, interaction(f"{tenant}-1", "a-1", user="alice"))
    append(store, interaction(f"{tenant}-2", "b-1", user="bob"))
    foreign = FileKek(tmp_path / "other.kek")
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(content_keys)
            .where(content_keys.c.log_id == f"{tenant}-2")
            .values(kek=foreign.name, wrapped=foreign.wrap([os.urandom(32)])[0])
        )
    engine.dispose()
    restarted = keyed(store_url, tmp_path / "kek")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(DamagedKeyError, match="'bob'"):
        restarted.append_group(
            [
                prepare_batch([interaction(f"{tenant}-1", "a-2", user="alice")], now),
                prepare_batch([interaction(f"{tenant}-2", "b-2", user="bob")], now),
            ]
        )
    store.close()
    restarted.close()


def test_an_event_without_content_needs_no_data_key(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """Its content row (``{}``, as an access record's) holds nothing to seal."""
    store = keyed(store_url, tmp_path / "kek")
    bare = interaction(tenant, "n-1", user="auditor")
    bare.ClearField("input")
    bare.ClearField("output")
    append(store, bare)
    ((salt, content),) = raw_content(store_url, tenant)
    assert content == b"{}" and len(salt) == 32
    assert key_rows(store_url, tenant) == {}, "no key made for a subject with nothing sealed"
    assert open_store(store_url, keys=None).read_log(tenant, 0, 1)[0].event_id == "n-1"
    append(store, interaction(tenant, "a-1", user="auditor"))
    assert set(key_rows(store_url, tenant)) == {"auditor"}
    store.close()


def _damage_of_its_subject_alone(
    url: str, engine: sa.Engine, kek: Path, tenant: str, other: str
) -> None:
    """``tenant``'s data key does not open: its events read and verify as damage, and a group
    commit refuses its batch while it writes ``other``'s (three events in each log before)."""
    reader = keyed(url, kek)
    with pytest.raises(DamagedKeyError, match="does not open"):
        reader.read_log(tenant, 0, 10)
    with pytest.raises(DamagedKeyError, match="does not open"):
        reader.get_event(tenant, f"{tenant}-1")
    assert all(s.content is not None for s in reader.read_log(other, 0, 10))
    report = verify_store(
        engine, [], "x", log_ids=[tenant, other], content_keys=Keyring(FileKek(kek))
    )
    damaged = {p.event_id for p in report.problems if "does not open: altered" in p.what}
    assert damaged == {f"{tenant}-{i}" for i in range(3)}
    assert not any(p.event_id and p.event_id.startswith(other) for p in report.problems)
    committer = GroupCommitter(keyed(url, kek))
    now = dt.datetime.now(dt.UTC)
    refused = committer.submit(prepare_batch([interaction(tenant, "a-new", user="alice")], now))
    written = committer.submit(prepare_batch([interaction(other, "z-new", user="alice")], now))
    with pytest.raises(DamagedKeyError):
        refused.result(timeout=30)
    assert (
        not isinstance(outcome := written.result(timeout=30), Conflict) and outcome[0].sequence == 3
    )
    committer.close()
    reader.close()
    engine.dispose()
