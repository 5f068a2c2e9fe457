"""Builders of test events, readers of gRPC error details, and process and thread runners."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common.keys import seal
from aiaudit.common.store import cursors
from aiaudit.common.store.sql import SqlEventStore, StoredEvent
from aiaudit.common.v1 import event_pb2 as ev

T = TypeVar("T")


def interaction(
    tenant: str,
    event_id: str | None = None,
    text: str = "hello",
    user: str = "alice",
    model: str = "gpt-4o",
) -> ev.Event:
    e = ev.Event(
        event_id=event_id or f"e-{uuid.uuid4().hex}",
        tenant_id=tenant,
        event_type=ev.EVENT_TYPE_INTERACTION,
        actor=ev.Actor(user_id=user, application="app"),
        model=ev.Model(provider="openai", name=model, temperature=0.5),
        input=ev.Input(messages=[ev.Message(role=ev.ROLE_USER, parts=[ev.Part(text=text)])]),
        output=ev.Output(
            messages=[ev.Message(role=ev.ROLE_ASSISTANT, parts=[ev.Part(text="answer " + text)])]
        ),
        usage=ev.Usage(input_tokens=10, output_tokens=20),
    )
    e.occurred_time.GetCurrentTime()
    return e


def _text(path: str, value: str) -> Callable[[ev.Event], None]:
    def put(e: ev.Event) -> None:
        *messages, field = path.split(".")
        target: Any = e
        for m in messages:
            target = getattr(target, m)
        setattr(target, field, value)

    return put


def _signal(e: ev.Event) -> None:
    e.trust_signals.add(name="user_rating", value=ev.AttributeValue(int_value=5))


_APPROVAL = ("approval.approval_id", _text("approval.approval_id", "ap-1"))
_DECISION = [_APPROVAL, ("approval.approver_id", _text("approval.approver_id", "bob"))]
_TASK = [("task.task_id", _text("task.task_id", "task-1"))]
_LIMIT = [("budget.limit_name", _text("budget.limit_name", "requests_per_minute"))]
_SUBJECT = [("privacy_action.subject_id", _text("privacy_action.subject_id", "alice"))]
REQUIRED_PAYLOAD: dict[int, list[tuple[str, Callable[[ev.Event], None]]]] = {
    ev.EVENT_TYPE_INTERACTION: [("model.name", _text("model.name", "gpt-4o"))],
    ev.EVENT_TYPE_TOOL_CALL: [("tool_call.name", _text("tool_call.name", "get_weather"))],
    ev.EVENT_TYPE_AGENT_HANDOFF: [
        ("agent_handoff.to_agent", _text("agent_handoff.to_agent", "executor"))
    ],
    ev.EVENT_TYPE_APPROVAL_CREATED: [_APPROVAL],
    ev.EVENT_TYPE_APPROVAL_APPROVED: _DECISION,
    ev.EVENT_TYPE_APPROVAL_REJECTED: _DECISION,
    ev.EVENT_TYPE_APPROVAL_EXPIRED: [_APPROVAL],
    ev.EVENT_TYPE_TASK_QUEUED: _TASK,
    ev.EVENT_TYPE_TASK_COMPLETED: _TASK,
    ev.EVENT_TYPE_TASK_FAILED: _TASK,
    ev.EVENT_TYPE_RATE_LIMITED: _LIMIT,
    ev.EVENT_TYPE_BUDGET_EXCEEDED: _LIMIT,
    ev.EVENT_TYPE_FEEDBACK: [("trust_signals", _signal)],
    ev.EVENT_TYPE_MODEL_CHANGE: [
        ("model_change.current.name", _text("model_change.current.name", "gpt-4o"))
    ],
    ev.EVENT_TYPE_PRIVACY_CONSENT_CHANGED: _SUBJECT,
    ev.EVENT_TYPE_PRIVACY_ACCESS_REQUESTED: _SUBJECT,
}
"""What ingest requires of a client's event of each type (path, how to set it): every type
a client may send, the rule's own statement of it, independent of ingest's table."""


def typed_event(
    tenant: str, event_type: int, event_id: str | None = None, leave_out: Iterable[str] = ()
) -> ev.Event:
    """A small event of ``event_type`` holding what ingest requires of it but ``leave_out``."""
    e = ev.Event(
        event_id=event_id or f"e-{uuid.uuid4().hex}",
        tenant_id=tenant,
        event_type=event_type,  # type: ignore[arg-type]
        actor=ev.Actor(user_id="alice", application="app"),
    )
    e.occurred_time.GetCurrentTime()
    skipped = set(leave_out)
    for path, put in REQUIRED_PAYLOAD[event_type]:
        if path not in skipped:
            put(e)
    return e


def sized_interaction(tenant: str, size: int) -> ev.Event:
    """An interaction of about `size` bytes serialised."""
    return interaction(tenant, text="x" * max(0, size - 200))


def field_violations(err: grpc.RpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations of a failed call, by field path."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = {}
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        if detail.Unpack(br):
            out.update({v.field: v.description for v in br.field_violations})
    return out


NOT_UTF8 = b"\xff\xfe\xfd\xfc"
"""Four bytes that are no UTF-8: in a string field, bytes no protobuf parser takes."""


def not_protobuf(request: Message, placeholder: str) -> bytes:
    """``request`` serialised, its string ``placeholder`` (4 ASCII characters) not UTF-8."""
    raw = request.SerializeToString()
    assert len(placeholder) == 4 and raw.count(placeholder.encode()) == 1
    return raw.replace(placeholder.encode(), NOT_UTF8)


def refused_raw(
    channel: grpc.Channel, method: str, raw: bytes, response_streaming: bool = False
) -> grpc.RpcError:
    """The error that ends a call of ``method`` (``/package.Service/Method``) sent ``raw`` as is.

    A response stream is read to its end.
    """
    same: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    try:
        if response_streaming:
            list(channel.unary_stream(method, same, same)(raw, timeout=10))
        else:
            channel.unary_unary(method, same, same)(raw, timeout=10)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"{method} answered a request that is not protobuf")


def error_info(err: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The reason and metadata of a failed call's ErrorInfo."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason, dict(info.metadata)
    raise AssertionError(f"no ErrorInfo in {err}")


def assert_not_protobuf(err: grpc.RpcError, message_type: str) -> None:
    """``err`` is INVALID_ARGUMENT REQUEST_NOT_PROTOBUF naming ``message_type`` (not INTERNAL)."""
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert error_info(err) == ("REQUEST_NOT_PROTOBUF", {"message_type": message_type})
    assert f"not a valid {message_type}" in (err.details() or "")


def assert_unauthenticated(
    address: str, method: str, raw: bytes, response_streaming: bool = False
) -> None:
    """Callers without a key, or with an unknown one, sending ``raw`` hear only that."""
    from aiaudit.common import client

    for key in (None, "not-a-key"):
        with client.channel(address, key) as channel:
            err = refused_raw(channel, method, raw, response_streaming)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (key, err.code(), err.details())
        assert "protobuf" not in (err.details() or "")


_TRACED = """
import json, sys, tracemalloc
from aiaudit.cli.main import main
exec(sys.argv[3])
tracemalloc.start()
code = main(json.loads(sys.argv[1]))
peak = tracemalloc.get_traced_memory()[1]
with open(sys.argv[2], "w") as out:
    json.dump([code, peak], out)
"""


def traced_peak(argv: list[str], out: Path, setup: str = "") -> tuple[int, int]:
    """(Exit code, peak bytes traced) of ``aiaudit ARGV`` in a process of its own.

    tracemalloc counts every thread's allocations: in the test's process a fixture's
    notary, signing meanwhile, added up to 3 MB. ``setup`` runs in the child before
    tracing starts; ``out`` is a file it may write.
    """
    subprocess.run([sys.executable, "-c", _TRACED, json.dumps(argv), str(out), setup], check=True)
    code, peak = json.loads(out.read_text())
    return int(code), int(peak)


def free_port() -> int:
    """A loopback port free right now (for a server process that must be told its port).

    One below the kernel's ephemeral range, which ``bind(0)`` and every outgoing
    connection draw from: a port from there could be taken as a connection's own before
    the server binds it, or by a client retrying it while the server is down (a TCP
    connection to itself), and the server then could not start.
    """
    first_ephemeral = _ephemeral_ports()[0]
    for _ in range(100):
        port = random.randrange(min(10_000, first_ephemeral // 2), first_ephemeral)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another
            return port
    raise RuntimeError(f"no free loopback port below {first_ephemeral} after 100 tries")


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default if it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except OSError:
        return 32768, 60999
    return int(low), int(high)


def close_listener(listener: socket.socket) -> None:
    """Closes a listening socket and wakes the thread blocked in its ``accept``.

    On Linux a close alone wakes none: the thread stayed blocked for the rest of the run,
    its port bound, one more for every test that made such a listener.
    """
    with contextlib.suppress(OSError):  # not connected: nothing to shut down
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def clear_on_postgres(url: str) -> dict[str, str]:
    """``content_keys: none`` for a PostgreSQL store: ``serve`` refuses it unset there, and the
    tests stored content in clear on PostgreSQL before; nothing for SQLite, whose default
    seals under a KEK file beside the store."""
    return {"content_keys": "none"} if url.startswith("postgresql") else {}


def clear_on_postgres_env(url: str) -> dict[str, str]:
    """:func:`clear_on_postgres` as the environment of an ``aiaudit serve`` process."""
    return {f"AIAUDIT_{k.upper()}": v for k, v in clear_on_postgres(url).items()}


def serve_process(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``aiaudit serve ARGS`` as a process of its own, returned once it is serving."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiaudit.cli.main", "serve", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints its address once it is serving
    if b"serving on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"aiaudit serve {' '.join(args)} did not start: {line!r}")
    return proc


def run_into_closed_pipe(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``aiaudit ARGS`` as a process of its own whose stdout is a pipe with no reader left:
    every write fails alike, each run (``aiaudit ... | head`` once ``head`` has gone)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "aiaudit.cli.main", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)


def concurrently(n: int, work: Callable[[int], None]) -> None:
    """Runs ``work(0) .. work(n - 1)`` in threads at once; re-raises the first failure."""
    failures: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def this_thread_only(instead: Callable[..., T], real: Callable[..., T]) -> Callable[..., T]:
    """``instead`` for calls from the calling thread, ``real`` for any other thread's.

    For a stand-in of a module's function shared by the whole process (``os.fsync``,
    ``os.write``, ``os.scandir``): a thread an earlier test left running (a notary, a
    server) calls it too, and must neither meet the test's fault nor add to its record.
    """
    here = threading.get_ident()

    def either(*args: Any, **kwargs: Any) -> T:
        return (instead if threading.get_ident() == here else real)(*args, **kwargs)

    return either


def wait_until(condition: Callable[[], T], timeout: float = 30.0) -> T:
    """Polls ``condition`` until it is truthy and returns its value.

    Synchronisation on state, not on time: the deadline only bounds a failure.
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)
    return value


def whole_log(store: SqlEventStore, log_id: str) -> list[StoredEvent]:
    """Every entry of a log, in order, read a page at a time.

    A fixed limit misses what a test looks for: a search polled while a new index
    builds the log writes an access record per poll, over a thousand in 25 s
    (fresh-clone CI, 2026-12-07, an export's record past the first 1,000 read).
    """
    entries: list[StoredEvent] = []
    while page := store.read_log(log_id, len(entries), 1000):
        entries.extend(page)
    return entries


def open_log(store: SqlEventStore | str, tenant: str) -> ev.Event:
    """The tenant's log, opened by one event (sequence 0), which it returns.

    A read through ``*`` alone of a tenant with no log is NOT_FOUND, its access record
    never opening one (the suites' keys are ``*`` keys).
    ``store``: the store, or its URL.
    """
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    first = interaction(tenant, text="log opened", user="log-opener")
    # Nothing a test's rule could fire on (the engine may evaluate it after the test's rule
    # is created): no output, no usage (a rule on output tokens fired on it in one CI run).
    first.ClearField("output")
    first.ClearField("usage")
    now = dt.datetime.now(dt.UTC)
    opened = open_store(store) if isinstance(store, str) else store
    try:
        opened.append_group([[prepare(first, now)]])
    finally:
        if opened is not store:
            opened.close()
    return first


def access_records(store_url: str, tenant: str) -> list[ev.Event]:
    """The tenant's EVENT_TYPE_AUDIT_ACCESS events, in log order (read from the store)."""
    from aiaudit.common.store import open_store

    store = open_store(store_url)
    try:
        events = [e.to_event() for e in whole_log(store, tenant)]
    finally:
        store.close()
    return [e for e in events if e.event_type == ev.EVENT_TYPE_AUDIT_ACCESS]


def serve_http(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A threaded HTTP server on a free loopback port, logging no request (shut it down at
    the end); its base URL."""
    handler.log_message = _unlogged  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _unlogged(self: BaseHTTPRequestHandler, format: str, *args: object) -> None:
    pass


def flip_sealed_content(url: str, tenant: str, seq: int) -> None:
    """Alters one byte of an event's sealed content row, as someone with database access could."""
    engine = sa.create_engine(url)
    where = "WHERE log_id = :t AND seq = :s"
    try:
        with engine.begin() as conn:
            sealed = conn.execute(
                sa.text(f"SELECT content FROM event_content {where}"), {"t": tenant, "s": seq}
            ).scalar_one()
            assert seal.is_sealed(sealed), "the content is sealed"
            conn.execute(
                sa.text(f"UPDATE event_content SET content = :c {where}"),
                {"c": sealed[:-1] + bytes([sealed[-1] ^ 1]), "t": tenant, "s": seq},
            )
    finally:
        engine.dispose()


def secret_word() -> str:
    """A word found nowhere else."""
    return f"q{uuid.uuid4().hex}"


def holding(files: Iterable[Path], secret: str) -> list[str]:
    """The files whose raw bytes hold ``secret`` (a file deleted meanwhile holds nothing).

    Its last 24 characters are looked for: an index stores the prefix a term shares with
    the one before it only once (FTS5's and Lucene's term dictionaries), so only the
    word's random tail is sure to be there in one piece.
    """
    tail = secret[-24:].encode()
    found = []
    for f in files:
        try:
            if tail in f.read_bytes():
                found.append(f.name)
        except FileNotFoundError:
            continue
    return found


def this_hosts_other_address() -> str:
    """An address of this host that is not loopback: the interface a route leaves by (no packet
    is sent), else the host's name (a name is another host to the clear-text rules)."""
    import ipaddress

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if address and not ipaddress.ip_address(address).is_loopback:
        return address
    return socket.gethostname()


@contextlib.contextmanager
def empty_database(admin_dsn: str) -> Iterator[str]:
    """A new PostgreSQL database without the schema, on the server of ``admin_dsn``: its DSN.

    Dropped afterwards, its connections closed.
    """
    name = f"aiaudit_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of a libpq DSN."""
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@contextlib.contextmanager
def store_as_left(
    request: Any, tmp_path: Path, revision: str, then: Callable[[sa.Connection], None]
) -> Iterator[sa.Engine]:
    """A new store (``request.param``: sqlite or postgresql) as an earlier version left it.

    Migrated to ``revision`` (or ``heads``), then ``then`` in the same transaction
    (what that version's tables looked like); a PostgreSQL database of its own,
    dropped afterwards.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(cursors.__file__).with_name("migrations")))
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        else:
            admin_dsn = request.getfixturevalue("postgres").admin_dsn
            url = sqlalchemy_url(stack.enter_context(empty_database(admin_dsn)))
        engine = sa.create_engine(url)
        stack.callback(engine.dispose)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            then(conn)
        yield engine


def store_as_text(url: str, tenant: str, seq: int, column: str) -> None:
    """Rewrites an event's binary column (``table.column``) as text, as raw SQL may on SQLite."""
    table, name = column.split(".")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"UPDATE {table} SET {name} = CAST({name} AS TEXT) "
                    "WHERE log_id = :t AND seq = :s"
                ),
                {"t": tenant, "s": seq},
            )
    finally:
        engine.dispose()
