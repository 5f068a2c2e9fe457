"""Alert delivery: webhook (JSON, HMAC-SHA256 signed) and syslog (RFC 5424 with CEF).

The engine writes one outbox row per alert and sink in the transaction that
creates the alert; the :class:`Deliverer` sends due rows, retrying with
exponential backoff, and after ``max_attempts`` marks the row ``dead`` with the
last error (the dead-letter record). A row is claimed by pushing its next
attempt time forward (a lease), so replicas do not send it concurrently.
Delivery is at-least-once: a crash between sending and recording repeats the
send, and receivers deduplicate on the alert id (``X-Aiaudit-Alert-Id`` header,
``alert_id`` in JSON, ``alertId`` in syslog structured data).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from aiaudit.alerting.model import Alert
from aiaudit.alerting.tables import deliveries
from aiaudit.common.worker import Worker

log = logging.getLogger(__name__)

_SEVERITY_NAMES = {1: "info", 2: "low", 3: "medium", 4: "high", 5: "critical"}
_SYSLOG_SEVERITY = {1: 6, 2: 5, 3: 4, 4: 3, 5: 2}
_CEF_SEVERITY = {1: 1, 2: 3, 3: 5, 4: 8, 5: 10}
_FACILITY_AUTHPRIV = 10
_LEASE = dt.timedelta(seconds=60)


def _iso(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else ""


def alert_json(a: Alert) -> str:
    """The alert as sinks receive it (also the outbox payload)."""
    return json.dumps(
        {
            "alert_id": a.alert_id,
            "name": f"tenants/{a.tenant}/alerts/{a.alert_id}",
            "tenant": a.tenant,
            "rule": a.rule_id,
            "severity": _SEVERITY_NAMES.get(a.severity, "unspecified"),
            "state": a.state,
            "summary": a.summary,
            "dedup_key": a.dedup_key,
            "event_ids": a.event_ids,
            "evidence": [asdict(x) for x in a.evidence],
            "labels": a.labels,
            "occurrence_count": a.occurrence_count,
            "create_time": _iso(a.create_time),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body`` (binds the time: no replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class DeliveryError(Exception):
    """A send that failed; retried later."""


def send_webhook(url: str, secret: str, payload: str, timeout: float) -> None:
    """POSTs the alert; any non-2xx answer or network error raises DeliveryError."""
    body = payload.encode()
    timestamp = str(int(time.time()))
    try:
        alert = json.loads(payload)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "aiaudit-alerting",
                "X-Aiaudit-Alert-Id": alert["alert_id"],
                "X-Aiaudit-Timestamp": timestamp,
                "X-Aiaudit-Signature": signature(secret, timestamp, body),
            },
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise DeliveryError(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(str(exc)) from None
    except ValueError as exc:  # a URL urllib cannot use (empty, unknown scheme), bad payload
        raise DeliveryError(f"webhook url {url!r}: {exc}") from None


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cef_ext(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def _sd(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(payload: str, hostname: str | None = None) -> bytes:
    """RFC 5424 message whose MSG is a CEF event (ArcSight Common Event Format 0)."""
    a = json.loads(payload)
    sev = {v: k for k, v in _SEVERITY_NAMES.items()}.get(a["severity"], 3)
    pri = _FACILITY_AUTHPRIV * 8 + _SYSLOG_SEVERITY[sev]
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "_")
    evidence = "; ".join(
        f"{e['detector']}@{e['field']}[{e['start']}:{e['end']}]" for e in a["evidence"][:5]
    )
    ext = {
        "externalId": a["alert_id"],
        "rt": a["create_time"],
        "suser": a["dedup_key"],
        "cs1Label": "tenant",
        "cs1": a["tenant"],
        "cs2Label": "eventIds",
        "cs2": ",".join(a["event_ids"][:10]),
        "cs3Label": "evidence",
        "cs3": evidence,
        "cnt": str(a["occurrence_count"]),
        "msg": a["summary"],
    }
    cef = "CEF:0|aiaudit|aiaudit|1|{}|{}|{}|{}".format(
        _cef_header(a["rule"]),
        _cef_header(a["summary"]),
        _CEF_SEVERITY[sev],
        " ".join(f"{k}={_cef_ext(v)}" for k, v in ext.items()),
    )
    sd = f'[aiaudit@32473 alertId="{_sd(a["alert_id"])}" tenant="{_sd(a["tenant"])}"]'
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"<{pri}>1 {now} {host} aiaudit - ALERT {sd} \ufeff{cef}".encode()


def send_syslog(address: str, payload: str, timeout: float) -> None:
    """UDP: one datagram; TCP: RFC 6587 octet-counting framing."""
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    message = syslog_message(payload)
    try:
        if scheme == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(message, (host, int(port)))
        else:
            with socket.create_connection((host, int(port)), timeout=timeout) as s:
                s.sendall(str(len(message)).encode() + b" " + message)
    except OSError as exc:
        raise DeliveryError(str(exc)) from None


@dataclass(frozen=True)
class SinkConfig:
    """Where alerts go and how hard to try."""

    webhook_url: str = ""
    webhook_secret: str = ""
    syslog_address: str = ""
    timeout: float = 5.0
    max_attempts: int = 8
    retry_base: float = 0.5

    @property
    def sinks(self) -> tuple[str, ...]:
        """The sinks this process can send to (it claims outbox rows of these only)."""
        return tuple(
            name
            for name, on in (("webhook", self.webhook_url), ("syslog", self.syslog_address))
            if on
        )

    def send(self, sink: str, payload: str) -> None:
        """Sends one payload to one sink."""
        if sink not in self.sinks:
            raise DeliveryError(f"sink {sink!r} is not configured")
        if sink == "webhook":
            send_webhook(self.webhook_url, self.webhook_secret, payload, self.timeout)
        elif sink == "syslog":
            send_syslog(self.syslog_address, payload, self.timeout)
        else:
            raise DeliveryError(f"sink {sink!r} is not configured")


class Deliverer(Worker):
    """Sends due outbox rows; one thread (per sink, when ``sink`` names one)."""

    def __init__(
        self,
        engine: sa.Engine,
        config: SinkConfig,
        poll_interval: float = 0.2,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sink: str = "",
    ) -> None:
        """A stopped deliverer of every configured sink's rows, or of ``sink``'s only.

        With a thread per sink, a sink that never answers (each attempt waits
        the full ``timeout``) delays its own rows, not the other sinks'.
        """
        super().__init__(f"alerting-sink-{sink}" if sink else "alerting-sinks")
        self.engine = engine
        self.config = config
        self.poll_interval = poll_interval
        self.clock = clock
        self.sinks = (sink,) if sink else config.sinks

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except sa.exc.SQLAlchemyError as exc:
                log.warning("alerting sinks: store error", extra={"error": str(exc)})
                sent = 0
            if not sent:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def run_once(self) -> int:
        """Tries every due row of a configured sink once; returns how many were attempted.

        Rows for a sink this process has no address for (written by a replica,
        or an earlier configuration, that had one) are left pending for a
        process that has it, rather than tried and failed here.
        """
        now = self.clock()
        d = deliveries
        with self.engine.connect() as conn:
            due = conn.execute(
                sa.select(d.c.tenant, d.c.alert_id, d.c.sink, d.c.attempts, d.c.payload)
                .where(
                    d.c.status == "pending",
                    d.c.next_attempt_time <= now,
                    d.c.sink.in_(self.sinks),
                )
                .order_by(d.c.next_attempt_time)
                .limit(100)
            ).all()
        for row in due:
            if self._stop.is_set():
                break
            if not self._claim(row.tenant, row.alert_id, row.sink, row.attempts, now):
                continue
            self._attempt(row.tenant, row.alert_id, row.sink, row.attempts, row.payload)
        return len(due)

    def _where(self, tenant: str, alert_id: str, sink: str) -> sa.ColumnElement[bool]:
        d = deliveries
        return sa.and_(d.c.tenant == tenant, d.c.alert_id == alert_id, d.c.sink == sink)

    def _claim(
        self, tenant: str, alert_id: str, sink: str, attempts: int, now: dt.datetime
    ) -> bool:
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            return bool(
                conn.execute(
                    sa.update(deliveries)
                    .where(
                        self._where(tenant, alert_id, sink),
                        deliveries.c.status == "pending",
                        deliveries.c.attempts == attempts,
                        deliveries.c.next_attempt_time <= now,
                    )
                    .values(next_attempt_time=now + _LEASE)
                ).rowcount
            )

    def _attempt(self, tenant: str, alert_id: str, sink: str, attempts: int, payload: str) -> None:
        error = ""
        try:
            self.config.send(sink, payload)
        except DeliveryError as exc:
            error = str(exc)[:2000]
        except Exception as exc:  # a row that cannot be sent is retried and dead-lettered,
            error = f"{type(exc).__name__}: {exc}"[:2000]  # never the end of the thread
        now = self.clock()
        tried = attempts + 1
        if not error:
            values: dict[str, object] = {
                "status": "delivered",
                "attempts": tried,
                "delivered_time": now,
                "last_error": None,
            }
        elif tried >= self.config.max_attempts:
            values = {"status": "dead", "attempts": tried, "last_error": error}
            log.error(
                "alert delivery failed for good",
                extra={"alert": alert_id, "sink": sink, "error": error},
            )
        else:
            delay = min(self.config.retry_base * 2**attempts, 300.0)
            values = {
                "attempts": tried,
                "last_error": error,
                "next_attempt_time": now + dt.timedelta(seconds=delay),
            }
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            conn.execute(
                sa.update(deliveries).where(self._where(tenant, alert_id, sink)).values(**values)
            )
