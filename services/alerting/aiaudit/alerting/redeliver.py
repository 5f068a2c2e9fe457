"""Dead-lettered deliveries sent again (``aiaudit alerting redeliver``).

A ``dead`` row is under no lease: deliverers claim ``pending`` rows only and
record an outcome only while the row is still pending with their attempt count
and lease time. So the chosen dead rows go back to pending in one transaction
that touches dead rows only, and replicas keep running:

- a row an attempt holds is pending, so it is left alone and that attempt's
  outcome stands (it may be dead a moment later: run the command again);
- a deliverer whose lease ran out before the row died cannot write over the
  revived row: its outcome needs its own lease time, and the revival sets a
  fresh due time (now);
- the attempt count starts again at 0, so the row gets the full
  ``max_attempts`` (about 80 minutes with the defaults) before it dies again;
- ``last_error`` is kept: until the next attempt records its own outcome, a
  pending row with 0 attempts and an error reads as "re-queued after this".

The payload is not touched: an erasure rewrites the payload of every row of an
alert naming an erased event, dead ones too, and the claim reads the payload
it sends, so a scrubbed payload is what goes out again.

Re-sent alerts hand event excerpts to a sink again, so the re-send is recorded
in each affected tenant's log (:mod:`aiaudit.alerting.redeliver_record`): the
``record`` hook runs in the transaction, once the rows are locked and before
any moves; if it raises, the transaction rolls back and nothing moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from aiaudit.alerting.tables import deliveries

_CHUNK = 500
"""Keys per UPDATE on SQLite, which limits the bound parameters of a statement
(PostgreSQL takes a tenant's ids as one array)."""


@dataclass(frozen=True)
class Selection:
    """Which dead rows to re-send: one sink's, optionally narrowed down."""

    sink: str
    tenant: str = ""
    since: dt.datetime | None = None
    """Only rows dead-lettered at or after this (aware) time."""
    alert_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dead:
    """A dead row as it was before the re-send."""

    tenant: str
    alert_id: str
    attempts: int
    dead_time: dt.datetime
    last_error: str | None


@dataclass(frozen=True)
class Skipped:
    """A row named by alert id that is not re-sent (not dead, or dead before ``since``)."""

    tenant: str
    alert_id: str
    status: str


@dataclass
class Outcome:
    """What was (or, in a dry run, would be) re-sent, and what named ids did not match."""

    rows: list[Dead] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    """Named alert ids with no row of the sink (and tenant) at all."""
    records: list[tuple[str, str]] = field(default_factory=list)
    """(tenant, event id) of the records the re-send left in the tenants' logs."""


Recorder = Callable[[sa.Connection, Sequence[Dead]], list[tuple[str, str]]]
"""Records the re-send of these (locked) rows in their tenants' logs, in or before the
commit of ``conn``'s transaction; (tenant, event id) of each record. Raises if it
cannot: then nothing moves."""


def _utc(t: dt.datetime) -> dt.datetime:
    """SQLite hands back naive times (stored as UTC)."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _where(s: Selection, status: str = "dead") -> sa.ColumnElement[bool]:
    d = deliveries
    cond = [d.c.sink == s.sink, d.c.status == status]
    if s.tenant:
        cond.append(d.c.tenant == s.tenant)
    if s.since is not None:  # SQLite compares stored text: both sides in UTC
        cond.append(d.c.next_attempt_time >= s.since.astimezone(dt.UTC))
    if s.alert_ids:
        cond.append(d.c.alert_id.in_(s.alert_ids))
    return sa.and_(*cond)


def _dead(conn: sa.Connection, s: Selection, lock: bool) -> list[Dead]:
    d = deliveries
    query = (
        sa.select(d.c.tenant, d.c.alert_id, d.c.attempts, d.c.next_attempt_time, d.c.last_error)
        .where(_where(s))
        .order_by(d.c.next_attempt_time, d.c.tenant, d.c.alert_id)
    )
    if lock:  # PostgreSQL: held until commit; SQLite: the transaction holds the write lock
        query = query.with_for_update()
    return [
        Dead(r.tenant, r.alert_id, r.attempts, _utc(r.next_attempt_time), r.last_error)
        for r in conn.execute(query)
    ]


def _unmatched(conn: sa.Connection, s: Selection, rows: Sequence[Dead]) -> Outcome:
    """The outcome, with the named ids that are not among ``rows`` and why."""
    out = Outcome(rows=list(rows))
    if not s.alert_ids:
        return out
    d = deliveries
    taken = {(r.tenant, r.alert_id) for r in rows}
    query = sa.select(d.c.tenant, d.c.alert_id, d.c.status).where(
        d.c.sink == s.sink, d.c.alert_id.in_(s.alert_ids)
    )
    if s.tenant:
        query = query.where(d.c.tenant == s.tenant)
    seen: set[str] = set()
    for r in conn.execute(query.order_by(d.c.tenant, d.c.alert_id)):
        seen.add(r.alert_id)
        if (r.tenant, r.alert_id) not in taken:
            out.skipped.append(Skipped(r.tenant, r.alert_id, r.status))
    out.not_found = [a for a in dict.fromkeys(s.alert_ids) if a not in seen]
    return out


def _by_tenant(rows: Sequence[Dead]) -> dict[str, list[str]]:
    """The rows' alert ids by tenant."""
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r.tenant, []).append(r.alert_id)
    return out


def _move(conn: sa.Connection, sink: str, tenant: str, ids: list[str], now: dt.datetime) -> None:
    """Moves these locked dead rows of one tenant back to pending, due ``now``.

    SQLite finds each row by the primary key (tenant, alert id, sink), a chunk
    of ids at a time. PostgreSQL takes all of the tenant's ids in one statement
    (one array parameter): whatever plan its statistics choose, by the key or
    through the tenant's rows, it reads them once. Until 2026-12-07 the rows
    were named as (tenant, alert id) pairs in chunks of 500, which PostgreSQL
    searched by the tenant alone and SQLite by the status, testing every such
    row against each chunk: 0.7 s a chunk, 36 s for 100,000 dead rows on
    PostgreSQL, the rows locked meanwhile (per-tenant chunks of ids still took
    up to 30 s where stale statistics had PostgreSQL walk the tenant's rows).
    """
    d = deliveries
    if conn.dialect.name == "postgresql":
        named = d.c.alert_id == sa.any_(sa.literal(ids, sa.ARRAY(sa.String)))
    else:
        named = d.c.alert_id.in_(ids)
    # The status is checked, not searched: SQLite, which keeps no statistics, took the
    # status index (every dead row of the outbox) over the key.
    still_dead = d.c.status.concat("") == "dead"
    moved = conn.execute(
        sa.update(d)
        .where(d.c.tenant == tenant, named, d.c.sink == sink, still_dead)
        .values(status="pending", attempts=0, next_attempt_time=now)
    ).rowcount
    if moved != len(ids):  # cannot happen under the lock; never half a selection
        raise RuntimeError(f"{len(ids) - moved} selected dead row(s) changed meanwhile")


def dry_run(engine: sa.Engine, s: Selection) -> Outcome:
    """What :func:`redeliver` would move now; reads the same rows and writes nothing."""
    with engine.connect() as conn:
        return _unmatched(conn, s, _dead(conn, s, lock=False))


def redeliver(engine: sa.Engine, s: Selection, now: dt.datetime, record: Recorder) -> Outcome:
    """Moves the selected dead rows back to pending, due ``now``, in one transaction.

    ``record`` is called with the rows once they are locked, before any moves
    (not when there are none). On PostgreSQL the rows are locked as they are
    read, so a concurrent run waits and then finds them no longer dead (each
    row is re-queued, and recorded, once); on SQLite the transaction takes the
    write lock up front (``sqlite_immediate``).
    """
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        rows = _dead(conn, s, lock=True)
        records = record(conn, rows) if rows else []
        postgres = conn.dialect.name == "postgresql"
        for tenant, ids in _by_tenant(rows).items():
            step = len(ids) if postgres else _CHUNK
            for i in range(0, len(ids), step):
                _move(conn, s.sink, tenant, ids[i : i + step], now)
        out = _unmatched(conn, s, rows)
        out.records = records
        return out
