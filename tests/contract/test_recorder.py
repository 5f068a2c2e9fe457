"""``aiaudit_recorder``: a login that appends the suite's records and nothing else (PostgreSQL).

Search, alerting and integrity append access records (alerting also rule
changes) with the suite's login; as the writer, a compromised pod could append
forged interactions to any log (security review, 2026-12-05). The recorder
writes the event tables only through ``aiaudit_record`` (revision ``0008``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.alerting.component import _recorder
from aiaudit.alerting.v1 import alerting_service_pb2 as alerting_pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as alerting_grpc
from aiaudit.cli.main import main
from aiaudit.common import client
from aiaudit.common.access import AccessLog, access_event
from aiaudit.common.auth import DEV_CALLER
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import NewEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.integrity.v1 import integrity_service_pb2 as integrity_pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as integrity_grpc
from aiaudit.search.v1 import search_service_pb2 as search_pb
from aiaudit.search.v1 import search_service_pb2_grpc as search_grpc
from tests.conftest import Postgres, subprocess_env, write_keys
from tests.helpers import free_port, interaction, serve_process, wait_until
from tests.integrity.conftest import login

REFUSED = "aiaudit_record: records only"
RULE = "id: big-output\nseverity: low\nwhen: {field: usage.output_tokens, gt: 15}\n"


@pytest.fixture
def recorder(postgres: Postgres) -> Iterator[SqlEventStore]:
    """The store as a login granted only ``aiaudit_recorder``."""
    store = open_store(login(postgres, "aiaudit_recorder"))
    yield store
    store.close()


def _rows(pg: Postgres, tenant: str) -> dict[str, int]:
    """Rows of the tenant's log in each table, as the owner sees them."""
    with psycopg.connect(pg.admin_dsn) as conn:
        counts = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE log_id = %s", (tenant,)
            ).fetchone()[0]  # type: ignore[index]
            for table in ("log_entries", "events", "event_content")
        }
        size = conn.execute("SELECT size FROM logs WHERE log_id = %s", (tenant,)).fetchone()
    return {**counts, "size": size[0] if size else 0}


def _rule_change(tenant: str) -> ev.Event:
    e = ev.Event(
        event_id=f"rule-change-{uuid.uuid4()}",
        tenant_id=tenant,
        event_type=ev.EVENT_TYPE_RULE_CHANGE,
        actor=ev.Actor(user_id="someone", application="aiaudit-alerting"),
    )
    e.occurred_time.GetCurrentTime()
    e.attributes["rule.action"].string_value = "create"
    e.input.messages.add(role=ev.ROLE_USER, name="source").parts.add(text="model.name = 'x'")
    return e


def _first_record(store: SqlEventStore, tenant: str, details: dict[str, str]) -> None:
    """An access record that opens the tenant's log, appended as the store appends any record.

    Through the store, not ``AccessLog``, which never opens a log (a read of a tenant
    with none is NOT_FOUND).
    """
    now = dt.datetime.now(dt.UTC)
    store.append_group(
        [[prepare(access_event(DEV_CALLER, tenant, "SearchEvents", details, now), now)]]
    )


def test_a_recorder_appends_access_records_and_rule_changes(
    postgres: Postgres, recorder: SqlEventStore, tenant: str
) -> None:
    _first_record(recorder, tenant, {"filter": "user = 'bob'"})
    _recorder(recorder)(_rule_change(tenant))  # how alerting records through the suite's store
    now = dt.datetime.now(dt.UTC)
    many = [  # a batch the writer would COPY: one call of the function
        prepare(access_event(DEV_CALLER, tenant, "GetEvent", {"query": f"q{i}"}, now), now)
        for i in range(40)
    ]
    (receipts,) = recorder.append_group([many])
    assert isinstance(receipts, list) and receipts[-1].sequence == 41
    assert _rows(postgres, tenant) == {
        "log_entries": 42,
        "events": 42,
        "event_content": 42,
        "size": 42,
    }
    types = {e.to_event().event_type for e in recorder.read_log(tenant, 0, 100)}
    assert types == {ev.EVENT_TYPE_AUDIT_ACCESS, ev.EVENT_TYPE_RULE_CHANGE}


def test_a_recorder_seals_quoted_details_under_data_keys_it_makes(
    own_postgres: Postgres, tmp_path: Path, tenant: str
) -> None:
    """Its own database: sealed rows would stop other tests' consumers of every log."""
    store = open_store(
        login(own_postgres, "aiaudit_recorder"), keys=Keyring(FileKek(tmp_path / "k"))
    )
    try:
        log = AccessLog(store)
        _first_record(store, tenant, {"filter": "user = 'bob'"})
        # A deleted key raises the log's epoch (0007): the recorder makes a new one.
        with psycopg.connect(own_postgres.admin_dsn) as conn:
            conn.execute("DELETE FROM content_keys WHERE log_id = %s", (tenant,))
        log.record(DEV_CALLER, tenant, "SearchEvents", {"filter": "user = 'eve'"})
    finally:
        store.close()
    reader = open_store(own_postgres.admin_url, keys=Keyring(FileKek(tmp_path / "k")))
    try:
        got = [e.to_event() for e in reader.read_log(tenant, 0, 10)]
    finally:
        reader.close()
    assert [e.input.messages[0].parts[0].text for e in got] == ["", "user = 'eve'"]
    with psycopg.connect(own_postgres.admin_dsn) as conn:
        sealed = conn.execute(
            "SELECT count(*) FROM event_content WHERE log_id = %s AND content <> '{}'", (tenant,)
        ).fetchone()
    assert sealed == (2,)


@pytest.mark.parametrize("n", [1, 40])
def test_a_recorder_cannot_append_an_interaction(
    postgres: Postgres, recorder: SqlEventStore, tenant: str, n: int
) -> None:
    _first_record(recorder, tenant, {})
    now = dt.datetime.now(dt.UTC)
    forged = [prepare(interaction(tenant, text=f"forged {i}"), now) for i in range(n)]
    with pytest.raises((psycopg.Error, sa.exc.DBAPIError), match=REFUSED):
        recorder.append_group([forged])
    # Nor mixed in with a record: the whole transaction is refused.
    record = prepare(access_event(DEV_CALLER, tenant, "GetEvent", {}, now), now)
    with pytest.raises((psycopg.Error, sa.exc.DBAPIError), match=REFUSED):
        recorder.append_group([[record], forged])
    assert _rows(postgres, tenant) == {"log_entries": 1, "events": 1, "event_content": 1, "size": 1}


def _as(url: str, run: Callable[[sa.Connection], object]) -> None:
    """Runs ``run`` in a transaction of its own as the login at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


def _statement(sql: str, params: dict[str, object]) -> Callable[[sa.Connection], object]:
    """One SQL statement, for :func:`_as`."""
    return lambda conn: conn.execute(sa.text(sql), params)


def _called(*rows: tuple[NewEvent, int]) -> Callable[[sa.Connection], object]:
    """``aiaudit_record`` called with these rows as the store calls it (any arrays will do)."""
    from aiaudit.common.store.sql import _record  # here: the module collects on older code

    return lambda conn: _record(conn, list(rows), lambda e: (e.salt, e.stored_content))


_EVENT = (
    "INSERT INTO events (log_id, seq, receive_time, event_id, event_type, occurred_time, "
    "canonical) VALUES (:t, :seq, :at, :id, :type, :at, :canonical)"
)
_ENTRY = (
    "INSERT INTO log_entries (log_id, seq, event_id, leaf_hash, receive_time) "
    "VALUES (:t, :seq, :id, :leaf, :at)"
)
_CONTENT = (
    "INSERT INTO event_content (log_id, seq, receive_time, salt, content) "
    "VALUES (:t, :seq, :at, :salt, '{}')"
)


def test_a_recorder_writes_the_event_tables_only_through_the_checked_function(
    postgres: Postgres, recorder: SqlEventStore, tenant: str
) -> None:
    url = recorder.engine.url.render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC)
    forged = prepare(interaction(tenant, text="forged"), now)
    record = prepare(access_event(DEV_CALLER, tenant, "GetEvent", {}, now), now)
    _first_record(recorder, tenant, {})  # seq 0, head 1
    params: dict[str, object] = {
        "t": tenant,
        "seq": 1,
        "at": now,
        "id": forged.event.event_id,
        "type": "EVENT_TYPE_AUDIT_ACCESS",
        "canonical": forged.committed.canonical,
        "leaf": forged.committed.leaf_hash,
        "salt": b"\x00" * 32,
    }
    # No privilege on the tables themselves: not even a record's rows, nor the head.
    for sql in (
        _EVENT,
        _ENTRY,
        _CONTENT,
        "UPDATE logs SET size = 5 WHERE log_id = :t",
        "INSERT INTO logs (log_id, size) VALUES (:t || '-new', 0)",
    ):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for table"):
            _as(url, _statement(sql, params))
    dsn = url.replace("postgresql+psycopg", "postgresql")
    with (
        pytest.raises(psycopg.Error, match="permission denied for table log_entries"),
        psycopg.connect(dsn) as raw,
        raw.cursor().copy("COPY log_entries FROM STDIN"),
    ):
        pass
    # The function refuses what is not a record at the head of its log, with its own leaf.
    mislabelled = forged._replace(search=("EVENT_TYPE_AUDIT_ACCESS", *forged.search[1:]))
    misleafed = record._replace(committed=record.committed._replace(leaf_hash=b"\x01" * 32))
    elsewhere = prepare(access_event(DEV_CALLER, f"{tenant}-x", "GetEvent", {}, now), now)
    for rows, why in [
        ([(forged, 1)], "records only"),  # an interaction
        ([(mislabelled, 1)], "records only"),  # its canonical form says otherwise
        ([(misleafed, 1)], "records only"),  # a leaf of something else
        ([(record, 1), (forged, 2)], "records only"),  # nor mixed in with a record
        ([(record, 0)], "at the head"),  # content (and all) for an entry already there
        ([(record, 2)], "at the head"),  # a gap
        ([(elsewhere, 0)], "at the head"),  # a log without a head
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=why):
            _as(url, _called(*rows))
    assert _rows(postgres, tenant) == {"log_entries": 1, "events": 1, "event_content": 1, "size": 1}
    # Erased content of a record is not put back either.
    with psycopg.connect(postgres.admin_dsn) as conn:
        conn.execute("DELETE FROM event_content WHERE log_id = %s", (tenant,))
    seq0 = recorder.read_log(tenant, 0, 1)[0]
    # (a record received then, as its canonical form must say since revision 0010)
    back = prepare(access_event(DEV_CALLER, tenant, "GetEvent", {}, now), seq0.receive_time)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="at the head"):
        _as(url, _called((back, 0)))
    assert _rows(postgres, tenant) == {"log_entries": 1, "events": 1, "event_content": 0, "size": 1}
    # The function is the recorder's alone: PostgreSQL's EXECUTE for everyone is revoked.
    for other in (postgres.app_url, postgres.consumer_url, postgres.privacy_url):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function"):
            _as(other, _statement("SELECT aiaudit_record_head(:t)", params))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            _as(other, _called((record, 1)))


def test_the_writer_and_privacy_roles_are_unchanged(postgres: Postgres, tenant: str) -> None:
    """Interactions in one statement and by COPY (no row-level security); privacy erases."""
    writer = open_store(postgres.app_url)
    try:
        now = dt.datetime.now(dt.UTC)
        for n in (3, 40):
            writer.append_group(
                [[prepare(interaction(tenant, text=f"m{i}"), now) for i in range(n)]]
            )
    finally:
        writer.close()
    privacy = sa.create_engine(postgres.privacy_url)
    try:
        with privacy.begin() as conn:
            gone = conn.execute(
                sa.text("DELETE FROM event_content WHERE log_id = :t AND seq = 0"), {"t": tenant}
            )
            assert gone.rowcount == 1
    finally:
        privacy.dispose()
    assert _rows(postgres, tenant) == {
        "log_entries": 43,
        "events": 43,
        "event_content": 42,
        "size": 43,
    }


def test_servers_on_a_recorder_login_serve_and_record_and_the_log_verifies(
    own_postgres: Postgres, tmp_path: Path, tenant: str
) -> None:
    """Search, alerting and integrity with ``database_url`` a recorder, each its own login."""
    pg = own_postgres
    writer = open_store(pg.app_url)
    try:
        now = dt.datetime.now(dt.UTC)
        writer.append_group([[prepare(interaction(tenant, text=f"m{i}"), now) for i in range(3)]])
    finally:
        writer.close()
    keys = write_keys(tmp_path / "keys.yaml")
    port = free_port()
    config = {
        "address": f"127.0.0.1:{port}",
        "data_dir": str(tmp_path),
        "api_keys_file": str(tmp_path / "keys.yaml"),
        "database_url": login(pg, "aiaudit_recorder"),
        "content_keys": "none",
        "services": ["search", "alerting", "integrity"],
        "search": {"database_url": login(pg, "aiaudit_consumer"), "poll_interval": 0.05},
        "alerting": {"database_url": login(pg, "aiaudit_alerting"), "poll_interval": 0.05},
        "integrity": {
            "database_url": login(pg, "aiaudit_notary"),
            "checkpoint_interval": 0.05,
            "poll_interval": 0.05,
        },
    }
    (tmp_path / "aiaudit.yaml").write_text(yaml.safe_dump(config))
    proc = serve_process(["--config", str(tmp_path / "aiaudit.yaml")], subprocess_env())
    try:
        channel = client.channel(f"127.0.0.1:{port}", keys["admin"])
        search = search_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
        request = search_pb.SearchEventsRequest(tenant_id=tenant)

        def found() -> list[int]:
            return [r.event.event_type for r in search.SearchEvents(request).results]

        # Served, each search recorded: the records of the first ones are indexed too.
        wait_until(lambda: found().count(ev.EVENT_TYPE_INTERACTION) == 3)
        alerting = alerting_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
        rule = alerting_pb.Rule(source=RULE)
        alerting.CreateRule(
            alerting_pb.CreateRuleRequest(
                parent=f"tenants/{tenant}", rule_id="big-output", rule=rule
            )
        )
        integrity = integrity_grpc.IntegrityServiceStub(channel)  # type: ignore[no-untyped-call]
        key = integrity.GetVerifierKey(integrity_pb.GetVerifierKeyRequest()).verifier_keys[0]
        # Signed past the interactions, the access records and the rule change.
        wait_until(lambda: _checkpoint(integrity, tenant) >= 6)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    reader = open_store(pg.admin_url)
    try:
        kinds = [e.to_event().event_type for e in reader.read_log(tenant, 0, 100)]
    finally:
        reader.close()
    assert kinds[:3] == [ev.EVENT_TYPE_INTERACTION] * 3
    assert set(kinds[3:]) == {ev.EVENT_TYPE_AUDIT_ACCESS, ev.EVENT_TYPE_RULE_CHANGE}
    argv = ["verify", "--database-url", pg.admin_url, "--log", tenant, "--verifier-key", key]
    argv += ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    assert main(argv) == 0


def _checkpoint(stub: integrity_grpc.IntegrityServiceStub, tenant: str) -> int:
    """The size of the log's latest checkpoint (0: none yet); each call is itself recorded."""
    try:
        got = stub.GetCheckpoint(integrity_pb.GetCheckpointRequest(log_id=tenant))
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return 0
    return int(got.checkpoint.tree_size)


@pytest.mark.parametrize("event_id", ["req-42", str(uuid.uuid4()), "access-req-42"])
def test_a_recorder_cannot_claim_an_event_id_a_gateway_may_send(
    postgres: Postgres, recorder: SqlEventStore, tenant: str, event_id: str
) -> None:
    """Idempotency is per log and event id: a record under a gateway's id made its event a conflict.

    A record's id is its kind's (``access-<uuid>``, ``rule-change-<uuid>``),
    never one an SDK (a UUID) or a gateway (its request id) chooses.
    """
    now = dt.datetime.now(dt.UTC)
    claim = access_event(DEV_CALLER, tenant, "GetEvent", {}, now)
    claim.event_id = event_id  # its canonical form says so too: a consistent record
    with pytest.raises((psycopg.Error, sa.exc.DBAPIError), match=REFUSED):
        recorder.append_group([[prepare(claim, now)]])
    real = interaction(tenant, text="the gateway's")
    real.event_id = event_id
    writer = open_store(postgres.app_url)
    try:
        (receipts,) = writer.append_group([[prepare(real, now)]])
    finally:
        writer.close()
    assert isinstance(receipts, list) and not receipts[0].duplicate
    assert [e.to_event().event_type for e in recorder.read_log(tenant, 0, 10)] == [
        ev.EVENT_TYPE_INTERACTION
    ]


def test_a_recorder_cannot_store_columns_its_canonical_form_does_not_say(
    postgres: Postgres, recorder: SqlEventStore, tenant: str
) -> None:
    """The event id, log, times and search columns are each what ``verify`` derives."""
    url = recorder.engine.url.render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC)
    _first_record(recorder, tenant, {})  # seq 0, head 1

    def record(of: str = tenant) -> NewEvent:
        return prepare(access_event(DEV_CALLER, of, "GetEvent", {}, now), now)

    other_tenant = record(f"{tenant}-other")  # its canonical tenantId is another tenant's
    other_tenant.event.tenant_id = tenant  # ... but the row goes to this log
    other_id = record()
    other_id.event.event_id = f"access-{uuid.uuid4()}"  # the row's id is not the canonical's
    user = record()
    later = now + dt.timedelta(seconds=1)
    for forged in [
        other_tenant,
        other_id,
        user._replace(search=(*user.search[:2], "someone-else", *user.search[3:])),
        user._replace(search=(user.search[0], later, *user.search[2:])),  # occurred time
        user._replace(receive_time=later),
        user._replace(search=(*user.search[:5], "gpt-forged", *user.search[6:])),  # model
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="records only"):
            _as(url, _called((forged, 1)))
    assert _rows(postgres, tenant) == {"log_entries": 1, "events": 1, "event_content": 1, "size": 1}
    _as(url, _called((record(), 1)))  # the same record, as prepared, is taken
    assert _rows(postgres, tenant)["size"] == 2
