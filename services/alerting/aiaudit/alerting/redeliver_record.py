"""The record a re-send of dead-lettered alerts leaves in each tenant's log.

Re-sent alerts hand event excerpts to a sink again: like a read of audit data,
the re-send is an ``EVENT_TYPE_AUDIT_ACCESS`` record (action
:data:`ACTION`) in the log of each tenant whose rows move. It names the
operator (``--requested-by``, as actor and detail), the database login that
moved the rows, the sink, the selection (every tenant or one, ``--since``,
the ``--alert-id`` asked for that name the tenant's own rows) and the alert
ids moved, in parts as reads name what they hand out
(:func:`access.named_parts`): one record per part, each with the tenant's
total ``moved`` and numbered ``part`` of ``parts``, as a batch of proofs
numbers its records (until 2026-12-07 unnumbered). A tenant's record names
none of another tenant's alerts: until 2026-12-07 each named every id asked,
another tenant's and typos too.

The records are written in the re-send's transaction, once its rows are
locked and before any moves (:data:`~aiaudit.alerting.redeliver.Recorder`): a
record that cannot be written fails the command with nothing moved. A record
of a re-send whose own commit then failed is possible, as for reads (a record
without the act is allowed, never the reverse).

- :func:`in_transaction`: the outbox's login may append (SQLite, where the file
  has one writer at a time; the suite's own login): the records commit with
  the move.
- :func:`through`: alerting's login (``aiaudit_alerting``) may not append to
  the log, by design. The records go through the suite's store (a login in
  ``aiaudit_recorder`` or ``aiaudit_writer``), every tenant's in one
  transaction, and are then looked up through the outbox's connection: they
  must be entries of the logs of the database whose rows move (a URL naming
  another database took them unnoticed otherwise, as it once did export's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

import sqlalchemy as sa

from aiaudit.alerting.redeliver import Dead, Recorder, Selection
from aiaudit.alerting.tables import deliveries
from aiaudit.common import access
from aiaudit.common.auth import Caller
from aiaudit.common.store import entries
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import Conflict, LogBusyError, NewEvent, SqlEventStore

ACTION = "alerting.redeliver"

LOCK_TIMEOUT = access.RECORD_WAIT_SECONDS
"""Seconds :func:`through` waits for a log's head held elsewhere (an erasure in
progress, a session left open) before it gives up, nothing moved."""

NEEDS = (
    "the record needs a login allowed to append records to the tenants' logs "
    "(aiaudit_recorder or aiaudit_writer): database_url or --record-database-url"
)


class NotRecordedError(Exception):
    """The re-send's records could not be written (or went elsewhere): nothing was moved."""


def records(
    s: Selection,
    requested_by: str,
    database_user: str,
    rows: Sequence[Dead],
    now: dt.datetime,
    asked: Mapping[str, Sequence[str]],
) -> list[NewEvent]:
    """The records of re-sending ``rows``: per tenant, one per part of the alert ids moved.

    ``asked``: per tenant, the ``--alert-id`` asked for that name its rows (:func:`asked_of`).
    """
    moved: dict[str, list[str]] = {}
    for r in rows:
        moved.setdefault(r.tenant, []).append(r.alert_id)
    out = []
    for tenant, ids in moved.items():
        caller = Caller(requested_by, frozenset({tenant}), frozenset())
        parts = access.named_parts(ids)
        for i, part in enumerate(parts, 1):
            details: Mapping[str, str | int | bool] = {
                "requested_by": requested_by,
                "database_user": database_user,
                "sink": s.sink,
                "all_tenants": not s.tenant,
                "since": _iso(s.since),
                "asked_alert_ids": ",".join(asked.get(tenant, ())),
                "moved": len(ids),
                "alerts": part,
                "part": i,
                "parts": len(parts),
            }
            out.append(prepare(access.access_event(caller, tenant, ACTION, details, now), now))
    return out


def asked_of(conn: sa.Connection, s: Selection, tenants: Collection[str]) -> dict[str, list[str]]:
    """Per tenant, the ids asked (in the order asked) that name its rows of the sink.

    Each tenant's record names only these: an id of another tenant's alert, or
    of no row at all, is none of this tenant's business.
    """
    if not s.alert_ids or not tenants:
        return {}
    d = deliveries.c
    found = conn.execute(
        sa.select(d.tenant, d.alert_id).where(
            d.sink == s.sink, d.tenant.in_(sorted(tenants)), d.alert_id.in_(s.alert_ids)
        )
    )
    theirs: dict[str, set[str]] = {}
    for tenant, alert_id in found:
        theirs.setdefault(tenant, set()).add(alert_id)
    unique = list(dict.fromkeys(s.alert_ids))
    return {t: [a for a in unique if a in ids] for t, ids in theirs.items()}


def _made(
    conn: sa.Connection, s: Selection, requested_by: str, rows: Sequence[Dead]
) -> list[NewEvent]:
    """The records of re-sending ``rows``, as ``conn``'s login moves them."""
    asked = asked_of(conn, s, {r.tenant for r in rows})
    user = conn.engine.url.username or ""
    return records(s, requested_by, user, rows, dt.datetime.now(dt.UTC), asked)


def _iso(t: dt.datetime | None) -> str:
    """RFC 3339 in UTC with ``Z``, as the command prints it; empty for no time."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else ""


def _ids(prepared: Sequence[NewEvent]) -> list[tuple[str, str]]:
    return [(r.log_id, r.event.event_id) for r in prepared]


def in_transaction(store: SqlEventStore, s: Selection, requested_by: str) -> Recorder:
    """Appends the records in the re-send's own transaction, through ``store`` (its login)."""

    def record(conn: sa.Connection, rows: Sequence[Dead]) -> list[tuple[str, str]]:
        prepared = _made(conn, s, requested_by, rows)
        try:
            for r in prepared:
                store.append_record(conn, r)
        except Exception as exc:  # whatever refused it (no grant, a trigger): nothing moves
            raise NotRecordedError(_refused(conn.engine.url, exc)) from None
        return _ids(prepared)

    return record


def through(store: SqlEventStore, s: Selection, requested_by: str) -> Recorder:
    """Commits the records through ``store`` (another login), then checks where they went."""

    def record(conn: sa.Connection, rows: Sequence[Dead]) -> list[tuple[str, str]]:
        prepared = _made(conn, s, requested_by, rows)
        try:
            outcomes = store.append_group([[r] for r in prepared], lock_timeout=LOCK_TIMEOUT)
        except Exception as exc:  # no grant, server down, a head held past the timeout
            raise NotRecordedError(_refused(store.engine.url, exc)) from None
        if any(isinstance(o, Conflict) for o in outcomes):  # random ids: never expected
            raise NotRecordedError(f"a record id of {ACTION} was taken; nothing was moved")
        for log_id, event_id in _ids(prepared):
            if entries.entry_sequence(conn, log_id, event_id) is None:
                raise NotRecordedError(_elsewhere(store.engine.url, conn.engine.url, log_id))
        return _ids(prepared)

    return record


def _where(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _refused(url: sa.URL, exc: Exception) -> str:
    """Why nothing moved; what the command needs, unless a log's head was held too long."""
    why = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    fix = "run it again" if isinstance(exc, LogBusyError) else NEEDS
    return (
        f"the access record could not be written to {_where(url)} "
        f"({' '.join(str(why).split())}); nothing was moved ({fix})"
    )


def _elsewhere(written: sa.URL, moved: sa.URL, log_id: str) -> str:
    return (
        f"the access record went to another store than the outbox's (written to "
        f"{_where(written)}, not an entry of log {log_id!r} in {_where(moved)}): the "
        "record's store must be the same database, as a login allowed to append; "
        "nothing was moved (the stray record stays where it went)"
    )
