"""SQL storage of rules, alerts, window state and the delivery outbox (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import sys
import threading
import uuid
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiaudit_native
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.model import OPEN_STATES, Alert, StoredRule
from aiaudit.alerting.tables import alerts, deliveries, epochs, heads, rules, windows
from aiaudit.alerting.tables import store as store_t


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _labels(stored: str) -> dict[str, str]:
    r"""An alert's labels, a lone surrogate read as U+FFFD.

    Rules could carry one (a YAML escape, refused since 2026-12-06); JSON kept it as
    ``\ud800``, and every ListAlerts or WatchAlerts answer holding the alert failed
    UNKNOWN, as protobuf strings are UTF-8.
    """
    return {
        _LONE_SURROGATE.sub("\ufffd", k): _LONE_SURROGATE.sub("\ufffd", str(v))
        for k, v in json.loads(stored).items()
    }


def alert_from_row(row: sa.Row[tuple[object, ...]]) -> Alert:
    """Row of ``alerting_alerts`` to an Alert."""
    m = row._mapping
    return Alert(
        tenant=m["tenant"],
        alert_id=m["alert_id"],
        rule_id=m["rule_id"],
        dedup_key=m["dedup_key"],
        state=m["state"],
        severity=m["severity"],
        summary=m["summary"],
        event_ids=json.loads(m["event_ids"]),
        evidence=[Finding(**x) for x in json.loads(m["evidence"])],
        labels=_labels(m["labels"]),
        occurrence_count=m["occurrence_count"],
        create_time=_utc(m["create_time"]),  # type: ignore[arg-type]
        last_seen_time=_utc(m["last_seen_time"]),  # type: ignore[arg-type]
        acknowledged_by=m["acknowledged_by"] or "",
        acknowledge_time=_utc(m["acknowledge_time"]),
        resolved_by=m["resolved_by"] or "",
        resolve_time=_utc(m["resolve_time"]),
        resolve_reason=m["resolve_reason"] or "",
        change_seq=int(m["change_seq"]),
    )


def alert_values(a: Alert) -> dict[str, object]:
    """An Alert as column values."""
    return {
        "tenant": a.tenant,
        "alert_id": a.alert_id,
        "rule_id": a.rule_id,
        "dedup_key": a.dedup_key,
        "state": a.state,
        "severity": a.severity,
        "summary": a.summary,
        "event_ids": json.dumps(a.event_ids),
        "evidence": json.dumps([dataclasses.asdict(x) for x in a.evidence]),
        "labels": json.dumps(a.labels, sort_keys=True),
        "occurrence_count": a.occurrence_count,
        "create_time": a.create_time,
        "last_seen_time": a.last_seen_time,
        "acknowledged_by": a.acknowledged_by or None,
        "acknowledge_time": a.acknowledge_time,
        "resolved_by": a.resolved_by or None,
        "resolve_time": a.resolve_time,
        "resolve_reason": a.resolve_reason or None,
        "change_seq": a.change_seq,
    }


_UPDATE_ALERT = (
    sa.update(alerts)
    .where(
        alerts.c.tenant == sa.bindparam("key_tenant"),
        alerts.c.alert_id == sa.bindparam("key_id"),
    )
    .values({c.name: sa.bindparam(c.name) for c in alerts.columns})
)
"""Every column of an alert by its key (the values as :func:`alert_values` names them)."""

_PACKED = "f64:"
_MOST_TERMS = 500
"""Event ids matched with one ``LIKE`` each in a condition, at most (SQLite: depth 1,000)."""


def scrub(alert: Alert) -> bool:
    """Blanks an alert's evidence excerpts in place; whether any was not blank."""
    if all(not f.excerpt for f in alert.evidence):
        return False
    alert.evidence = [dataclasses.replace(f, excerpt="") for f in alert.evidence]
    return True


pack_samples = aiaudit_native.pack_samples
"""Samples as stored (bytes, ``alerting_0006``): a version byte (1), then per sample its
time's and value's differences from the previous sample's bit patterns, a few bytes each
(exact for every double; the native core packs them, ``rules/packed.rs``). A window holds
hundreds to thousands of samples and is rewritten whole at every save: as ``f64:`` +
base64 of raw doubles (earlier versions) a row of 400 samples was 8.5 KB, and PostgreSQL
compressed each such row and moved it out of line, most of a save's time: 550 such windows
took 75-100 ms a save, and 12-16 ms as rows of ~1.6 KB, which stay inline."""

_PACKED_BYTES = b"\x01"
"""First byte of :func:`pack_samples`' form (earlier versions' text: ``f64:`` or ``[``)."""


def _earlier_text(stored: bytes | str) -> None:
    """Refuses stored samples that start as no version's form does.

    Else a JSON parser's "Expecting value: line 1 column 1" said neither that the row was
    of an unknown form (a later version's, after a rollback, or damaged) nor which byte.
    """
    first = stored[:1] if isinstance(stored, bytes) else stored[:1].encode()[:1]
    if first not in (b"f", b"["):
        raise ValueError(
            f"window samples of an unknown form (first byte {first!r}): neither this"
            " version's packed form (1) nor an earlier version's text (f64: or JSON)"
        )


def unpack_samples(stored: bytes | str) -> list[tuple[float, float]]:
    """Samples from :func:`pack_samples`, or from the text of earlier versions.

    Before ``alerting_0006`` the column was text: ``f64:`` + base64 of little-endian
    (time, value) doubles, or before that JSON pairs. The migration kept such rows
    as their UTF-8 bytes, so they load as they did. Anything else (a later version's
    form, a damaged row) is a ValueError naming its first byte.
    """
    if isinstance(stored, bytes | bytearray | memoryview):
        stored = bytes(stored)
        if stored.startswith(_PACKED_BYTES):
            return aiaudit_native.unpack_samples(stored)
        _earlier_text(stored)
        stored = stored.decode()
    else:
        _earlier_text(stored)
    if not stored.startswith(_PACKED):
        return [(float(t), float(v)) for t, v in json.loads(stored)]
    packed = array("d")
    packed.frombytes(base64.b64decode(stored[len(_PACKED) :]))
    if sys.byteorder == "big":
        packed.byteswap()
    return list(zip(packed[0::2], packed[1::2], strict=True))


_DIGESTED = "\x01sha256:"
"""Starts the stored key of a group the column cannot hold as it is: longer than its 512
characters, or holding U+0000 (PostgreSQL text cannot). The row's samples then carry the
group itself, so that after a restart its history is found again (cut or replaced, the key
matched no group, and two groups sharing the first 512 characters shared one row)."""

_WITH_GROUP = b"\x02"
"""Starts the stored samples of such a row: then the group as a JSON string (ASCII, no
line break), a line break, and the packed samples. Earlier versions stored the JSON list
``[group, text samples]``."""


def _window_row(rule_id: str, group: str, packed: bytes) -> tuple[tuple[str, str], bytes]:
    """((rule id, stored key), stored samples) of one window."""
    if len(group) <= 512 and "\x00" not in group and not group.startswith(_DIGESTED):
        return (rule_id, group), packed
    digest = hashlib.sha256(group.encode()).hexdigest()
    return (rule_id, _DIGESTED + digest), _WITH_GROUP + json.dumps(group).encode() + b"\n" + packed


def _read_window(key: str, stored: bytes | str) -> tuple[str, list[tuple[float, float]]]:
    """(group, samples) of a stored window row (:func:`_window_row`, or earlier versions')."""
    if not key.startswith(_DIGESTED):
        return key, unpack_samples(stored)
    if isinstance(stored, bytearray | memoryview):
        stored = bytes(stored)
    if isinstance(stored, bytes) and stored.startswith(_WITH_GROUP):
        group, _, packed = stored[len(_WITH_GROUP) :].partition(b"\n")
        return json.loads(group), unpack_samples(packed)
    _earlier_text(stored)
    group, text = json.loads(stored)
    return group, unpack_samples(text)


_UPSERT_WINDOWS = (
    "INSERT INTO alerting_windows (tenant, rule_id, group_key, samples)"
    " SELECT %(tenant)s, u.rule_id, u.group_key, u.samples"
    " FROM unnest(CAST(%(rule_ids)b AS text[]), CAST(%(groups)b AS text[]),"
    " CAST(%(samples)b AS bytea[])) AS u(rule_id, group_key, samples)"
    " ON CONFLICT (tenant, rule_id, group_key) DO UPDATE SET samples = EXCLUDED.samples"
)
"""PostgreSQL, in the driver's own placeholders: the arrays go in binary (``%b``). As text,
psycopg quoted every element in Python: 66 ms of CPU for 510 windows of ~2 KB,
against 4 ms."""


JOURNAL = "~journal"
"""Rule id of the window journal rows: samples a replay cannot rebuild from erased events."""


def _journal_key(end: int) -> str:
    return f"{end:020d}"  # ordered as text as the positions are as numbers


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a tenant's alert changes stand in a store: what a resume token is vouched by.

    ``head`` is the last change sequence given and ``epoch`` the writer epoch
    that set it (``alerting_epochs``): a store whose row of that epoch reached
    ``head`` holds the same changes up to ``head``.
    """

    store_id: str
    head: int
    epoch: str


class AlertStore:
    """Rules, alerts, windows and deliveries on one SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine) -> None:
        """Uses the engine's pool; SQLite writers take the lock up front (BEGIN IMMEDIATE)."""
        self.engine = engine
        self._epochs: dict[str, tuple[str, int]] = {}
        """Per tenant, this object's writer epoch and the last sequence it set (see set_head)."""
        self._epochs_lock = threading.Lock()

    def write(self) -> sa.Connection:
        """A connection whose transactions take the write lock at BEGIN on SQLite."""
        return self.engine.connect().execution_options(sqlite_immediate=True)

    def snapshot(self) -> sa.Connection:
        """A connection whose transaction reads one snapshot of the store.

        For reads that must agree: the changes a watch found and the head and
        epoch that vouch for them. PostgreSQL: REPEATABLE READ (read committed
        takes a snapshot per statement; the level goes with the transaction's
        BEGIN, no statement more). SQLite: any transaction is one (the store's
        engine BEGINs, and a WAL reader keeps the snapshot of its first read
        until it ends).
        """
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    # ---- rules ----

    def tenant_rules(self, conn: sa.Connection, tenant: str) -> list[StoredRule]:
        """The tenant's own rows (rules and pack overrides)."""
        q = sa.select(rules).where(rules.c.tenant == tenant).order_by(rules.c.rule_id)
        return [
            StoredRule(
                r.tenant,
                r.rule_id,
                r.source,
                r.enabled,
                r.severity,
                _utc(r.update_time),  # type: ignore[arg-type]
            )
            for r in conn.execute(q)
        ]

    def put_rule(self, conn: sa.Connection, r: StoredRule) -> None:
        """Inserts or replaces a tenant rule row."""
        values = {
            "source": r.source,
            "enabled": r.enabled,
            "severity": r.severity,
            "update_time": r.update_time,
        }
        updated = conn.execute(
            sa.update(rules)
            .where(rules.c.tenant == r.tenant, rules.c.rule_id == r.rule_id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(rules).values(tenant=r.tenant, rule_id=r.rule_id, **values))

    def reset_windows(self, conn: sa.Connection, tenant: str, rule_id: str) -> None:
        """Deletes a rule's window samples (the rule was changed or deleted)."""
        conn.execute(
            sa.delete(windows).where(windows.c.tenant == tenant, windows.c.rule_id == rule_id)
        )

    def delete_rule(self, conn: sa.Connection, tenant: str, rule_id: str) -> bool:
        """Deletes a tenant rule row and its window state."""
        self.reset_windows(conn, tenant, rule_id)
        return bool(
            conn.execute(
                sa.delete(rules).where(rules.c.tenant == tenant, rules.c.rule_id == rule_id)
            ).rowcount
        )

    # ---- alerts ----

    def open_alert(
        self, conn: sa.Connection, tenant: str, rule_id: str, dedup_key: str
    ) -> Alert | None:
        """The open (firing or acknowledged) alert of a rule and dedup key, newest first.

        An alert belongs to one rule: two rules whose keys render alike have one each.
        """
        q = (
            sa.select(alerts)
            .where(
                alerts.c.tenant == tenant,
                alerts.c.dedup_key == dedup_key,
                alerts.c.rule_id == rule_id,
                alerts.c.state.in_(OPEN_STATES),
            )
            .order_by(alerts.c.create_time.desc())
            .limit(1)
        )
        row = conn.execute(q).first()
        return alert_from_row(row) if row is not None else None

    def insert_alert(self, conn: sa.Connection, a: Alert) -> None:
        """A new alert."""
        conn.execute(sa.insert(alerts).values(**alert_values(a)))

    def update_alert(self, conn: sa.Connection, a: Alert) -> None:
        """Writes every column of an existing alert."""
        self.update_alerts(conn, [a])

    def update_alerts(self, conn: sa.Connection, changed: Sequence[Alert]) -> None:
        """Writes every column of existing alerts: one statement, executed for each.

        The engine folds a batch's repeats into the open alerts and writes them
        at the end of the batch; one statement per alert cost more than the
        rules' evaluation.
        """
        if not changed:
            return
        conn.execute(
            _UPDATE_ALERT,
            [{**alert_values(a), "key_tenant": a.tenant, "key_id": a.alert_id} for a in changed],
        )

    def scrub_evidence(
        self,
        conn: sa.Connection,
        tenant: str,
        event_ids: set[str],
        payload: Callable[[Alert], str],
        seq: int,
    ) -> int:
        """Blanks the evidence excerpts of every alert naming one of these (erased) events.

        A finding does not say which of an alert's events it came from, so all
        of such an alert's excerpts go; detector, score, field and offsets stay.
        The alert's delivery rows, sent or not, get the payload rendered again
        (what a sink already received cannot be recalled). ``seq`` is the
        tenant's change head, locked by the caller: each blanked alert takes
        the next number, so watchers see the change and other replicas drop
        their copies (which would write the excerpts back). Returns the last
        number given; the caller stores it as the head.
        """
        found = [
            a
            for a in map(alert_from_row, self._naming(conn, tenant, event_ids))
            if not event_ids.isdisjoint(a.event_ids)
        ]
        for alert in found:
            where = sa.and_(alerts.c.tenant == tenant, alerts.c.alert_id == alert.alert_id)
            if scrub(alert):
                seq += 1
                alert.change_seq = seq
                evidence = alert_values(alert)["evidence"]
                conn.execute(
                    sa.update(alerts).where(where).values(evidence=evidence, change_seq=seq)
                )
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.tenant == tenant, deliveries.c.alert_id == alert.alert_id)
                .values(payload=payload(alert))
            )
        return seq

    @staticmethod
    def _naming(conn: sa.Connection, tenant: str, event_ids: set[str]) -> list[Any]:
        """The tenant's alert rows that may name one of the events (the caller checks).

        Up to :data:`_MOST_TERMS` ids, one ``LIKE`` each in one condition; more
        (a subject's whole history, a retention record's 10,000) would be an
        expression SQLite refuses (depth over 1,000, review): then one pass
        over the tenant's alerts' event ids, and the rows that name one.
        """
        if len(event_ids) <= _MOST_TERMS:
            naming = sa.or_(*(alerts.c.event_ids.contains(json.dumps(e)) for e in event_ids))
            return list(conn.execute(sa.select(alerts).where(alerts.c.tenant == tenant, naming)))
        listed = sa.select(alerts.c.alert_id, alerts.c.event_ids).where(alerts.c.tenant == tenant)
        hit = [a for a, ids in conn.execute(listed) if not event_ids.isdisjoint(json.loads(ids))]
        return [
            row
            for i in range(0, len(hit), _MOST_TERMS)
            for row in conn.execute(
                sa.select(alerts).where(
                    alerts.c.tenant == tenant, alerts.c.alert_id.in_(hit[i : i + _MOST_TERMS])
                )
            )
        ]

    def _insert(self) -> Any:
        return pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert

    def lock_head(self, conn: sa.Connection, tenant: str) -> int:
        """Locks the tenant's change head until commit and returns the last sequence given.

        Every writer of a tenant's alerts takes it before reading what it
        changes, so changes are stamped and committed in one order (and an
        acknowledgement never races the engine folding a hit into the alert).
        """
        upsert = (
            self._insert()(heads)
            .values(tenant=tenant, change_seq=0)
            .on_conflict_do_update(
                index_elements=[heads.c.tenant], set_={"change_seq": heads.c.change_seq}
            )
            .returning(heads.c.change_seq)
        )
        return int(conn.execute(upsert).scalar_one())

    def set_head(self, conn: sa.Connection, tenant: str, change_seq: int) -> None:
        """Records the last sequence given (under the lock of :meth:`lock_head`), and by whom.

        The head row names this object's writer epoch for the tenant, and the
        epoch's row (``alerting_epochs``) moves to ``change_seq``. The epoch is
        kept only while its row still holds the sequence this object last set
        there: otherwise the database is not the one it wrote to (restored from
        a backup, or another one behind the same address), and a new epoch
        starts, so a token vouched by the old epoch past what the row holds is
        refused however far the new history goes. A transaction that does not
        commit leaves the row behind this object's memory: a new epoch too,
        which costs nothing but a row.
        """
        with self._epochs_lock:
            mine = self._epochs.get(tenant)
        kept = mine is not None and bool(
            conn.execute(
                sa.update(epochs)
                .where(
                    epochs.c.tenant == tenant,
                    epochs.c.epoch == mine[0],
                    epochs.c.last_seq == mine[1],
                )
                .values(last_seq=change_seq)
            ).rowcount
        )
        if mine is not None and kept:
            epoch = mine[0]
        else:
            epoch = uuid.uuid4().hex
            conn.execute(sa.insert(epochs).values(tenant=tenant, epoch=epoch, last_seq=change_seq))
        conn.execute(
            sa.update(heads)
            .where(heads.c.tenant == tenant)
            .values(change_seq=change_seq, epoch=epoch)
        )
        with self._epochs_lock:
            self._epochs[tenant] = (epoch, change_seq)

    def head(self, conn: sa.Connection, tenant: str) -> tuple[int, str]:
        """The tenant's last committed change sequence and the epoch that set it (0, '': none)."""
        row = conn.execute(
            sa.select(heads.c.change_seq, heads.c.epoch).where(heads.c.tenant == tenant)
        ).first()
        return (int(row[0]), str(row[1])) if row is not None else (0, "")

    def store_id(self, conn: sa.Connection) -> str:
        """The store's id (``alerting_store``, made by migration ``alerting_0005``)."""
        found = conn.execute(sa.select(store_t.c.store_id)).scalars().all()
        if len(found) != 1:
            raise RuntimeError(
                f"alerting_store holds {len(found)} rows, not one: run `aiaudit db migrate`"
            )
        return str(found[0])

    def position(self, conn: sa.Connection, tenant: str) -> Position:
        """The store's id, the tenant's head and the epoch that set it (0 and '' when none)."""
        return Position(self.store_id(conn), *self.head(conn, tenant))

    def holds(self, conn: sa.Connection, tenant: str, epoch: str, head: int) -> bool:
        """Whether the tenant's history here is the one a position (epoch, head) was read in.

        Head 0 is before any change, the same everywhere. Otherwise the epoch's
        row must have reached ``head``: only the writer of that epoch moves it,
        and only in a database holding everything it wrote before.
        """
        if head == 0:
            return True
        reached = conn.execute(
            sa.select(epochs.c.last_seq).where(epochs.c.tenant == tenant, epochs.c.epoch == epoch)
        ).scalar()
        return reached is not None and int(reached) >= head

    def changes(self, conn: sa.Connection, tenant: str, after: int, limit: int) -> list[Alert]:
        """Alerts changed after a change sequence, oldest change first."""
        q = (
            sa.select(alerts)
            .where(alerts.c.tenant == tenant, alerts.c.change_seq > after)
            .order_by(alerts.c.change_seq)
            .limit(limit)
        )
        return [alert_from_row(r) for r in conn.execute(q)]

    def get_alert(self, conn: sa.Connection, tenant: str, alert_id: str) -> Alert | None:
        """One alert."""
        row = conn.execute(
            sa.select(alerts).where(alerts.c.tenant == tenant, alerts.c.alert_id == alert_id)
        ).first()
        return alert_from_row(row) if row is not None else None

    def list_alerts(
        self,
        conn: sa.Connection,
        tenant: str,
        where: Sequence[sa.ColumnElement[bool]],
        after: tuple[dt.datetime, str] | None,
        limit: int,
    ) -> list[Alert]:
        """Alerts newest first, after a (create_time, id) position (keyset pagination)."""
        q = sa.select(alerts).where(alerts.c.tenant == tenant, *where)
        if after is not None:
            t, i = after
            q = q.where(
                sa.or_(
                    alerts.c.create_time < t,
                    sa.and_(alerts.c.create_time == t, alerts.c.alert_id < i),
                )
            )
        q = q.order_by(alerts.c.create_time.desc(), alerts.c.alert_id.desc()).limit(limit)
        return [alert_from_row(r) for r in conn.execute(q)]

    # ---- windows ----

    def load_windows(
        self, conn: sa.Connection, tenant: str, rule_ids: Iterable[str]
    ) -> aiaudit_native.WindowState:
        """Window samples of the given rules."""
        state = aiaudit_native.WindowState()
        ids = list(rule_ids)
        if not ids:
            return state
        q = sa.select(windows).where(windows.c.tenant == tenant, windows.c.rule_id.in_(ids))
        for r in conn.execute(q):
            try:
                group, samples = _read_window(r.group_key, r.samples)
            except ValueError as e:  # which row (not its group: an event's field value)
                raise ValueError(
                    f"alerting_windows row of tenant {tenant!r}, rule {r.rule_id!r}: {e}"
                ) from e
            state.put(r.rule_id, group, samples)
        return state

    def save_windows(
        self, conn: sa.Connection, tenant: str, changed: Sequence[tuple[str, str, bytes]]
    ) -> None:
        """Upserts changed window state in one statement (one round trip per batch).

        ``changed``: (rule id, group, packed samples), as ``WindowState.take_changed``
        gives them: only the windows that took a sample since the last save (samples
        expire only as a newer one is added, so that too is a change); the others'
        rows hold them as they are. On PostgreSQL the rows go as three
        arrays unnested by the server: one statement with three parameters
        instead of one per row and column.
        """
        if not changed:
            return
        rows = dict(_window_row(rule_id, group, packed) for rule_id, group, packed in changed)
        if self.engine.dialect.name == "postgresql":
            conn.exec_driver_sql(  # SQLAlchemy still maps errors and dead connections
                _UPSERT_WINDOWS,
                {
                    "tenant": tenant,
                    "rule_ids": [k[0] for k in rows],
                    "groups": [k[1] for k in rows],
                    "samples": list(rows.values()),
                },
            )
            return
        stmt: Any = self._insert()(windows)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant", "rule_id", "group_key"],
                set_={"samples": stmt.excluded.samples},
            ),
            [
                {"tenant": tenant, "rule_id": r, "group_key": g, "samples": samples}
                for (r, g), samples in rows.items()
            ],
        )

    def save_journal(
        self,
        conn: sa.Connection,
        tenant: str,
        end: int,
        samples: Sequence[tuple[int, str, str, float, float]],
    ) -> None:
        """Keeps the samples rules reading content added in the batch that ends at ``end``.

        (log position, rule id, group, time, value) each. A row of
        ``alerting_windows`` under the rule id :data:`JOURNAL` (never a rule's:
        rule ids start with a letter or digit), keyed by the batch's end.
        """
        if samples:
            text = json.dumps([list(s) for s in samples]).encode()
            self.save_windows(conn, tenant, [(JOURNAL, _journal_key(end), text)])

    def drop_journal(self, conn: sa.Connection, tenant: str, upto: int) -> None:
        """Forgets the journal of the batches up to ``upto`` (the windows are saved as of it)."""
        conn.execute(
            sa.delete(windows).where(
                windows.c.tenant == tenant,
                windows.c.rule_id == JOURNAL,
                windows.c.group_key <= _journal_key(upto),
            )
        )

    def load_journal(
        self, conn: sa.Connection, tenant: str, after: int, upto: int
    ) -> dict[int, list[tuple[str, str, float, float]]]:
        """Journaled samples of log positions ``after .. upto - 1``, by position."""
        q = sa.select(windows.c.samples).where(
            windows.c.tenant == tenant,
            windows.c.rule_id == JOURNAL,
            windows.c.group_key > _journal_key(after),
            windows.c.group_key <= _journal_key(upto),
        )
        out: dict[int, list[tuple[str, str, float, float]]] = {}
        for text in conn.execute(q).scalars():
            for seq, rule_id, group, t, v in json.loads(text):
                if after <= seq < upto:
                    out.setdefault(int(seq), []).append((rule_id, group, float(t), float(v)))
        return out

    # ---- deliveries ----

    def enqueue(
        self, conn: sa.Connection, a: Alert, sinks: Sequence[str], payload: str, now: dt.datetime
    ) -> None:
        """An outbox row per sink for a new alert (same transaction as the alert)."""
        for sink in sinks:
            conn.execute(
                sa.insert(deliveries).values(
                    tenant=a.tenant,
                    alert_id=a.alert_id,
                    sink=sink,
                    status="pending",
                    attempts=0,
                    next_attempt_time=now,
                    payload=payload,
                )
            )
