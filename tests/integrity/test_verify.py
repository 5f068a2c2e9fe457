"""Tamper tests: raw SQL as the database owner; ``verify`` must catch each and name the event.

Runs on SQLite and PostgreSQL. Each test builds a log of 15 events with
checkpoints at 12 and 15 (signed by a notary that then stops), checks that
the untouched store verifies, tampers, and checks what ``verify`` reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aiaudit.cli.main import main
from aiaudit.common.keys import seal
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import SqlEventStore, cursors, embedded_keys, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.schema import TS, event_content, events, log_entries
from aiaudit.common.store.sql import Receipt, data_keys
from aiaudit.integrity import checks, note, storage, verify
from aiaudit.integrity.merkle import CompactRange
from aiaudit.integrity.note import VerifierKey
from aiaudit.integrity.signers import ActiveKey, FileKeys, SignerUnavailableError
from aiaudit.integrity.tables import nodes
from aiaudit.integrity.verify import MODES, Report, verify_store
from aiaudit.search.backends.opensearch import (
    BUILDING,
    ERASURES,
    HELD,
    MENDED,
    building_cursor_name,
    erasures_cursor_name,
    held_cursor_name,
    mended_cursor_name,
)
from aiaudit.search.settings import SearchSettings
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import (
    ORIGIN_PREFIX,
    Notaries,
    append,
    exported_files,
    login,
    stepping,
)
from tests.integrity.test_notary import all_checkpoints, check_history, covers


def _recorded(conn: sa.Connection, log_id: str, event_id: str, after: int) -> bool:
    """Whether ``VerifyEvent`` finds an intact erasure record after ``after`` naming the event."""
    named, _ = checks.erasure_problems(storage.erasure_records(conn, log_id, after), event_id)
    return named


@dataclass
class Log:
    tenant: str
    receipts: list[Receipt]
    keys: FileKeys
    admin: sa.Engine
    checkpoint_dir: Path
    key_file: Path
    mode: str = "full"
    content_kek: Path | None = None
    """Sealed content's KEK: each verify opens it afresh, as `aiaudit verify` would."""

    def verify(self, classification_required_since: dt.datetime | None = None) -> Report:
        return verify_store(
            self.admin,
            self.keys.verifier_keys(),
            ORIGIN_PREFIX,
            self.checkpoint_dir,
            [self.tenant],
            mode=self.mode,
            content_keys=Keyring(FileKek(self.content_kek)) if self.content_kek else "embedded",
            classification_required_since=classification_required_since,
        )

    def problems(self) -> list[str]:
        report = self.verify()
        assert not report.ok
        return [str(p) for p in report.problems]

    def event(self, seq: int) -> str:
        return self.receipts[seq].event_id

    def argv(self) -> list[str]:
        """The ``aiaudit verify`` command line of this log, as an operator would give it."""
        key = self.keys.verifier_keys()[0].encode()
        url = self.admin.url.render_as_string(hide_password=False)
        argv = ["verify", "--database-url", url, "--log", self.tenant, "--verifier-key", key]
        argv += ["--origin-prefix", ORIGIN_PREFIX]
        return [*argv, "--checkpoint-dir", str(self.checkpoint_dir)]

    def execute(self, statement: str, **params: object) -> None:
        with self.admin.begin() as conn:
            conn.execute(sa.text(statement), {"t": self.tenant, **params})


@pytest.fixture
def postgres(own_postgres: Postgres) -> Postgres:
    """Each test a database of its own: a log tampered with here would stay in the session's,
    where every later notary would refuse to sign it and report NOT_SERVING."""
    return own_postgres


@pytest.fixture(params=MODES)
def log(
    request: pytest.FixtureRequest,
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
) -> Iterator[Log]:
    """The tampered-with log, verified in each mode: the hash chain checks apply to both."""
    yield from _log(store, notaries, admin_url, tenant, tmp_path, request.param)


@pytest.fixture
def full_log(
    store: SqlEventStore, notaries: Notaries, admin_url: str, tenant: str, tmp_path: Path
) -> Iterator[Log]:
    """For the checks only ``full`` makes (search columns, content, the CLI's default)."""
    yield from _log(store, notaries, admin_url, tenant, tmp_path, "full")


@pytest.fixture
def sealed_log(sealed_store: Postgres | str, tenant: str, tmp_path: Path) -> Iterator[Log]:
    """A ``full_log`` whose content is sealed under data keys (a file KEK), in its own store."""
    if isinstance(sealed_store, str):
        url = notary_url = admin_url = sealed_store
    else:
        url, admin_url = sealed_store.app_url, sealed_store.admin_url
        notary_url = login(sealed_store, "aiaudit_notary")
    kek = tmp_path / "content.kek"
    store = open_store(url, keys=Keyring(FileKek(kek)))
    notaries = Notaries(notary_url, tmp_path, [])
    for log in _log(store, notaries, admin_url, tenant, tmp_path, "full", kek):
        assert log.verify().ok  # opened and checked against the commitments
        yield log
    for notary, own in notaries.started:
        notary.stop()
        own.close()
    store.close()


def _log(
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    mode: str,
    content_kek: Path | None = None,
) -> Iterator[Log]:
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    receipts = append(store, tenant, 12)
    notary = notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 12))
    receipts += append(store, tenant, 3)
    wait_until(lambda: covers(notaries.url, tenant, 15))
    notary.stop()
    assert [c.tree_size for c in all_checkpoints(notaries.url, tenant)] == [12, 15]
    admin = sa.create_engine(admin_url)
    result = Log(
        tenant,
        receipts,
        keys,
        admin,
        tmp_path / "checkpoints",
        tmp_path / "key.pem",
        mode,
        content_kek,
    )
    report = result.verify()
    assert report.ok, report.problems
    assert (report.events, report.checkpoints) == (15, 4)  # 2 stored + 2 exported copies
    yield result
    admin.dispose()


def mentions(problems: list[str], *needles: str) -> bool:
    return any(all(n in p for n in needles) for p in problems)


def test_changed_canonical_field_is_named(log: Log) -> None:
    with log.admin.begin() as conn:
        raw = conn.execute(
            sa.select(events.c.canonical).where(events.c.log_id == log.tenant, events.c.seq == 4)
        ).scalar_one()
        forged = bytes(raw).replace(b'"gpt-4o"', b'"gpt-4x"')
        assert forged != bytes(raw)
        conn.execute(
            sa.update(events)
            .where(events.c.log_id == log.tenant, events.c.seq == 4)
            .values(canonical=forged)
        )
    problems = log.problems()
    assert mentions(problems, "sequence 4", log.event(4), "does not match the log entry's leaf")
    assert mentions(problems, "sequence 4", log.event(4), "notary integrated")
    assert mentions(problems, "stored checkpoint at size 12", "another root")


def test_changed_search_column_is_named(full_log: Log) -> None:
    full_log.execute("UPDATE events SET user_id = 'mallory' WHERE log_id = :t AND seq = 6")
    problems = full_log.problems()
    assert mentions(problems, "sequence 6", full_log.event(6), "column user_id is 'mallory'")


def test_changed_leaf_and_event_together_are_named(log: Log) -> None:
    """Rewriting the event and its leaf hash consistently still disagrees with the tree."""
    fake = prepare(interaction(log.tenant, event_id=log.event(3), text="rewritten"), _now())
    with log.admin.begin() as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.log_id == log.tenant, events.c.seq == 3)
            .values(canonical=fake.committed.canonical)
        )
        conn.execute(
            sa.update(log_entries)
            .where(log_entries.c.log_id == log.tenant, log_entries.c.seq == 3)
            .values(leaf_hash=fake.committed.leaf_hash)
        )
    problems = log.problems()
    assert mentions(problems, "sequence 3", log.event(3), "notary integrated")


def test_changed_content_is_named(full_log: Log) -> None:
    """Content rewritten with its salt kept (and sealed again, where the store seals it:
    someone holding the KEK) still disagrees with its commitment."""
    url = full_log.admin.url.render_as_string(hide_password=False)
    event_id = full_log.event(2)
    with full_log.admin.begin() as conn:
        raw = bytes(
            conn.execute(
                sa.select(event_content.c.content).where(
                    event_content.c.log_id == full_log.tenant, event_content.c.seq == 2
                )
            ).scalar_one()
        )
        keyring = embedded_keys(url)  # SQLite seals by default; PostgreSQL stores in clear
        if seal.is_sealed(raw):
            assert keyring is not None
            key_id = seal.key_id_of(raw)
            key = data_keys(keyring, conn, {key_id})[key_id]
            salt, plain = seal.open_sealed(key, full_log.tenant, event_id, raw)
        else:
            plain = raw
        content = json.loads(plain)
        path = next(p for p in content if p.startswith("input."))
        content[path] = "something else"
        forged = json.dumps(content).encode()
        if seal.is_sealed(raw):
            forged = seal.seal(key, key_id, full_log.tenant, event_id, salt, forged)
        conn.execute(
            sa.update(event_content)
            .where(event_content.c.log_id == full_log.tenant, event_content.c.seq == 2)
            .values(content=forged)
        )
    problems = full_log.problems()
    assert mentions(problems, "sequence 2", event_id, path, "does not match its commitment")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"[1]", "content is not a JSON object"),
        (b"null", "content is not a JSON object"),
        (b'{"input.messages[0].parts[0].text": 1}', "content holds a value that is not a string"),
        (b"not json", "content is not JSON"),
    ],
)
def test_content_that_is_not_a_json_object_is_named(
    full_log: Log, content: bytes, why: str
) -> None:
    """Content rewritten (raw SQL) to JSON that is not a JSON object of strings, or that does
    not parse. Until 2026-12-06 verify stopped on it (TypeError, ValueError, JSONDecodeError:
    no report), and passed ``null`` as if nothing were wrong."""
    full_log.execute(
        "UPDATE event_content SET content = :c WHERE log_id = :t AND seq = 2", c=content
    )
    problems = full_log.problems()
    assert mentions(problems, "sequence 2", full_log.event(2), why)
    assert not any(content.decode() in p for p in problems)


def test_changed_sealed_content_is_named(sealed_log: Log) -> None:
    with sealed_log.admin.begin() as conn:
        raw = bytes(
            conn.execute(
                sa.select(event_content.c.content).where(
                    event_content.c.log_id == sealed_log.tenant, event_content.c.seq == 5
                )
            ).scalar_one()
        )
        assert raw[0] == seal.XAES_256_GCM
        flipped = raw[:-1] + bytes([raw[-1] ^ 1])
        conn.execute(
            sa.update(event_content)
            .where(event_content.c.log_id == sealed_log.tenant, event_content.c.seq == 5)
            .values(content=flipped)
        )
    problems = sealed_log.problems()
    assert mentions(problems, "sequence 5", sealed_log.event(5), "sealed content does not open")
    assert not mentions(problems, "without a privacy-erasure record")


def test_deleted_data_key_is_named(sealed_log: Log) -> None:
    """Deleting a subject's key without erasing its content makes the content unreadable."""
    sealed_log.execute("DELETE FROM content_keys WHERE log_id = :t")
    problems = sealed_log.problems()
    assert mentions(problems, "sequence 0", sealed_log.event(0), "no longer has")
    assert len(problems) == 15, "every event of the log is named"


def test_content_read_before_an_erasure_took_its_key_is_no_tampering(sealed_log: Log) -> None:
    """verify reads a page's content, then its keys: an erasure committing between the two
    left content whose key was gone, reported as tampering (found by a review). Such rows,
    read again, are gone: they are erased content, checked as such."""
    ct = event_content.c
    with sealed_log.admin.connect() as conn:
        before = {
            (int(r.seq), r.receive_time): r
            for r in conn.execute(
                sa.select(ct.seq, ct.receive_time, ct.content).where(ct.log_id == sealed_log.tenant)
            )
        }
    assert len(before) == 15
    sealed_log.execute("DELETE FROM event_content WHERE log_id = :t AND seq < 5")  # as erased
    sealed_log.execute("DELETE FROM content_keys WHERE log_id = :t")  # the subject's one key
    with sealed_log.admin.connect() as conn:
        verify._drop_erased_meanwhile(conn, sealed_log.tenant, before, {})
    assert sorted(seq for seq, _ in before) == list(range(5, 15)), "the rest stay: tampering"


TIMESTAMPS = [
    ("log_entries", "receive_time"),
    ("events", "receive_time"),
    ("event_content", "receive_time"),
    ("events", "occurred_time"),
]


@pytest.mark.parametrize(("table", "column"), TIMESTAMPS)
def test_a_timestamp_in_another_text_form_is_named(full_log: Log, table: str, column: str) -> None:
    """SQLite stores timestamps as text and its queries compare the text, so the same
    instant spelt another way is another row to them (a join on receive_time, a time
    range): verify compared the parsed values and passed. PostgreSQL stores the instant."""
    with full_log.admin.connect() as conn:
        t = sa.table(table, sa.column("log_id"), sa.column("seq"), sa.column(column, TS))
        when = conn.execute(
            sa.select(t.c[column]).where(t.c.log_id == full_log.tenant, t.c.seq == 5)
        ).scalar_one()
    respelt = when.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    update = f"UPDATE {table} SET {column} = :v WHERE log_id = :t AND seq = 5"
    full_log.execute(update, v=respelt)
    if full_log.admin.dialect.name == "postgresql":
        assert full_log.verify().ok
        return
    problems = full_log.problems()
    assert mentions(
        problems,
        f"sequence 5 event {full_log.event(5)}: column {table}.{column} is '{respelt}', not "
        "the form the store writes (YYYY-MM-DD HH:MM:SS.ffffff)",
    ), problems
    # Five digits and a zone, in the form's length; no date at all, in its shape (SQLAlchemy's
    # parse aborted verify): named too.
    for text in (when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-1] + "Z", "2026-02-30 12:00:00.000000"):
        full_log.execute(update, v=text)
        assert mentions(full_log.problems(), "sequence 5", f"{table}.{column} is '{text}'")


def test_deleted_row_is_named(log: Log) -> None:
    for table in ("event_content", "events", "log_entries"):
        log.execute(f"DELETE FROM {table} WHERE log_id = :t AND seq = 5")
    problems = log.problems()
    assert mentions(problems, "sequence 5", "sequences 5..5 are missing")


def test_deleted_event_row_keeping_its_entry_is_named(log: Log) -> None:
    log.execute("DELETE FROM events WHERE log_id = :t AND seq = 8")
    problems = log.problems()
    assert mentions(problems, "sequence 8", log.event(8), "event row is missing")


def _insert(conn: sa.Connection, tenant: str, seq: int, event_id: str) -> None:
    new = prepare(interaction(tenant, event_id=event_id, text="forged"), _now())
    columns = checks.search_columns(json.loads(new.committed.canonical))
    conn.execute(
        sa.insert(log_entries).values(
            log_id=tenant,
            seq=seq,
            event_id=event_id,
            leaf_hash=new.committed.leaf_hash,
            receive_time=new.receive_time,
        )
    )
    conn.execute(
        sa.insert(events).values(
            log_id=tenant, seq=seq, canonical=new.committed.canonical, **columns
        )
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_forged_row_inserted_in_the_middle_is_named(log: Log) -> None:
    with log.admin.begin() as conn:
        for table in ("event_content", "events", "log_entries"):  # make room at 7
            conn.execute(
                sa.text(f"UPDATE {table} SET seq = -seq - 100 WHERE log_id = :t AND seq >= 7"),
                {"t": log.tenant},
            )
            conn.execute(
                sa.text(f"UPDATE {table} SET seq = -seq - 99 WHERE log_id = :t AND seq < -99"),
                {"t": log.tenant},
            )
        _insert(conn, log.tenant, 7, "forged-event")
        conn.execute(sa.text("UPDATE logs SET size = 16 WHERE log_id = :t"), {"t": log.tenant})
    problems = log.problems()
    assert mentions(problems, "sequence 7", "forged-event", "notary integrated")
    assert mentions(problems, "sequence 8", log.event(7), "notary integrated")


def test_forged_row_beyond_the_head_is_named(log: Log) -> None:
    with log.admin.begin() as conn:
        _insert(conn, log.tenant, 15, "forged-tail")
    problems = log.problems()
    assert mentions(problems, "sequence 15", "forged-tail", "beyond the log head")


def test_forged_event_row_without_entry_is_named(log: Log) -> None:
    new = prepare(interaction(log.tenant, event_id="forged-orphan"), _now())
    with log.admin.begin() as conn:
        conn.execute(
            sa.insert(events).values(
                log_id=log.tenant,
                seq=3,
                canonical=new.committed.canonical,
                **checks.search_columns(json.loads(new.committed.canonical)),
            )
        )
    problems = log.problems()
    assert mentions(problems, "sequence 3", "forged-orphan", "without a log entry")


def test_swapped_sequence_numbers_are_named(log: Log) -> None:
    with log.admin.begin() as conn:
        for table in ("event_content", "events", "log_entries"):
            for a, b in ((2, -1), (9, 2), (-1, 9)):
                conn.execute(
                    sa.text(f"UPDATE {table} SET seq = :b WHERE log_id = :t AND seq = :a"),
                    {"t": log.tenant, "a": a, "b": b},
                )
    problems = log.problems()
    assert mentions(problems, "sequence 2", log.event(9), "notary integrated")
    assert mentions(problems, "sequence 9", log.event(2), "notary integrated")
    assert mentions(problems, "stored checkpoint at size 12", "another root")


def test_replaced_checkpoint_is_caught(log: Log) -> None:
    other = Ed25519PrivateKey.generate()
    public = other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    forged = note.sign_checkpoint(
        note.Checkpoint(f"{ORIGIN_PREFIX}/{log.tenant}", 12, b"\x00" * 32),
        [note.NoteSigner(ORIGIN_PREFIX, public, other.sign)],
    )
    log.execute(
        "UPDATE integrity_checkpoints SET signed_note = :n, root_hash = :r "
        "WHERE log_id = :t AND tree_size = 12",
        n=forged,
        r=b"\x00" * 32,
    )
    problems = log.problems()
    assert mentions(problems, "stored checkpoint at size 12", "no signature from a trusted key")


def test_truncated_tail_is_caught(log: Log) -> None:
    for table in ("event_content", "events", "log_entries"):
        log.execute(f"DELETE FROM {table} WHERE log_id = :t AND seq >= 12")
    # The head only grows (a trigger): an attacker owning the tables switches it off first.
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs DISABLE TRIGGER logs_head_grows")
    log.execute("UPDATE logs SET size = 12 WHERE log_id = :t")
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs ENABLE TRIGGER logs_head_grows")
    problems = log.problems()
    assert mentions(problems, "checkpoint at size 15 covers sequences 12..14, which are missing")
    assert mentions(problems, "integrated 15 leaves but the log head says 12")


def test_cli_exits_non_zero_and_names_the_event(
    full_log: Log, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = full_log.keys.verifier_keys()[0].encode()
    url = full_log.admin.url.render_as_string(hide_password=False)
    base = ["verify", "--database-url", url, "--log", full_log.tenant, "--verifier-key", key]
    base += ["--origin-prefix", ORIGIN_PREFIX, "--checkpoint-dir", str(full_log.checkpoint_dir)]
    assert main(base) == 0
    full_log.execute("UPDATE events SET model_name = 'other' WHERE log_id = :t AND seq = 1")
    assert main(base) == 1
    out = capsys.readouterr().out
    assert f"sequence 1 event {full_log.event(1)}: column model_name is 'other'" in out


def test_leaves_mode_checks_the_hash_chain_and_full_mode_the_rest(full_log: Log) -> None:
    """``leaves`` names a changed event; only ``full`` (inline or in workers) reads columns."""
    full_log.execute("UPDATE events SET user_id = 'mallory' WHERE log_id = :t AND seq = 6")
    with full_log.admin.begin() as conn:
        raw = conn.execute(
            sa.select(events.c.canonical).where(
                events.c.log_id == full_log.tenant, events.c.seq == 9
            )
        ).scalar_one()
        conn.execute(
            sa.update(events)
            .where(events.c.log_id == full_log.tenant, events.c.seq == 9)
            .values(canonical=bytes(raw).replace(b'"gpt-4o"', b'"gpt-4x"'))
        )
    keys = full_log.keys.verifier_keys()

    def run(mode: str, workers: int) -> list[str]:
        report = verify_store(
            full_log.admin,
            keys,
            ORIGIN_PREFIX,
            full_log.checkpoint_dir,
            [full_log.tenant],
            None,
            mode,
            workers,
        )
        assert report.events == 15
        return [str(p) for p in report.problems]

    leaves = run("leaves", 1)
    assert mentions(leaves, "sequence 9", full_log.event(9), "does not match the log entry's leaf")
    assert mentions(leaves, "sequence 9", "notary integrated")
    assert not mentions(leaves, "user_id")
    for workers in (1, 2):
        full = run("full", workers)
        assert mentions(full, "sequence 6", full_log.event(6), "column user_id is 'mallory'")
        assert mentions(
            full, "sequence 9", full_log.event(9), "does not match the log entry's leaf"
        )
        assert sorted(full) == sorted(run("full", 1))
    with pytest.raises(ValueError, match="verify mode"):
        verify_store(full_log.admin, keys, ORIGIN_PREFIX, mode="quick")


def test_pages_checked_in_the_database_and_a_changed_row_is_named(
    full_log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves mode on PostgreSQL hashes intact pages in the database; a bad page goes row by row.

    Pages of 4 make the 15 events four pages; the changed and the moved rows
    each spoil one, which the row-by-row check names, while the other pages
    (and the tree built across both kinds) stay checked. SQLite reads rows.
    """
    monkeypatch.setattr(verify, "PAGE", 4)
    full_log.mode = "leaves"
    report = full_log.verify()
    assert report.ok, report.problems
    on_postgres = full_log.admin.dialect.name == "postgresql"
    assert report.pages_in_database == (4 if on_postgres else 0)
    with full_log.admin.begin() as conn:
        raw = conn.execute(
            sa.select(events.c.canonical).where(
                events.c.log_id == full_log.tenant, events.c.seq == 9
            )
        ).scalar_one()
        conn.execute(
            sa.update(events)
            .where(events.c.log_id == full_log.tenant, events.c.seq == 9)
            .values(canonical=bytes(raw).replace(b'"gpt-4o"', b'"gpt-4x"'))
        )
    report = full_log.verify()
    problems = [str(p) for p in report.problems]
    assert mentions(
        problems, "sequence 9", full_log.event(9), "does not match the log entry's leaf"
    )
    assert mentions(problems, "sequence 9", full_log.event(9), "notary integrated")
    assert mentions(problems, "stored checkpoint at size 12", "another root")
    assert report.pages_in_database == (3 if on_postgres else 0)
    # An event row moved to another receive time (same bytes): its entry lost it.
    full_log.execute(
        "UPDATE events SET receive_time = receive_time + interval '1 second' "
        "WHERE log_id = :t AND seq = 2"
        if on_postgres
        else "UPDATE events SET receive_time = '2001-01-01 00:00:00.000000' "
        "WHERE log_id = :t AND seq = 2"
    )
    report = full_log.verify()
    problems = [str(p) for p in report.problems]
    assert mentions(problems, "sequence 2", full_log.event(2), "event row is missing")
    assert mentions(problems, "sequence 2", full_log.event(2), "without a log entry")
    assert report.pages_in_database == (2 if on_postgres else 0)


def test_content_deleted_without_an_erasure_record_is_named(
    full_log: Log, privacy_url: str
) -> None:
    """The privacy role may delete content; only a deletion with its audited record is an
    erasure. One without (raw SQL, a privacy login misused) is named; the erasure is not."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)
    try:
        erase(privacy, full_log.tenant, "data subject request", "dpo", [full_log.event(2)])
    finally:
        privacy.close()
    report = full_log.verify()
    assert report.ok, report.problems
    full_log.execute("DELETE FROM event_content WHERE log_id = :t AND seq = 7")
    problems = full_log.problems()
    assert problems == [
        f"log {full_log.tenant} sequence 7 event {full_log.event(7)}: content deleted without "
        "a privacy-erasure record naming the event"
    ]


def test_an_erasure_record_before_the_event_does_not_explain_its_missing_content(
    full_log: Log, store: SqlEventStore, privacy_url: str
) -> None:
    """An erasure names every id it is asked for, ids no event has yet too: an event given
    one later keeps its content, and deleting that content by raw SQL is no erasure. Only a
    record later in the log than the event explains its missing content."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)
    try:
        done = erase(privacy, full_log.tenant, "data subject request", "dpo", ["not-yet"])
    finally:
        privacy.close()
    assert (done.named, done.erased) == (["not-yet"], [])  # the record, at 15, names it
    (later,) = store.append_group(
        [[prepare(interaction(full_log.tenant, event_id="not-yet"), _now())]]
    )[0]
    assert later.sequence == 16
    assert full_log.verify().ok
    full_log.execute("DELETE FROM event_content WHERE log_id = :t AND seq = 16")
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 16 event not-yet: content deleted without "
        "a privacy-erasure record naming the event"
    ]
    with full_log.admin.connect() as conn:  # what VerifyEvent asks
        assert not _recorded(conn, full_log.tenant, "not-yet", 16)
    key = full_log.keys.verifier_keys()[0].encode()
    url = full_log.admin.url.render_as_string(hide_password=False)
    command = ["verify", "--database-url", url, "--log", full_log.tenant, "--verifier-key", key]
    command += ["--origin-prefix", ORIGIN_PREFIX, "--checkpoint-dir", str(full_log.checkpoint_dir)]
    assert main(command) == 1


def test_content_put_back_after_its_erasure_is_named(full_log: Log, privacy_url: str) -> None:
    """Content restored from a backup after its erasure verified, and every reader served it
    again (review, 2026-12-05)."""
    from aiaudit.common.erasure import erase

    with full_log.admin.connect() as conn:
        saved = conn.execute(
            sa.text("SELECT * FROM event_content WHERE log_id = :t AND seq = 2"),
            {"t": full_log.tenant},
        ).one()
    privacy = open_store(privacy_url)
    try:
        erase(privacy, full_log.tenant, "data subject request", "dpo", [full_log.event(2)])
    finally:
        privacy.close()
    assert full_log.verify().ok
    columns = ", ".join(saved._fields)
    values = ", ".join(f":{c}" for c in saved._fields)
    with full_log.admin.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO event_content ({columns}) VALUES ({values})"), saved._asdict()
        )
    problems = full_log.problems()
    assert len(problems) == 1
    assert problems[0].startswith(
        f"log {full_log.tenant} sequence 2 event {full_log.event(2)}: content present although"
        " the erasure record at sequence 15 names the event"
    )


def test_content_put_back_is_named_beside_an_event_row_forged_at_its_record_s_sequence(
    full_log: Log, privacy_url: str
) -> None:
    """The records were read a page at a time, ordered by sequence alone, the next page past
    the last sequence read: a row forged at a record's sequence (another receive time, read
    before the record's own) ending a page hid the record, and the content it erases put back
    was not named (review, 2026-12-07). The forged row is named as before."""
    from aiaudit.common.erasure import erase

    t = full_log.tenant
    with full_log.admin.connect() as conn:
        saved = conn.execute(
            sa.text("SELECT * FROM event_content WHERE log_id = :t AND seq = 2"), {"t": t}
        ).one()
    privacy = open_store(privacy_url)
    try:
        erase(privacy, t, "data subject request", "dpo", [full_log.event(1)])  # at 15
        erase(privacy, t, "data subject request", "dpo", [full_log.event(2)])  # at 16
    finally:
        privacy.close()
    columns = ", ".join(saved._fields)
    values = ", ".join(f":{c}" for c in saved._fields)
    with full_log.admin.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO event_content ({columns}) VALUES ({values})"), saved._asdict()
        )
        received = conn.execute(
            sa.select(events.c.receive_time).where(events.c.log_id == t, events.c.seq == 16)
        ).scalar_one()
        at_16 = sa.and_(events.c.log_id == t, events.c.seq == 16)
        record = conn.execute(sa.select(events).where(at_16)).one()._asdict()
        # Written after the forged row (a microsecond earlier), the record reads after it.
        conn.execute(events.delete().where(at_16))
        forged = {**record, "receive_time": received - dt.timedelta(microseconds=1)}
        conn.execute(events.insert(), [forged, record])
    assert full_log.problems() == [
        f"log {t} sequence 2 event {full_log.event(2)}: content present although"
        " the erasure record at sequence 16 names the event (put back?)",
        f"log {t} sequence 16 event {record['event_id']}: event row without a log entry"
        " (inserted?)",
    ]


def test_a_row_of_erasure_names_deleted_added_or_moved_is_named(
    full_log: Log, privacy_url: str
) -> None:
    """``erasure_names`` is VerifyEvent's index to the records naming an event: a row deleted
    there would hide content put back, one added would name content as put back. The records
    are the truth: verify names each row missing, extra or pointing elsewhere."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)  # the privacy login writes the rows (PostgreSQL grants)
    try:
        erase(privacy, full_log.tenant, "data subject request", "dpo", [full_log.event(2)])
    finally:
        privacy.close()
    t, erased, kept = full_log.tenant, full_log.event(2), full_log.event(3)
    with full_log.admin.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event_id, record_seq FROM erasure_names WHERE log_id = :t"), {"t": t}
        ).all()
    assert [tuple(r) for r in rows] == [(erased, 15)]
    assert full_log.verify().ok
    full_log.execute("DELETE FROM erasure_names WHERE log_id = :t")
    insert = "INSERT INTO erasure_names (log_id, event_id, record_seq) VALUES (:t, '{}', {})"
    full_log.execute(insert.format(kept, 15))  # the record does not name it
    full_log.execute(insert.format(erased, 4))  # no record there
    assert full_log.problems() == [
        f"log {t} sequence 4: erasure_names has a row naming event {erased!r} for this "
        "sequence, which holds no intact record naming it (inserted or changed?)",
        f"log {t} sequence 15: erasure_names has a row naming event {kept!r} for this "
        "sequence, which holds no intact record naming it (inserted or changed?)",
        f"log {t} sequence 15: erasure_names lacks the row naming event {erased!r} for this "
        "record (deleted?): VerifyEvent would not see that event's content put back",
    ]


def test_a_row_of_erasure_names_beside_the_same_at_a_fraction_of_its_sequence_is_named(
    full_log: Log, privacy_url: str
) -> None:
    """SQLite keeps 15.5 in the integer column, read as 15: beside the row at 15 naming the
    same event it is one row more, named as before c04e518 (which compared a set of each
    record's rows and named nothing). PostgreSQL's column rounds it to 15: refused."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)
    try:
        erase(privacy, full_log.tenant, "data subject request", "dpo", [full_log.event(2)])
    finally:
        privacy.close()
    t, erased = full_log.tenant, full_log.event(2)
    insert = "INSERT INTO erasure_names (log_id, event_id, record_seq) VALUES (:t, :e, 15.4)"
    if full_log.admin.dialect.name != "sqlite":
        with pytest.raises(sa.exc.IntegrityError):  # the row at 15 is there
            full_log.execute(insert, e=erased)
        return
    full_log.execute(insert, e=erased)
    with full_log.admin.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT record_seq FROM erasure_names WHERE log_id = :t ORDER BY 1"), {"t": t}
        ).scalars()
        assert list(stored) == [15, 15.4]
    assert full_log.problems() == [
        f"log {t} sequence 15: erasure_names has a row naming event {erased!r} for this "
        "sequence, which holds no intact record naming it (inserted or changed?)",
    ]


def test_a_log_whose_logs_row_is_deleted_is_still_verified(log: Log) -> None:
    """Verify listed the logs from ``logs`` alone: deleting a log's row there hid it, and
    every change to it after (review, 2026-12-05)."""
    log.execute("DELETE FROM logs WHERE log_id = :t")
    log.execute("UPDATE log_entries SET event_id = 'forged' WHERE log_id = :t AND seq = 4")
    problems = log.problems()
    assert mentions(problems, log.tenant, "no row in logs (deleted?)")
    assert mentions(problems, "sequence 4")


def test_an_erasure_committed_during_the_walk_is_no_tampering(
    store: SqlEventStore,
    admin_url: str,
    privacy_url: str,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a live store the erasure may commit after the pages were fixed: its content is seen
    gone, its record lies past the last page. It was reported as a deletion without record."""
    from aiaudit.common.erasure import erase

    now = dt.datetime.now(dt.UTC)
    (receipts,) = store.append_group(
        [[prepare(interaction(tenant, text=f"m{i}"), now) for i in range(verify.PAGE)]]
    )
    privacy = open_store(privacy_url)
    walked = verify._page_rows
    erased: list[str] = []

    def page_rows(*args: object) -> object:
        if not erased:  # the first page is read after the erasure: its record is at PAGE
            erased.extend(erase(privacy, tenant, "dsr", "dpo", [receipts[5].event_id]).erased)
        return walked(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "_page_rows", page_rows)
    admin = sa.create_engine(admin_url)
    try:
        report = verify_store(admin, [], ORIGIN_PREFIX, None, [tenant])
    finally:
        admin.dispose()
        privacy.close()
    assert erased == [receipts[5].event_id]
    assert report.ok, report.problems


def test_a_batch_committed_while_a_page_is_read_is_no_tampering(
    store: SqlEventStore, admin_url: str, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's reads are statements of their own: a gateway's batch committed between its
    event rows' read and its entries' was reported "the event row is missing (deleted?)" for
    every event of the batch, on any running store (review, 2026-12-05). The entries are read
    first now; the batch is committed between the page's reads here, in both modes."""
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(tenant, text=f"m{i}"), now) for i in range(10)]])
    integrated = verify._integrated  # read between the events and the entries, as before
    appended: list[int] = []

    def gateway_meanwhile(*args: object) -> object:
        if not appended:
            batch = [
                prepare(interaction(tenant, text=f"n{i}"), dt.datetime.now(dt.UTC))
                for i in range(3)
            ]
            appended.extend(r.sequence for r in store.append_group([batch])[0])
        return integrated(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "_integrated", gateway_meanwhile)
    # PostgreSQL's leaves mode reads a page in one statement (verify_pages): one snapshot.
    modes = ["full"] if store.engine.dialect.name == "postgresql" else ["full", "leaves"]
    admin = sa.create_engine(admin_url)
    try:
        for mode in modes:
            appended.clear()
            report = verify_store(admin, [], ORIGIN_PREFIX, None, [tenant], mode=mode)
            assert appended, mode
            assert report.ok, (mode, [str(p) for p in report.problems])
    finally:
        admin.dispose()


def test_a_tree_that_does_not_extend_the_last_checkpoint_is_not_signed(
    store: SqlEventStore, notaries: Notaries, admin_url: str, tenant: str, tmp_path: Path
) -> None:
    """A restarted notary builds its edge from the node rows: with one changed, it signed
    a checkpoint no consistency proof joins to the one before, a fork made with the real
    key (review, 2026-12-05). Now the log goes unsigned and the notary NOT_SERVING."""
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    append(store, tenant, 15)
    first = notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 15))
    first.stop()
    admin = sa.create_engine(admin_url)
    node = sa.and_(nodes.c.log_id == tenant, nodes.c.level == 2, nodes.c.idx == 2)
    try:
        with admin.begin() as conn:  # leaves 8..11: on the right edge of a tree of 15
            (real,) = conn.execute(sa.select(nodes.c.hash).where(node)).scalars()
            conn.execute(sa.update(nodes).where(node).values(hash=bytes(32)))
        append(store, tenant, 1)
        health: list[bool] = []
        second = notaries.start(keys, on_health=health.append)
        wait_until(lambda: False in health)
        assert max(c.tree_size for c in all_checkpoints(notaries.url, tenant)) == 15
        second.stop()
        with admin.begin() as conn:  # repaired: signed on the next start
            conn.execute(sa.update(nodes).where(node).values(hash=real))
    finally:
        admin.dispose()
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 16))
    check_history(notaries.url, tenant, keys.verifier_keys())


def _nodes_of(log: Log) -> dict[tuple[int, int], bytes]:
    with log.admin.connect() as conn:
        rows = conn.execute(
            sa.select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(nodes.c.log_id == log.tenant)
        )
        return {(int(level), int(idx)): bytes(digest) for level, idx, digest in rows}


def _node_problems(log: Log, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], int]:
    """The problems (sorted) at the default page size, which must be those at pages of 4,
    and how many of those 4 pages PostgreSQL's leaves mode found intact in the database.

    Pages of 4 make the nodes above level 2 ones that join pages (completed
    while the tree is rebuilt across them), and the log's 15 events four pages.
    """
    problems = sorted(log.problems())
    monkeypatch.setattr(verify, "PAGE", 4)
    report = log.verify()
    assert sorted(str(p) for p in report.problems) == problems
    return problems, report.pages_in_database


def test_changed_inner_nodes_are_named(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proofs and the notary's restart read the inner node rows: a changed one failed them
    (DATA_LOSS, a log no longer signed) while verify passed (review, 2026-12-05)."""
    assert set(_nodes_of(log)) == {
        (level, idx) for level in range(4) for idx in range(15 >> level)
    }, "the notary stores every complete subtree, the leaves at level 0"
    for level, idx in ((1, 2), (3, 0)):
        log.execute(
            "UPDATE integrity_nodes SET hash = :h WHERE log_id = :t AND level = :l AND idx = :i",
            h=bytes(32),
            l=level,
            i=idx,
        )
    problems, in_database = _node_problems(log, monkeypatch)
    assert problems == [
        f"log {log.tenant}: node level 1 index 2 (leaves 4..5) differs from the tree "
        "rebuilt from the stored events",
        f"log {log.tenant}: node level 3 index 0 (leaves 0..7) differs from the tree "
        "rebuilt from the stored events",
    ]
    on_postgres = log.admin.dialect.name == "postgresql"
    assert in_database == (4 if on_postgres and log.mode == "leaves" else 0), "no page spoilt"


def test_deleted_nodes_are_named(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """An inner node, and the last integrated leaf (no other node covers it; the
    checkpoint at 15 does)."""
    log.execute("DELETE FROM integrity_nodes WHERE log_id = :t AND level = 2 AND idx = 1")
    log.execute("DELETE FROM integrity_nodes WHERE log_id = :t AND level = 0 AND idx = 14")
    assert _node_problems(log, monkeypatch)[0] == [
        f"log {log.tenant}: node level 0 index 14 is missing (deleted?)",
        f"log {log.tenant}: node level 2 index 1 is missing (deleted?)",
    ]


def test_inserted_nodes_are_named(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every place inside the tree holds a node already (the primary key): a node added is
    past the log's 15 leaves, or at no place of a tree."""
    with log.admin.begin() as conn:
        for level, idx in ((0, 15), (0, 16), (1, 7), (4, 0), (-1, 0), (2, -3)):
            conn.execute(
                sa.insert(nodes).values(log_id=log.tenant, level=level, idx=idx, hash=bytes(32))
            )
    assert _node_problems(log, monkeypatch)[0] == sorted(
        [
            f"log {log.tenant}: the notary integrated 17 leaves but the log head says 15 "
            "(tail truncated?)",
            f"log {log.tenant}: node level 0 index 15..16 lies beyond the log head (size 15): "
            "inserted, or the log truncated?",
            f"log {log.tenant}: node level 1 index 7 lies beyond the log head (size 15): "
            "inserted, or the log truncated?",
            f"log {log.tenant}: node level 4 index 0 lies beyond the log head (size 15): "
            "inserted, or the log truncated?",
            f"log {log.tenant}: node level -1 index 0 is no place in a tree (inserted?)",
            f"log {log.tenant}: node level 2 index -3 is no place in a tree (inserted?)",
        ]
    )


class _SignerDown:
    """The log's keys with the signer out of reach: a notary integrates and signs nothing."""

    def __init__(self, keys: FileKeys) -> None:
        self.keys = keys

    def active(self) -> ActiveKey:
        raise SignerUnavailableError("the key store is unreachable")

    def verifier_keys(self) -> list[VerifierKey]:
        return self.keys.verifier_keys()


def test_deleted_nodes_past_the_last_checkpoint_are_named(
    log: Log,
    store: SqlEventStore,
    notaries: Notaries,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nodes of leaves integrated after the last checkpoint, deleted from the tail, passed:
    verify asked only for what the remaining rows and the checkpoints covered, while the
    notary's cursor says more was stored, and a restarted notary loads its edge from them."""
    log.receipts += append(store, log.tenant, 6)
    with stepping(notaries.url, _SignerDown(log.keys), tmp_path) as notary:
        notary.step()
    assert len(_nodes_of(log)) == 21 + 10 + 5 + 2 + 1
    assert max(c.tree_size for c in all_checkpoints(notaries.url, log.tenant)) == 15
    assert log.verify().ok
    for level, first in ((0, 16), (1, 8), (2, 4)):  # every node of leaves 16..20
        log.execute(
            "DELETE FROM integrity_nodes WHERE log_id = :t AND level = :l AND idx >= :i",
            l=level,
            i=first,
        )
    missing = f"log {log.tenant}: node level %s is missing (deleted?)"
    tail = [missing % "1 index 8..9", missing % "2 index 4"]
    assert sorted(log.problems()) == [missing % "0 index 16..20", *tail]
    monkeypatch.setattr(verify, "PAGE", 4)  # the same nodes, named page by page
    assert sorted(log.problems()) == [missing % "0 index 16..19", missing % "0 index 20", *tail]


def test_a_cursor_past_the_head_is_a_truncated_tail(log: Log) -> None:
    """Entries, their nodes and the head cut back together: the notary's cursor still says
    how many it integrated."""
    log.execute(
        "UPDATE consumer_cursors SET position = 17 WHERE consumer = 'integrity' AND log_id = :t"
    )
    assert log.problems() == [
        f"log {log.tenant}: the notary integrated 17 leaves but the log head says 15 "
        "(tail truncated?)"
    ]


def test_nodes_the_notary_has_not_stored_yet_are_no_problem(
    log: Log, store: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries appended after the notary stopped have no nodes yet: nothing is missing."""
    log.receipts += append(store, log.tenant, 6)
    assert log.verify().ok
    monkeypatch.setattr(verify, "PAGE", 4)
    report = log.verify()
    assert report.ok, report.problems
    assert report.events == 21


def test_nodes_integrated_while_the_walk_ends_are_no_truncation(
    log: Log,
    store: SqlEventStore,
    notaries: Notaries,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last leaf integrated was read after the head: on a running PostgreSQL store,
    leaves appended and integrated in between were reported as a truncated tail."""
    last_checks = verify.erasure_problems

    def grow_then_check(
        conn: sa.Connection, log_id: str, upto: int
    ) -> list[tuple[int, str | None, str]]:
        log.receipts += append(store, log.tenant, 6)
        with stepping(notaries.url, log.keys, tmp_path) as notary:
            notary.step()
        return last_checks(conn, log_id, upto)

    monkeypatch.setattr(verify, "erasure_problems", grow_then_check)
    report = log.verify()
    assert report.ok, report.problems
    assert len(_nodes_of(log)) == 21 + 10 + 5 + 2 + 1


def test_a_rebuilt_block_hands_over_every_node_it_completes() -> None:
    """What verify compares the stored nodes with: appended in blocks cut anywhere (level by
    level when aligned, else leaf by leaf), each node once, as the notary stored it."""
    rng = random.Random(7)
    for n in [1, 2, 3, 15, 16, 17, *rng.sample(range(18, 300), 20)]:
        leaves = [sha256(b"%d %d" % (n, i)).digest() for i in range(n)]
        stored = {(node.level, node.index): d for node, d in CompactRange().extend(leaves)}
        rebuilt: dict[tuple[int, int], bytes] = {}
        tree = CompactRange()
        cuts = sorted({0, n, *rng.sample(range(n), min(n, 4))})
        for start, end in itertools.pairwise(cuts):
            completed: dict[int, list[bytes]] = {}
            tree.append_block(b"".join(leaves[start:end]), (), completed)
            for level, parts in completed.items():
                row = b"".join(parts)
                assert len(row) == 32 * ((end >> level) - (start >> level))
                for k in range(len(row) // 32):
                    rebuilt[(level, (start >> level) + k)] = row[32 * k : 32 * (k + 1)]
        assert rebuilt == stored, (n, cuts)


def _copy_content(conn: sa.Connection, tenant: str, source: int, seq: int, when: object) -> None:
    """A content row at ``seq`` received ``when``, its salt and bytes those of ``source``."""
    ct = event_content.c
    salt, content = conn.execute(
        sa.select(ct.salt, ct.content).where(ct.log_id == tenant, ct.seq == source)
    ).one()
    conn.execute(
        sa.insert(event_content).values(
            log_id=tenant, seq=seq, receive_time=when, salt=salt, content=content
        )
    )


def test_rows_at_a_negative_sequence_are_named(log: Log) -> None:
    """A log starts at sequence 0 and the pages from there: an entry, its event and content
    forged at -1 passed both modes (review, 2026-12-05), and so did a lone content row."""
    with log.admin.begin() as conn:
        _insert(conn, log.tenant, -1, "forged-ghost")
        when = conn.execute(
            sa.select(log_entries.c.receive_time).where(
                log_entries.c.log_id == log.tenant, log_entries.c.seq == -1
            )
        ).scalar_one()
        _copy_content(conn, log.tenant, 8, -1, when)
        _copy_content(conn, log.tenant, 8, -5, when)
    assert log.problems() == [
        f"log {log.tenant} sequence -5: content row at a negative sequence, no place in a log "
        "(inserted?)",
        f"log {log.tenant} sequence -1 event forged-ghost: log entry, event row and content row "
        "at a negative sequence, no place in a log (inserted?)",
    ]


def test_a_content_row_beyond_the_head_is_named(log: Log) -> None:
    """Content past the head with no entry of its own was never read."""
    with log.admin.begin() as conn:
        _copy_content(conn, log.tenant, 3, 15, _now())
        _copy_content(conn, log.tenant, 3, 40, _now())
    assert log.problems() == [
        f"log {log.tenant} sequence 15: content row without a log entry beyond the log head "
        "(size 15): inserted?",
        f"log {log.tenant} sequence 40: content row without a log entry beyond the log head "
        "(size 15): inserted?",
    ]


def test_a_stored_checkpoint_without_its_exported_copy_is_named(log: Log) -> None:
    """The notary writes (and fsyncs) each checkpoint's copy before it stores the row, so a
    stored checkpoint without one lost it; removing a copy passed (review, 2026-12-05)."""
    (copy,) = exported_files(log.checkpoint_dir / log.tenant, f"{12:020d}-*.checkpoint")
    copy.unlink()
    assert log.problems() == [
        f"log {log.tenant}: stored checkpoint at size 12 has no exported copy (the notary "
        "exports each before storing it: copy deleted, or not the notary's directory?)"
    ]
    shutil.rmtree(log.checkpoint_dir / log.tenant)  # the log's folder, gone
    assert sorted(log.problems()) == [
        f"log {log.tenant}: stored checkpoint at size {size} has no exported copy (the notary "
        "exports each before storing it: copy deleted, or not the notary's directory?)"
        for size in (12, 15)
    ]


def test_entries_of_the_checkpoint_directory_no_notary_wrote_are_named(log: Log) -> None:
    """A file without a size in its name, a folder, and a file that is no UTF-8 text, each
    named ``*.checkpoint``: anyone who may add files to the directory can make them, and
    until 2026-12-07 each stopped verify with a traceback (ValueError, IsADirectoryError,
    UnicodeDecodeError). Each is named; the notary's own copies are checked as before."""
    folder = log.checkpoint_dir / log.tenant
    (folder / "junk.checkpoint").write_text("not a checkpoint")
    (folder / f"{99:020d}-ab.checkpoint").mkdir()
    (folder / f"{98:020d}-cd.checkpoint").write_bytes(b"\xff\xfe")
    assert sorted(log.problems()) == sorted(
        f"log {log.tenant}: exported file {name!r} is no checkpoint the notary wrote (no size "
        "in its name, not a file, or not UTF-8 text)"
        for name in ("junk.checkpoint", f"{99:020d}-ab.checkpoint", f"{98:020d}-cd.checkpoint")
    )


def test_a_missing_checkpoint_directory_is_an_error_not_a_pass(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A history rolled back past its last checkpoint (rows, nodes, checkpoints, cursor and
    head cut back together) is told by the exported copies alone: with a mistyped, unmounted
    or other host's directory verify passed it (review, 2026-12-05)."""
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs DISABLE TRIGGER logs_head_grows")
    for table in ("event_content", "events", "log_entries"):
        log.execute(f"DELETE FROM {table} WHERE log_id = :t AND seq >= 12")
    log.execute(
        "DELETE FROM integrity_nodes WHERE log_id = :t AND "
        "((level = 0 AND idx >= 12) OR (level = 1 AND idx >= 6) OR (level = 2 AND idx >= 3))"
    )
    log.execute("DELETE FROM integrity_checkpoints WHERE log_id = :t AND tree_size > 12")
    log.execute("UPDATE consumer_cursors SET position = 12 WHERE log_id = :t")
    log.execute("UPDATE logs SET size = 12 WHERE log_id = :t")
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs ENABLE TRIGGER logs_head_grows")
    assert log.problems() == [
        f"log {log.tenant}: exported checkpoint at size 15 covers sequences 12..14, which are "
        "missing: the log is behind a checkpoint that was signed and exported (tail truncated, "
        "or the store restored from a backup older than the checkpoint?)"
    ]
    key = log.keys.verifier_keys()[0].encode()
    url = log.admin.url.render_as_string(hide_password=False)
    base = ["verify", "--database-url", url, "--log", log.tenant, "--verifier-key", key]
    base += ["--origin-prefix", ORIGIN_PREFIX, "--mode", log.mode]
    capsys.readouterr()
    missing = tmp_path / "nonexistent"
    assert main([*base, "--checkpoint-dir", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    # The last line: a store's start-up warnings (content unsealed, as JSON logs) may precede it.
    assert captured.err.splitlines()[-1] == (
        f"aiaudit: configuration error: checkpoint directory {missing} does not exist, and the "
        "store holds signed checkpoints: each is checked against the copy the notary exported "
        "there before storing it, which tells a history rolled back; pass the notary's "
        "directory (--checkpoint-dir, or integrity.checkpoint_dir)"
    )
    assert main([*base, "--checkpoint-dir", str(log.checkpoint_dir)]) == 1


def _erase_second_event(log: Log, privacy_url: str) -> str:
    """A real erasure of the event at sequence 2; the id of its record, the log's entry 15."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)
    try:
        record = erase(privacy, log.tenant, "data subject request", "dpo", [log.event(2)])
    finally:
        privacy.close()
    assert log.verify().ok
    return record.record_id


def _record_naming(log: Log, conn: sa.Connection, *event_ids: str) -> bytes:
    """The canonical form of the erasure record at 15, edited to name ``event_ids``."""
    committed = conn.execute(
        sa.select(events.c.canonical).where(events.c.log_id == log.tenant, events.c.seq == 15)
    ).scalar_one()
    named = json.dumps(list(event_ids), separators=(",", ":")).encode()
    forged = bytes(committed).replace(f'["{log.event(2)}"]'.encode(), named)
    assert forged != bytes(committed)
    return forged


def test_an_erasure_record_that_is_no_log_entry_erases_nothing(
    full_log: Log, privacy_url: str
) -> None:
    """Content deleted by raw SQL, and an event row forged as an erasure record naming it but
    with no log entry: verify named only the forged row, and VerifyEvent called the event
    VERIFIED_ERASED (review, 2026-12-05). Only a record that is the log's entry counts."""
    _erase_second_event(full_log, privacy_url)
    with full_log.admin.begin() as conn:
        record = conn.execute(
            sa.select(events).where(events.c.log_id == full_log.tenant, events.c.seq == 15)
        ).one()
        forged = {
            **record._asdict(),
            "seq": 1000,
            "event_id": "erasure-forged",
            "canonical": _record_naming(full_log, conn, full_log.event(0)),
        }
        conn.execute(sa.insert(events).values(**forged))
    full_log.execute("DELETE FROM event_content WHERE log_id = :t AND seq = 0")
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 0 event {full_log.event(0)}: content deleted without "
        "a privacy-erasure record naming the event",
        f"log {full_log.tenant} sequence 1000 event erasure-forged: event row without a log "
        "entry (inserted?)",
    ]
    with full_log.admin.connect() as conn:  # what VerifyEvent asks
        assert not _recorded(conn, full_log.tenant, full_log.event(0), 0)
        assert _recorded(conn, full_log.tenant, full_log.event(2), 2)


def test_a_changed_erasure_record_erases_nothing(full_log: Log, privacy_url: str) -> None:
    """A record whose bytes are no longer its entry's proves no erasure: the events it
    names, content gone, are named too, not only the changed record."""
    record = _erase_second_event(full_log, privacy_url)
    with full_log.admin.begin() as conn:
        forged = _record_naming(full_log, conn, full_log.event(2), full_log.event(0))
        conn.execute(
            sa.update(events)
            .where(events.c.log_id == full_log.tenant, events.c.seq == 15)
            .values(canonical=forged)
        )
    full_log.execute("DELETE FROM event_content WHERE log_id = :t AND seq = 0")
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 15 event {record}: "
        "canonical form does not match the log entry's leaf hash (changed)",
        f"log {full_log.tenant} sequence 0 event {full_log.event(0)}: content deleted without "
        "a privacy-erasure record naming the event",
        f"log {full_log.tenant} sequence 2 event {full_log.event(2)}: content deleted without "
        "a privacy-erasure record naming the event",
    ]
    with full_log.admin.connect() as conn:
        assert not _recorded(conn, full_log.tenant, full_log.event(0), 0)
        assert not _recorded(conn, full_log.tenant, full_log.event(2), 2)


BINARY = [
    ("events", "canonical"),
    ("log_entries", "leaf_hash"),
    ("event_content", "content"),
    ("event_content", "salt"),
]


SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
"""For a change only SQLite takes (PostgreSQL's bytea refuses text)."""


def _as_text(log: Log, table: str, column: str, seq: int) -> None:
    """Rewrites a binary column as text, as raw SQL may on SQLite (which takes any type)."""
    log.execute(
        f"UPDATE {table} SET {column} = CAST({column} AS TEXT) WHERE log_id = :t AND seq = :s",
        s=seq,
    )
    with log.admin.connect() as conn:
        kind = conn.execute(
            sa.text(f"SELECT typeof({column}) FROM {table} WHERE log_id = :t AND seq = :s"),
            {"t": log.tenant, "s": seq},
        ).scalar_one()
    assert kind == "text"


@SQLITE_ONLY
@pytest.mark.parametrize(("table", "column"), BINARY)
def test_a_binary_column_stored_as_text_is_named(full_log: Log, table: str, column: str) -> None:
    """On SQLite a binary column rewritten as text read as a str, and its bytes() aborted
    verify (TypeError; content, a leaf hash, no UTF-8, did not even read). It is named, its
    bytes checked as any row's, and the rest of the log checked."""
    _as_text(full_log, table, column, 5)
    full_log.execute("UPDATE events SET model_name = 'other' WHERE log_id = :t AND seq = 9")
    text = (
        f"log {full_log.tenant} sequence 5 event {full_log.event(5)}: column {table}.{column} "
        "is stored as text, not bytes (rewritten by raw SQL?)"
    )
    changed = (
        f"log {full_log.tenant} sequence 9 event {full_log.event(9)}: column model_name is "
        "'other' but the committed event says 'gpt-4o'"
    )
    problems = full_log.problems()
    assert problems == [text, changed], problems
    if table != "event_content":  # the hash chain reads them in either mode
        leaves = dataclasses.replace(full_log, mode="leaves").verify()
        assert [str(p) for p in leaves.problems] == [text]
    key = full_log.keys.verifier_keys()[0].encode()
    url = full_log.admin.url.render_as_string(hide_password=False)
    command = ["verify", "--database-url", url, "--log", full_log.tenant, "--verifier-key", key]
    command += ["--origin-prefix", ORIGIN_PREFIX, "--checkpoint-dir", str(full_log.checkpoint_dir)]
    assert main(command) == 1


@SQLITE_ONLY
@pytest.mark.parametrize("column", ["canonical", "leaf_hash"])
def test_an_erasure_record_stored_as_text_erases_nothing(
    full_log: Log, privacy_url: str, column: str
) -> None:
    """An erasure record rewritten as text on SQLite: verify aborted (TypeError) and so did
    VerifyEvent of the event it erased (storage.erasure_records). It is named, and names
    nothing, as any other damaged record."""
    record = _erase_second_event(full_log, privacy_url)
    table = "events" if column == "canonical" else "log_entries"
    _as_text(full_log, table, column, 15)
    assert full_log.problems() == [
        f"log {full_log.tenant} sequence 15 event {record}: column {table}.{column} is stored "
        "as text, not bytes (rewritten by raw SQL?)",
        f"log {full_log.tenant} sequence 2 event {full_log.event(2)}: content deleted without "
        "a privacy-erasure record naming the event",
    ]
    with full_log.admin.connect() as conn:  # what VerifyEvent asks
        assert list(storage.erasure_records(conn, full_log.tenant, -1)) == []
        assert not _recorded(conn, full_log.tenant, full_log.event(2), 2)


_NODE = ("integrity_nodes", "hash", "level = {} AND idx = {}", "node level {} index {}")
_ROOT = ("integrity_checkpoints", "root_hash", "tree_size = {}", "stored checkpoint at size {}")
TREE_AS_TEXT = [
    # (table, column, row, how rewritten, what verify names besides the column)
    (*_NODE, (0, 5), "CAST(hash AS TEXT)", []),
    (*_NODE, (1, 2), "CAST(hash AS TEXT)", []),
    (
        *_NODE,
        (3, 0),
        "'abc'",
        ["node level 3 index 0 (leaves 0..7) differs from the tree rebuilt from the stored events"],
    ),
    (*_ROOT, (12,), "CAST(root_hash AS TEXT)", []),
    (*_ROOT, (12,), "'abc'", ["stored checkpoint at size 12: root_hash column is not the note's"]),
]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("table", "column", "where", "place", "at", "value", "also"),
    TREE_AS_TEXT,
    ids=["leaf", "inner-node", "inner-node-abc", "root", "root-abc"],
)
def test_a_node_or_checkpoint_root_stored_as_text_is_named(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    column: str,
    where: str,
    place: str,
    at: tuple[int, ...],
    value: str,
    also: list[str],
) -> None:
    """On SQLite a node's hash or a checkpoint's root rewritten as text read as a str: its
    bytes() aborted verify (TypeError; a text that is no UTF-8 did not even read), in
    either mode, and an inner node whose text kept its bytes passed unnamed. It is named
    with its place and column, its bytes checked as any row's, and the rest of the log
    checked (here a node changed at leaves 12..13)."""
    row = f"WHERE log_id = :t AND {where.format(*at)}"
    log.execute(f"UPDATE {table} SET {column} = {value} {row}")
    log.execute(
        "UPDATE integrity_nodes SET hash = :h WHERE log_id = :t AND level = 1 AND idx = 6",
        h=bytes(32),
    )
    with log.admin.connect() as conn:
        kind = sa.text(f"SELECT typeof({column}) FROM {table} {row}")
        assert conn.execute(kind, {"t": log.tenant}).scalar_one() == "text"
    named = (
        f"{place.format(*at)}: column {table}.{column} is stored as text, not bytes "
        "(rewritten by raw SQL?)"
    )
    changed = (
        "node level 1 index 6 (leaves 12..13) differs from the tree rebuilt from the stored events"
    )
    problems, _ = _node_problems(log, monkeypatch)
    assert problems == sorted(f"log {log.tenant}: {p}" for p in [named, changed, *also])
    key = log.keys.verifier_keys()[0].encode()
    url = log.admin.url.render_as_string(hide_password=False)
    command = ["verify", "--database-url", url, "--log", log.tenant, "--verifier-key", key]
    command += ["--origin-prefix", ORIGIN_PREFIX, "--checkpoint-dir", str(log.checkpoint_dir)]
    assert main([*command, "--mode", log.mode]) == 1


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("table", "column"), [("integrity_nodes", "hash"), ("integrity_checkpoints", "root_hash")]
)
def test_a_tree_stored_as_text_leaves_its_log_unsigned_not_the_others(
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    table: str,
    column: str,
) -> None:
    """A restarted notary reads a log's edge and latest checkpoint from these rows: one
    rewritten as text aborted its whole round (TypeError, or a UTF-8 decode error), and no
    log was integrated or signed. That log is left unsigned, as a tree that does not extend
    its checkpoint; the others are signed."""
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    other = f"{tenant}-other"
    append(store, tenant, 15)
    append(store, other, 3)
    first = notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 15) and covers(notaries.url, other, 3))
    first.stop()
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:  # both on what the notary reads: the edge, the checkpoint
            conn.execute(
                sa.text(
                    f"UPDATE {table} SET {column} = CAST({column} AS TEXT) WHERE log_id = :t AND "
                    + ("level = 2 AND idx = 2" if table == "integrity_nodes" else "tree_size = 15")
                ),
                {"t": tenant},
            )
    finally:
        admin.dispose()
    append(store, tenant, 1)
    append(store, other, 1)
    with stepping(notaries.url, keys, tmp_path) as notary:
        notary.step()
    engine = sa.create_engine(notaries.url)
    try:
        with engine.connect() as conn:
            signed = storage.signed_sizes(conn)
    finally:
        engine.dispose()
    assert (signed[tenant], signed[other]) == (15, 4)


@SQLITE_ONLY
def test_a_leaf_hash_stored_as_text_stops_its_log_there_not_the_others(
    store: SqlEventStore,
    notaries: Notaries,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The notary reads the leaf hashes it integrates from log_entries: one rewritten as text
    aborted its whole round (TypeError, or a UTF-8 decode error), and no log was integrated
    or signed. That log is integrated and signed up to it, named once, and goes on once it
    is bytes again; the others are signed."""
    caplog.set_level(logging.ERROR, logger="aiaudit.integrity.notary")
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    other = f"{tenant}-other"
    append(store, tenant, 3)
    append(store, other, 2)
    leaf = "log_entries SET leaf_hash = CAST(leaf_hash AS {}) WHERE log_id = :t AND seq = 2"
    _as_admin_sql(admin_url, leaf.format("TEXT"), tenant)
    engine = sa.create_engine(notaries.url)

    def signed() -> dict[str, int]:
        with engine.connect() as conn:
            return storage.signed_sizes(conn)

    try:
        with stepping(notaries.url, keys, tmp_path) as notary:
            notary.step()  # integrates and signs each log as far as it reads
            assert signed() == {tenant: 2, other: 2}
            append(store, other, 1)
            wait_until(lambda: notary.step() or signed()[other] == 3)
            assert signed()[tenant] == 2
            with engine.connect() as conn:
                assert cursors.position(conn, "integrity", tenant) == 2
            assert [r.getMessage() for r in caplog.records] == [
                f"log {tenant} not integrated nor signed past its 2 leaves: log {tenant!r} "
                "sequence 2: column log_entries.leaf_hash is stored as text, not bytes "
                "(rewritten by raw SQL?); run aiaudit verify"
            ]
            _as_admin_sql(admin_url, leaf.format("BLOB"), tenant)  # repaired: it goes on
            wait_until(lambda: notary.step() or signed()[tenant] == 3)
    finally:
        engine.dispose()


def _as_admin_sql(admin_url: str, update: str, tenant: str) -> None:
    """``UPDATE`` + ``update`` (``:t``: the tenant) run by the store's owner (a tamperer)."""
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"UPDATE {update}"), {"t": tenant})
    finally:
        admin.dispose()


def test_consumer_cursors_past_the_head_are_named(log: Log) -> None:
    """A consumer resumes at its cursor: one moved past the head skips the sequences in
    between for good (the search index, alerting). Only the notary's was checked."""
    with log.admin.begin() as conn:
        for consumer, position in (("search-indexer", 1000), ("alerting", 16), ("other", 15)):
            conn.execute(
                sa.text(
                    "INSERT INTO consumer_cursors (consumer, log_id, position) VALUES (:c, :t, :p)"
                ),
                {"c": consumer, "t": log.tenant, "p": position},
            )
    assert log.problems() == [
        f"log {log.tenant}: consumer alerting has read 16 entries but the log head says 15 "
        "(cursor moved, or tail truncated?): sequences 15..15 would never reach it",
        f"log {log.tenant}: consumer search-indexer has read 1000 entries but the log head says "
        "15 (cursor moved, or tail truncated?): sequences 15..999 would never reach it",
    ]


def test_search_indexer_rows_past_the_head_are_named_for_what_they_are(log: Log) -> None:
    """The search indexer's rows of erasures applied past a held log, build plans and holds
    never lie past the head (the sequence after a record, the log's size, the held sequence
    + 1). Such rows were named, but as read positions skipping sequences: one of erasures
    applied past the head has standby replicas answer searches over a held log's content
    without waiting for any record, erased text the index still holds matching them."""
    long = "x" * 80  # shortened with a digest: the suffix stays last
    with log.admin.begin() as conn:
        for consumer, position in (
            (building_cursor_name(SearchSettings.index_prefix), 15),  # honest: the size
            (held_cursor_name(SearchSettings.index_prefix), 15),  # honest: held at 14
            (erasures_cursor_name(SearchSettings.index_prefix), 16),
            (erasures_cursor_name(long), 20),
            (building_cursor_name("other"), 40),
            (held_cursor_name("other"), 1000),
            (mended_cursor_name(SearchSettings.index_prefix), 15),  # honest: repaired 14
            (mended_cursor_name("other"), 17),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO consumer_cursors (consumer, log_id, position) VALUES (:c, :t, :p)"
                ),
                {"c": consumer, "t": log.tenant, "p": position},
            )
    past = "but the log head says 15 (cursor moved, or tail truncated?)"
    erased = (
        f"are applied to the search index {past}: standby replicas answer searches over "
        "content of a held log without waiting for any record, and what the index holds of "
        "erased text matches them"
    )
    assert sorted(log.problems()) == sorted(
        f"log {log.tenant}: {p}"
        for p in (
            f"consumer search-indexer#erasures says the erasure and retention records below "
            f"sequence 16 {erased}",
            f"consumer {erasures_cursor_name(long)} says the erasure and retention records "
            f"below sequence 20 {erased}",
            f"consumer search-indexer:other#building plans the search index built at 40 "
            f"entries {past}: reads of the log answer INDEX_BUILDING until it holds 40 entries",
            f"consumer search-indexer:other#held says the search index is held at sequence "
            f"999 {past}",
            f"consumer search-indexer:other#mended says the search index's hold at sequence 16 "
            f"was repaired {past}",
        )
    )


def test_search_erasures_row_not_after_a_record_is_named(
    log: Log, store: SqlEventStore, privacy_url: str
) -> None:
    """The leading indexer writes the sequence after the latest erasure or retention record
    it applied past a held log; standby replicas take every record below it as applied. A row
    raised (or moved) within the head to a sequence after no record passed verify, and the
    standbys answered searches over content that may still match erased text."""
    from aiaudit.common.erasure import erase

    privacy = open_store(privacy_url)
    try:
        erase(privacy, log.tenant, "data subject request", "dpo", [log.event(2)])  # at 15
    finally:
        privacy.close()
    store.append_group([[prepare(interaction(log.tenant), _now())] for _ in range(2)])
    name = erasures_cursor_name("an-index")
    with log.admin.begin() as conn:
        cursors.advance(conn, name, log.tenant, 16)  # as the indexer writes it
    assert log.verify().ok
    for position in (18, 17):
        log.execute(
            "UPDATE consumer_cursors SET position = :p WHERE consumer = :c AND log_id = :t",
            p=position,
            c=name,
        )
        assert log.problems() == [
            f"log {log.tenant}: consumer {name} says the erasure and retention records below "
            f"sequence {position} are applied to the search index, but sequence "
            f"{position - 1} is no such record (the indexer writes the sequence after one; "
            "cursor moved?): standby replicas take the records before it as applied and "
            "answer searches over content of a held log that may still match erased text"
        ]
    log.execute(
        "UPDATE consumer_cursors SET position = 19 WHERE consumer = :c AND log_id = :t", c=name
    )
    assert mentions(log.problems(), f"consumer {name} says", "head says 18")


def test_search_cursor_suffixes_are_the_indexers() -> None:
    """verify tells the search indexer's rows by the suffixes its backend writes."""
    assert (
        verify.SEARCH_ERASURES,
        verify.SEARCH_BUILDING,
        verify.SEARCH_HELD,
        verify.SEARCH_MENDED,
    ) == (ERASURES, BUILDING, HELD, MENDED)


def test_a_data_key_row_of_another_log_or_subject_is_named(sealed_log: Log) -> None:
    """Content opens by key id alone, so a key row moved to another log (or subject) passed,
    and erasing the subject then left its key: the erasure deletes the subject's row of the
    log (review, 2026-12-05)."""
    with sealed_log.admin.connect() as conn:
        (key_id,) = conn.execute(
            sa.text("SELECT key_id FROM content_keys WHERE log_id = :t AND subject = 'alice'"),
            {"t": sealed_log.tenant},
        ).scalars()
    sealed_log.execute("UPDATE content_keys SET log_id = 'other' WHERE log_id = :t")
    assert sealed_log.problems() == [
        f"log {sealed_log.tenant} sequence {seq} event {sealed_log.event(seq)}: content is "
        f"sealed under data key {key_id}, which is stored for log 'other' subject 'alice', not "
        f"for this event's log and subject ('{sealed_log.tenant}', 'alice'): erasing the "
        "subject would leave the key (key row altered?)"
        for seq in range(15)
    ]
    sealed_log.execute(
        "UPDATE content_keys SET log_id = :t, subject = 'bob' WHERE log_id = 'other'"
    )
    problems = sealed_log.problems()
    assert len(problems) == 15
    assert problems[0] == (
        f"log {sealed_log.tenant} sequence 0 event {sealed_log.event(0)}: content is sealed "
        f"under data key {key_id}, which is stored for log '{sealed_log.tenant}' subject 'bob', "
        f"not for this event's log and subject ('{sealed_log.tenant}', 'alice'): erasing the "
        "subject would leave the key (key row altered?)"
    )


def test_a_changed_integrated_leaf_under_a_checkpoint_is_a_changed_node(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint at 12 has the root of the tree rebuilt from the events: a level-0 node
    differing from an event below it is the node changed, not the event. It was named as an
    event changed, moved or forged after integration (review, 2026-12-05)."""
    log.execute(
        "UPDATE integrity_nodes SET hash = :h WHERE log_id = :t AND level = 0 AND idx = 4",
        h=bytes(32),
    )
    problems, _ = _node_problems(log, monkeypatch)
    assert problems == [
        f"log {log.tenant}: node level 0 index 4 (leaves 4..4) differs from the tree rebuilt "
        "from the stored events"
    ]


def test_a_changed_integrated_leaf_past_the_checkpoints_names_the_event(
    log: Log, store: SqlEventStore, notaries: Notaries, tmp_path: Path
) -> None:
    """No signed root says which of the two changed past the last checkpoint."""
    log.receipts += append(store, log.tenant, 6)
    with stepping(notaries.url, _SignerDown(log.keys), tmp_path) as notary:
        notary.step()
    log.execute(
        "UPDATE integrity_nodes SET hash = :h WHERE log_id = :t AND level = 0 AND idx = 17",
        h=bytes(32),
    )
    assert log.problems() == [
        f"log {log.tenant} sequence 17 event {log.event(17)}: leaf differs from the one the "
        "notary integrated at this sequence (event changed, moved or forged after integration)"
    ]


def _received(conn: sa.Connection, tenant: str, seq: int) -> str:
    """The receive time of a log's content row at ``seq``, as verify names it."""
    ct = event_content.c
    when = conn.execute(
        sa.select(ct.receive_time).where(ct.log_id == tenant, ct.seq == seq)
    ).scalar_one()
    return _instant(when)


def _instant(when: dt.datetime) -> str:
    if when.tzinfo is None:  # SQLite: naive UTC
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(sep=" ", timespec="microseconds")


def test_a_content_row_without_a_log_entry_within_the_head_is_named(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A content row at a sequence within the head whose entry has another receive time
    belongs to no event: every page read passed it over (content is joined on sequence and
    receive time), and it was named nowhere, in either mode. Content deleted (as an erasure
    does) leaves a page intact in the database all the same."""
    when = _now() + dt.timedelta(seconds=1)
    with log.admin.begin() as conn:
        _copy_content(conn, log.tenant, 3, 9, when)
    log.execute("DELETE FROM event_content WHERE log_id = :t AND seq IN (2, 10, 13)")
    expected = [
        f"log {log.tenant} sequence 9: content row received {_instant(when)} without a log "
        "entry (inserted, or its entry deleted?)"
    ]
    if log.mode == "full":  # no erasure record names them
        expected += [
            f"log {log.tenant} sequence {seq} event {log.event(seq)}: content deleted without a "
            "privacy-erasure record naming the event"
            for seq in (2, 10, 13)
        ]
    problems, in_database = _node_problems(log, monkeypatch)
    assert problems == sorted(expected)
    in_the_database = log.admin.dialect.name == "postgresql" and log.mode == "leaves"
    assert in_database == (3 if in_the_database else 0), "the page of sequence 9 is read by row"


def test_content_rows_left_by_deleted_entries_are_named(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries and event rows deleted, their content kept: the gap was named, the content
    rows left over were not (within a page the walk read, and past every page)."""
    with log.admin.connect() as conn:
        received = {seq: _received(conn, log.tenant, seq) for seq in range(15)}
    log.execute("DELETE FROM events WHERE log_id = :t AND seq = 5")
    log.execute("DELETE FROM log_entries WHERE log_id = :t AND seq = 5")

    def orphan(seq: int) -> str:
        return (
            f"log {log.tenant} sequence {seq}: content row received {received[seq]} without "
            "a log entry (inserted, or its entry deleted?)"
        )

    problems, _ = _node_problems(log, monkeypatch)
    assert problems == sorted(
        [f"log {log.tenant} sequence 5: sequences 5..5 are missing (rows deleted)", orphan(5)]
    )
    log.execute("DELETE FROM events WHERE log_id = :t")
    log.execute("DELETE FROM log_entries WHERE log_id = :t")  # no page at all
    problems, _ = _node_problems(log, monkeypatch)
    assert problems == sorted(
        [
            f"log {log.tenant} sequence 0: sequences 0..14 are missing (rows deleted)",
            *map(orphan, range(15)),
        ]
    )


def test_a_log_left_only_in_consumer_cursors_is_found(log: Log) -> None:
    """Every row of a log deleted but its consumers' cursors (and its exported checkpoints'
    copies): verify listed no such log, and a whole log deleted passed with exit 0."""
    with log.admin.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO consumer_cursors (consumer, log_id, position) VALUES (:c, :t, 15)"
            ),
            {"c": "search-indexer", "t": log.tenant},
        )
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs DISABLE TRIGGER USER")
    for table in ("event_content", "events", "log_entries", "integrity_nodes"):
        log.execute(f"DELETE FROM {table} WHERE log_id = :t")
    log.execute("DELETE FROM integrity_checkpoints WHERE log_id = :t")
    log.execute("DELETE FROM logs WHERE log_id = :t")
    if log.admin.dialect.name == "postgresql":
        log.execute("ALTER TABLE logs ENABLE TRIGGER USER")
    shutil.rmtree(log.checkpoint_dir / log.tenant)
    expected = [
        f"log {log.tenant}: found in consumer_cursors but has no row in logs (deleted?): "
        "checked with a head of 0",
        f"log {log.tenant}: the notary integrated 15 leaves but the log head says 0 (tail "
        "truncated?)",
        f"log {log.tenant}: consumer search-indexer has read 15 entries but the log head says 0 "
        "(cursor moved, or tail truncated?): sequences 0..14 would never reach it",
    ]
    report = verify_store(  # every log of the store, as `aiaudit verify` without --log
        log.admin,
        log.keys.verifier_keys(),
        ORIGIN_PREFIX,
        log.checkpoint_dir,
        mode=log.mode,
    )
    assert [str(p) for p in report.problems] == expected
    assert report.logs == 1
    assert log.problems() == expected  # not "no such log"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite has no logins
def test_a_read_only_login_verifies(log: Log, postgres: Postgres) -> None:
    """verify reads every consumer's cursor, which aiaudit_reader could not read: a read-only
    login failed at the first log (permission denied for table consumer_cursors)."""
    url = login(postgres, "aiaudit_reader")
    reader = sa.create_engine(url)
    try:
        as_reader = dataclasses.replace(log, admin=reader)
        report = as_reader.verify()
        assert report.ok, report.problems
        assert (report.events, report.checkpoints) == (15, 4)
        log.execute("UPDATE consumer_cursors SET position = 20 WHERE log_id = :t")
        assert as_reader.problems() == [
            f"log {log.tenant}: the notary integrated 20 leaves but the log head says 15 (tail "
            "truncated?)"
        ]
    finally:
        reader.dispose()
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {sa.make_url(url).username}")
