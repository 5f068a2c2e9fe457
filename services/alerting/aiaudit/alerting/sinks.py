"""Alert delivery: webhook (JSON, HMAC-SHA256 signed) and syslog (RFC 5424 with CEF; UDP, TCP, TLS).

The engine writes one outbox row per alert and sink in the transaction that
creates the alert; the :class:`Deliverer` sends due rows, tenants taking
turns (:func:`due_rows`), retrying with exponential backoff (capped at five
minutes), and after ``max_attempts`` marks the row ``dead`` with the last error
(the dead-letter record). A row is claimed
by pushing its next attempt time forward (a lease), so replicas do not send it
concurrently; the claim reads the payload, so an erasure's scrub committed
before it is what gets sent, and the attempt's outcome is recorded only while
the lease is still this deliverer's. A dead row's next attempt time is when it
died; ``aiaudit alerting redeliver`` (:mod:`aiaudit.alerting.redeliver`) moves
chosen dead rows back to pending.
Delivery is at-least-once: a crash between sending and recording repeats the
send, and receivers deduplicate on the alert id (``X-Aiaudit-Alert-Id`` header,
``alert_id`` in JSON, ``alertId`` in syslog structured data).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from aiaudit.alerting.model import Alert
from aiaudit.alerting.syslog_tls import SYSTEM_CAS, SyslogTls
from aiaudit.alerting.tables import TS, deliveries
from aiaudit.common.worker import Worker

log = logging.getLogger(__name__)

_SEVERITY_NAMES = {1: "info", 2: "low", 3: "medium", 4: "high", 5: "critical"}
_SYSLOG_SEVERITY = {1: 6, 2: 5, 3: 4, 4: 3, 5: 2}
_CEF_SEVERITY = {1: 1, 2: 3, 3: 5, 4: 8, 5: 10}
_FACILITY_AUTHPRIV = 10
_LEASE = 60.0
"""Seconds a claim holds a row beyond the attempt's own time limit (``timeout``)."""
SINKS = ("webhook", "syslog")
"""Every sink name an outbox row may carry."""
MAX_BACKOFF = 300.0
"""Longest wait between two attempts (seconds)."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""C0 and C1 controls (CR, LF, NEL among them), DEL, the Unicode line and paragraph
separators, and lone surrogates: line-oriented collectors split records on some of them."""


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


def backoff(base: float, attempts: int) -> float:
    """Seconds before the next attempt: ``base`` doubled per attempt made, at most MAX_BACKOFF.

    The exponent stops at 1,023, past which the true value is over the cap anyway: as
    ``base * 2**attempts`` the int was too large for a float from attempt 1,024 on (a
    week-long ``max_attempts``), and the OverflowError ended the sink's thread for good.
    """
    return min(base * 2.0 ** min(attempts, 1023), MAX_BACKOFF)


class DeliveryError(Exception):
    """A send that failed; retried later."""


def _redacted(url: str) -> str:
    """``scheme://host/path`` of a URL: its user info, query and fragment may hold secrets."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return "(unparsable)"
    return urllib.parse.urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, "", ""))[:300]


Resolver = Callable[..., list[tuple[Any, ...]]]
"""A name lookup with :func:`socket.getaddrinfo`'s signature."""
NAME_LOOKUPS = 8
"""Name lookups (webhook and syslog) running at once. A lookup that outlives its attempt's
deadline goes on in a thread of its own (getaddrinfo cannot be interrupted) until the
resolver gives up; with this many still unanswered, an attempt fails at once rather than
start another."""
_LOOKUPS = threading.BoundedSemaphore(NAME_LOOKUPS)


class _Watchdog:
    """Bounds a whole attempt: name lookup, connect, proxy CONNECT, TLS, request, answer.

    A socket timeout bounds each read, not the attempt: a receiver (or an HTTPS
    proxy answering ``CONNECT``) sending a byte a second would hold the sink's
    only thread for as long as it likes. The attempt's socket is watched from
    its creation, before any ``CONNECT`` or TLS handshake, and shut down
    (through a duplicate, which stays valid when TLS wraps the original) at the
    deadline, which makes the blocked read return at once. getaddrinfo cannot
    be interrupted, so the lookup runs in a thread of its own and the attempt
    waits for it until the deadline only; each connect waits what is left.
    """

    def __init__(self, seconds: float, resolve: Resolver = socket.getaddrinfo) -> None:
        self._expired = False
        self.unanswered = ""
        """What the attempt was still waiting for when its deadline passed, if not the peer."""
        self._deadline = time.monotonic() + seconds
        self._resolve = resolve
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for s in self._socks:
                s.close()

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self._expired or self._left() <= 0

    def _left(self) -> float:
        return self._deadline - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Adds the attempt's socket (shut at once if the deadline passed already)."""
        with self._lock:
            self._socks.append(sock.dup())
            if self.expired:
                self._shut(self._socks[-1])

    def lookup(
        self, host: str, port: int, kind: socket.SocketKind = socket.SOCK_STREAM
    ) -> list[tuple[Any, ...]]:
        """``getaddrinfo`` for sockets of ``kind``, waited for until the deadline at most."""
        if not _LOOKUPS.acquire(blocking=False):
            raise OSError(f"name lookup of {host}: too many earlier lookups still unanswered")
        done = threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(self._resolve(host, port, 0, kind))
            except Exception as exc:  # gaierror; UnicodeError for a name IDNA cannot encode
                outcome.append(exc)
            finally:
                _LOOKUPS.release()
                done.set()

        threading.Thread(target=run, name="sink-name-lookup", daemon=True).start()
        if not done.wait(max(self._left(), 0.0)):
            self.unanswered = f"name lookup of {host}"
            raise TimeoutError(f"{self.unanswered} unanswered")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return list(outcome[0])

    def connect(
        self,
        address: tuple[str, int],
        timeout: object = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """:func:`socket.create_connection` within the deadline, the socket watched.

        http.client connects through this, then sends a proxy's ``CONNECT`` and
        wraps TLS on the socket returned, all under the watchdog.
        """
        per_read = float(timeout) if isinstance(timeout, int | float) else None
        error = OSError(f"name lookup of {address[0]} found no address")
        for family, kind, proto, _, where in self.lookup(*address):
            if self.expired:
                raise TimeoutError(f"connect to {address[0]}: deadline passed")
            sock = socket.socket(family, kind, proto)
            try:
                if source_address:
                    sock.bind(source_address)
                left = self._left()
                sock.settimeout(left if per_read is None else min(per_read, left))
                sock.connect(where)
                sock.settimeout(per_read)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            self.watch(sock)
            return sock
        raise error

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for s in self._socks:
                self._shut(s)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed by the peer
            sock.shutdown(socket.SHUT_RDWR)


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens watched connections (http and https, direct or through a proxy) for one attempt."""

    def __init__(self, watchdog: _Watchdog) -> None:
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.watchdog = watchdog

    def _connection(
        self, cls: type[http.client.HTTPConnection]
    ) -> Callable[..., http.client.HTTPConnection]:
        def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            conn = cls(host, **kwargs)
            # HTTPConnection.connect creates its socket through this, then sends a proxy's
            # CONNECT (set_tunnel) and, for HTTPS, wraps TLS: all on the watched socket.
            conn._create_connection = self.watchdog.connect  # type: ignore[attr-defined]
            return conn

        return make

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Plain HTTP."""
        return self.do_open(self._connection(http.client.HTTPConnection), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """HTTPS with the default context (certificates verified)."""
        return self.do_open(self._connection(http.client.HTTPSConnection), req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect.

    urllib would repeat the signed request elsewhere (as a GET, without the
    body) and call the alert delivered on the target's answer.
    """

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """None: the 3xx goes on to the error handler (an HTTPError)."""
        return None


def send_webhook(
    url: str,
    secret: str,
    payload: str,
    timeout: float,
    *,
    resolve: Resolver = socket.getaddrinfo,
) -> None:
    """POSTs the alert; failures raise DeliveryError.

    A failure is any non-2xx answer (a redirect too), a network error, or no
    complete answer within ``timeout`` seconds for the whole attempt (name
    lookup, connect, an HTTPS proxy's ``CONNECT``, TLS, request and answer).
    The proxy is urllib's: ``https_proxy``/``http_proxy``/``no_proxy`` from the
    environment. ``resolve`` looks names up (the receiver's or the proxy's).
    """
    body = payload.encode()
    timestamp = str(int(time.time()))
    with _Watchdog(timeout, resolve) as watchdog:
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
            opener = urllib.request.build_opener(_Handler(watchdog), _NoRedirect)
            with opener.open(request, timeout=timeout) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.headers else None
            if 300 <= exc.code < 400 and location:
                target = _redacted(urllib.parse.urljoin(url, location))
                raise DeliveryError(f"HTTP {exc.code}: redirect to {target} not followed") from None
            raise DeliveryError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if watchdog.expired:
                what = f" ({watchdog.unanswered})" if watchdog.unanswered else ""
                raise DeliveryError(f"no complete answer within {timeout:g} s{what}") from None
            raise DeliveryError(str(exc)) from None
        except ValueError as exc:  # a URL urllib cannot use (empty, unknown scheme), bad payload
            raise DeliveryError(f"webhook url {_redacted(url)!r}: {exc}") from None


def _cef_header(value: str) -> str:
    """A CEF header field: backslash and pipe escaped, every control or line break a space.

    The header has no escape for line breaks, and one would start a forged record.
    """
    return _CONTROL.sub(" ", value.replace("\\", "\\\\").replace("|", "\\|"))


def _cef_ext(value: str) -> str:
    """A CEF extension value: backslash, ``=``, CR and LF escaped, other controls a space."""
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    return _CONTROL.sub(" ", value.replace("\r", "\\r").replace("\n", "\\n"))


def _sd(value: str) -> str:
    """An RFC 5424 PARAM-VALUE: backslash, ``"`` and ``]`` escaped, controls a space."""
    return _CONTROL.sub(" ", value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]"))


SYSLOG_TEXT_BYTES = 400
"""UTF-8 bytes a syslog record keeps of each free text (rule id, summary, dedup key, tenant,
event ids, evidence): a summary renders event fields (attributes of up to 4,096 characters
each), and one record must stay a UDP datagram collectors take (under 8 KiB here, escaping
doubling some characters). Until 2026-12-05 it kept 512 characters, up to 2 KiB each."""


def _clip(text: str) -> str:
    raw = text.encode()
    if len(raw) <= SYSLOG_TEXT_BYTES:
        return text
    return raw[: SYSLOG_TEXT_BYTES - 3].decode(errors="ignore") + "…"  # … is 3 bytes


def _epoch_millis(iso: str) -> str:
    """A payload's time (ISO 8601) as CEF reads a time: whole milliseconds since the epoch.

    CEF's ``rt`` takes these or ``MMM dd yyyy HH:mm:ss``, not ISO 8601, which it carried
    until 2026-12-06: ArcSight and other CEF readers lost the alert's time.
    """
    if not iso:
        return ""
    since = dt.datetime.fromisoformat(iso) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return str(since // dt.timedelta(milliseconds=1))


def syslog_message(payload: str, hostname: str | None = None) -> bytes:
    """RFC 5424 message whose MSG is a CEF event (ArcSight Common Event Format 0).

    Free texts are clipped to :data:`SYSLOG_TEXT_BYTES` (the webhook carries them whole).
    """
    a = json.loads(payload)
    for name in ("rule", "summary", "dedup_key", "tenant"):
        a[name] = _clip(a[name])
    sev = {v: k for k, v in _SEVERITY_NAMES.items()}.get(a["severity"], 3)
    pri = _FACILITY_AUTHPRIV * 8 + _SYSLOG_SEVERITY[sev]
    host = re.sub("[^\x21-\x7e]", "_", (hostname or socket.gethostname() or "-")[:255])
    evidence = "; ".join(
        f"{e['detector']}@{e['field']}[{e['start']}:{e['end']}]" for e in a["evidence"][:5]
    )
    ext = {
        "externalId": a["alert_id"],
        "rt": _epoch_millis(a["create_time"]),
        "suser": a["dedup_key"],
        "cs1Label": "tenant",
        "cs1": a["tenant"],
        "cs2Label": "eventIds",
        "cs2": _clip(",".join(a["event_ids"][:10])),
        "cs3Label": "evidence",
        "cs3": _clip(evidence),
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


SYSLOG_FORM = (
    "udp://host:port, tcp://host:port or tls://host:port (an IPv6 address in brackets: "
    "udp://[::1]:514)"
)


def syslog_target(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a syslog address; ValueError says what is wrong.

    Parsed as a URL, so an IPv6 address is written in brackets and read without them:
    split at its last colon, ``udp://[::1]:514`` was sent to the host ``[::1]``, which no
    lookup finds, and ``udp://::1:514`` passed as the host ``::1`` and port 514.
    """
    try:
        parts = urllib.parse.urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{exc}; expected {SYSLOG_FORM}") from None
    extra = parts.path or parts.query or parts.fragment or parts.username or parts.password
    if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname or not port or extra:
        raise ValueError(f"expected {SYSLOG_FORM}")
    return parts.scheme, urllib.parse.unquote(parts.hostname), port


def send_syslog(
    address: str,
    payload: str,
    timeout: float,
    *,
    resolve: Resolver = socket.getaddrinfo,
    tls: SyslogTls = SYSTEM_CAS,
) -> None:
    """UDP: one datagram; TCP: RFC 6587 octet counting; TLS: RFC 5425; IPv4 or IPv6.

    ``timeout`` bounds the whole attempt (name lookup, connect, TLS handshake, send), as
    the webhook's: the lookup ran unbounded in the sink's only thread, so a resolver
    that never answered held every later syslog delivery for as long as it hung.
    """
    try:
        scheme, host, port = syslog_target(address)
        context = tls.attempt_context() if scheme == "tls" else None
    except ValueError as exc:
        raise DeliveryError(f"syslog address {address!r}: {exc}") from None
    message = syslog_message(payload)
    framed = str(len(message)).encode() + b" " + message  # MSG-LEN SP SYSLOG-MSG
    with _Watchdog(timeout, resolve) as watchdog:
        try:
            if scheme == "udp":  # the address family is the one the name resolves to
                found = watchdog.lookup(host, port, socket.SOCK_DGRAM)
                if not found:
                    raise OSError(f"name lookup of {host} found no address")
                family, kind, proto, _, where = found[0]
                with socket.socket(family, kind, proto) as s:
                    s.sendto(message, where)
            elif context is None:
                with watchdog.connect((host, port), timeout) as s:
                    s.sendall(framed)
            else:
                _send_tls(watchdog.connect((host, port), timeout), context, host, framed, watchdog)
        except OSError as exc:
            if watchdog.expired:
                what = f" ({watchdog.unanswered})" if watchdog.unanswered else ""
                raise DeliveryError(f"not sent within {timeout:g} s{what}") from None
            if context is not None:
                raise DeliveryError(f"TLS with {host}:{port}: {_tls_reason(exc)}") from None
            raise DeliveryError(str(exc)) from None


def _send_tls(
    sock: socket.socket, context: ssl.SSLContext, host: str, framed: bytes, watchdog: _Watchdog
) -> None:
    """Handshake, the frame, our close_notify, then the receiver's close, on the watched socket.

    Counted sent once the receiver closes cleanly after our close_notify: with its own
    close_notify, as RFC 5425 (4.4) requires and syslog-ng and rsyslog's ossl driver do,
    or with a bare TCP close (no alert, no reset), as rsyslog's gtls driver does: it has
    then read to the end of our stream. Requiring close_notify made every alert to a
    gtls receiver stored at each of ``max_attempts`` attempts, then dead. Under TLS 1.3
    a receiver refuses a client certificate after the sender's handshake has ended, so
    the frame goes out before the refusal comes back: a fatal alert (syslog-ng, ossl),
    a reset, or the deadline (the watchdog's shutdown reads as a bare close) fails the
    attempt; gtls refuses with a bare close, which no sender can tell from a delivery.
    The TLS runs in memory over the socket (:class:`ssl.SSLObject`):
    ``SSLSocket.unwrap`` returned normally when a fatal alert came instead of
    close_notify, and the refused alert counted delivered.
    """
    with sock:
        tls = _MemoryTls(sock, context, host)
        tls.run(tls.obj.do_handshake)
        tls.obj.write(framed)
        with contextlib.suppress(ssl.SSLWantReadError):  # nothing fed yet: the answer is
            tls.obj.unwrap()  # read below, where an alert is an error (in unwrap, a close)
        tls.flush()
        try:
            while True:  # records after ours: session tickets, then the close
                if tls.run(lambda: tls.obj.read(65536)) == b"":
                    return
        except ssl.SSLZeroReturnError:
            return
        except ssl.SSLEOFError:  # a TCP close without close_notify (no alert, no reset)
            if watchdog.expired:
                raise
            return


class _MemoryTls:
    """A TLS client in memory, its records carried over a (watched) socket by :meth:`run`."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, host: str) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)

    def flush(self) -> None:
        """Sends what TLS has written."""
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def run(self, step: Callable[[], object]) -> object:
        """``step``'s result, feeding it what the socket reads until it needs no more."""
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self.flush()
                data = self.sock.recv(65536)
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
                continue
            except ssl.SSLError:  # our alert, if the peer still listens: the error is the news
                with contextlib.suppress(OSError):
                    self.flush()
                raise
            self.flush()
            return result


def _tls_reason(exc: OSError) -> str:
    """The certificate's fault for a verification failure, else the error's message."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc)


@dataclass(frozen=True)
class SinkConfig:
    """Where alerts go and how hard to try."""

    webhook_url: str = ""
    webhook_secret: str = ""
    syslog_address: str = ""
    timeout: float = 5.0
    """Seconds an attempt may take in all (name lookup, connect, a proxy's CONNECT, TLS, send,
    answer)."""
    max_attempts: int = 24
    """Attempts before the dead-letter record: with ``retry_base`` 1 s the waits are 1 s,
    2 s, ... 256 s, then 5 minutes, so a row is retried for about 80 minutes."""
    retry_base: float = 1.0
    """First retry delay in seconds; doubles each attempt up to ``MAX_BACKOFF``."""
    syslog_tls: SyslogTls = SYSTEM_CAS
    """Whom a ``tls://`` syslog address must be and what this sink presents to it."""
    resolve: Resolver = field(default=socket.getaddrinfo, repr=False, compare=False)
    """The sinks' name lookup (:func:`socket.getaddrinfo`; tests pass one that hangs)."""

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
            send_webhook(
                self.webhook_url, self.webhook_secret, payload, self.timeout, resolve=self.resolve
            )
        elif sink == "syslog":
            send_syslog(
                self.syslog_address,
                payload,
                self.timeout,
                resolve=self.resolve,
                tls=self.syslog_tls,
            )
        else:
            raise DeliveryError(f"sink {sink!r} is not configured")


PASS_ROWS = 100
"""Rows a deliverer's pass tries at most."""
TURN_ROWS = 10
"""Due rows of one tenant (and sink) a pass takes at most: with a single tenant due, a pass
is this many rows, and the next pass follows at once."""

_DUE = """
WITH RECURSIVE sinks(sink) AS ({sinks}),
tenants(sink, tenant) AS (
  SELECT sink, (SELECT x.tenant FROM {outbox}
      WHERE x.status = 'pending' AND x.sink = sinks.sink ORDER BY x.sink, x.tenant LIMIT 1)
  FROM sinks
  WHERE (SELECT min(d.next_attempt_time) FROM {due}
      WHERE d.status = 'pending' AND d.sink = sinks.sink) <= :now
  UNION ALL
  SELECT t.sink, (SELECT x.tenant FROM {outbox}
      WHERE x.status = 'pending' AND x.sink = t.sink AND x.tenant > t.tenant
      ORDER BY x.sink, x.tenant LIMIT 1)
  FROM tenants t WHERE t.tenant IS NOT NULL
),
turns AS (
  SELECT sink, tenant, first_due FROM (
    SELECT t.sink, t.tenant, (SELECT x.next_attempt_time FROM {outbox}
        WHERE x.status = 'pending' AND x.sink = t.sink
          AND x.tenant >= t.tenant AND x.tenant <= t.tenant
        ORDER BY x.sink, x.tenant, x.next_attempt_time LIMIT 1) AS first_due
    FROM tenants t WHERE t.tenant IS NOT NULL
  ) firsts WHERE first_due <= :now ORDER BY first_due, sink, tenant LIMIT {rows}
)
SELECT tenant, alert_id, sink, attempts FROM (
  SELECT r.tenant, r.alert_id, r.sink, r.attempts, t.first_due, row_number() OVER (
      PARTITION BY t.sink, t.tenant ORDER BY r.next_attempt_time, r.alert_id) AS turn
  FROM turns t {rows_of_each}
) ranked ORDER BY turn, first_due, sink, tenant LIMIT {rows}
"""
_OWN_DUE = """(SELECT {columns} FROM {outbox}
      WHERE x.status = 'pending' AND x.sink = t.sink
        AND x.tenant >= t.tenant AND x.tenant <= t.tenant AND x.next_attempt_time <= :now
      ORDER BY x.sink, x.tenant, x.next_attempt_time LIMIT {turn})"""


def due_rows(dialect: str, sinks: tuple[str, ...]) -> sa.TextClause:
    """A pass's rows (bind ``now``): up to TURN_ROWS due rows of each tenant, taken in turns.

    Tenants with pending rows of each sink are walked on ``alerting_deliveries_turns``,
    one probe each (a loose index scan: a recursive CTE), and so is each one's oldest
    pending row; the PASS_ROWS tenants due longest take turns, the one due longest
    first, each giving its TURN_ROWS rows due longest (on SQLite, which has no LATERAL,
    by rowid). So a pass costs a few probes per tenant with rows pending, however many
    one of them has queued; with no row of a sink due (every pending row waiting out its
    backoff, as while a receiver is down), one probe of ``alerting_deliveries_waiting``
    and no walk of that sink's tenants: the walk cost 23 ms a poll on PostgreSQL with
    1,000 tenants' rows pending (old query 0.5 ms). The probe is per sink: probing every
    sink's rows, one row due of a sink this process has no address for (left pending
    for good) or of another deliverer's sink had each poll walk all tenants of this one
    (152 ms on PostgreSQL, 29 ms on SQLite with 10,000 tenants pending). A tenant's rows
    are bounded (``>=``, ``<=``), not equated, and SQLite is told the index (``INDEXED
    BY``): with the tenant equated, the order asked for is the due time's alone, which
    ``alerting_deliveries_due`` gives too, and PostgreSQL (with statistics) and SQLite
    (for some stores' rows: it keeps no statistics) took that index, reading the due
    rows of every other tenant first: 85-110 and 35-70 ms a pass at 100,000 due rows of one tenant.
    """
    outbox, due = "alerting_deliveries x", "alerting_deliveries d"
    if dialect == "postgresql":
        columns = "x.tenant, x.alert_id, x.sink, x.attempts, x.next_attempt_time"
        own = _OWN_DUE.format(columns=columns, outbox=outbox, turn=TURN_ROWS)
        rows_of_each = f"CROSS JOIN LATERAL {own} r"
    else:
        outbox += " INDEXED BY alerting_deliveries_turns"
        due += " INDEXED BY alerting_deliveries_waiting"
        own = _OWN_DUE.format(columns="x.rowid", outbox=outbox, turn=TURN_ROWS)
        rows_of_each = f"JOIN alerting_deliveries r ON r.rowid IN {own}"
    sink_rows = " UNION ALL ".join(
        f"SELECT CAST(:sink_{i} AS VARCHAR(32))" for i in range(len(sinks))
    )
    sql = _DUE.format(
        sinks=sink_rows, outbox=outbox, due=due, rows=PASS_ROWS, rows_of_each=rows_of_each
    )
    return sa.text(sql).bindparams(
        sa.bindparam("now", type_=TS), **{f"sink_{i}": name for i, name in enumerate(sinks)}
    )


def first_due(dialect: str, sinks: tuple[str, ...]) -> sa.TextClause:
    """Up to PASS_ROWS + 1 due rows of each sink (bind ``now``), due longest first.

    Read off ``alerting_deliveries_waiting``: when no more than PASS_ROWS are due,
    they are the whole pass (:func:`in_turns`) and no tenant is walked. Each sink
    apart, so another sink's due rows (one this process has no address for, left
    pending for good) are not read; SQLite is told the index, as in :func:`due_rows`.
    """
    outbox = "alerting_deliveries d"
    if dialect != "postgresql":
        outbox += " INDEXED BY alerting_deliveries_waiting"
    sql = " UNION ALL ".join(
        "SELECT * FROM (SELECT d.tenant, d.alert_id, d.sink, d.attempts, d.next_attempt_time"
        f" FROM {outbox} WHERE d.status = 'pending' AND d.sink = :sink_{i}"
        " AND d.next_attempt_time <= :now"
        f" ORDER BY d.sink, d.next_attempt_time LIMIT {PASS_ROWS + 1}) s{i}"
        for i in range(len(sinks))
    )
    return sa.text(sql).bindparams(
        sa.bindparam("now", type_=TS), **{f"sink_{i}": name for i, name in enumerate(sinks)}
    )


def in_turns(rows: Sequence[sa.Row[Any]]) -> list[sa.Row[Any]]:
    """A pass of these due rows, in the order :func:`due_rows` would give them.

    Up to TURN_ROWS of each tenant (and sink), due longest first, one of each in turn.
    """
    turn: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], dt.datetime] = {}
    ranked = []
    for row in sorted(rows, key=lambda r: (r.next_attempt_time, r.alert_id)):
        key = (row.sink, row.tenant)
        turn[key] = turn.get(key, 0) + 1
        first.setdefault(key, row.next_attempt_time)
        if turn[key] <= TURN_ROWS:
            ranked.append(((turn[key], first[key], row.sink, row.tenant), row))
    return [row for _, row in sorted(ranked, key=lambda r: r[0])]


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
        self._due = due_rows(engine.dialect.name, self.sinks) if self.sinks else None
        self._first = first_due(engine.dialect.name, self.sinks) if self.sinks else None

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
        """Tries due rows of the configured sinks once; returns how many were attempted.

        Tenants take turns (:func:`due_rows`): a row of each tenant with rows due,
        the one due longest first, then each one's next, up to TURN_ROWS each.
        With no more than PASS_ROWS rows due they are read off in due order and put
        in turns here (:func:`first_due`): walking every tenant with rows pending
        for one row due (as while a receiver is down, rows coming due one by one
        out of their backoff) took 139 ms a pass on PostgreSQL, 32 ms on SQLite,
        with 10,000 tenants pending (old query 0.4 and 0.2 ms).
        Taking the PASS_ROWS rows due longest, a tenant with thousands of alerts
        queued held every other tenant's fresh alert until its backlog was sent.
        Rows for a sink this process has no address for (written by a replica,
        or an earlier configuration, that had one) are left pending for a
        process that has it, rather than tried and failed here.
        """
        if self._due is None or self._first is None:
            return 0
        now = self.clock()
        with self.engine.connect() as conn:
            few = conn.execute(self._first, {"now": now}).all()
            due = conn.execute(self._due, {"now": now}).all() if len(few) > PASS_ROWS else None
        due = in_turns(few) if due is None else due
        for row in due:
            if self._stop.is_set():
                break
            claimed = self._claim(row.tenant, row.alert_id, row.sink, row.attempts)
            if claimed is not None:
                lease, payload = claimed
                self._attempt(row.tenant, row.alert_id, row.sink, row.attempts, lease, payload)
        return len(due)

    def _pending(
        self, tenant: str, alert_id: str, sink: str, attempts: int
    ) -> sa.ColumnElement[bool]:
        """The row, still pending after ``attempts`` attempts (no one else moved it on)."""
        d = deliveries
        return sa.and_(
            d.c.tenant == tenant,
            d.c.alert_id == alert_id,
            d.c.sink == sink,
            d.c.status == "pending",
            d.c.attempts == attempts,
        )

    def _claim(
        self, tenant: str, alert_id: str, sink: str, attempts: int
    ) -> tuple[dt.datetime, str] | None:
        """Leases a still-due row from now on and reads its payload in the same statement.

        The time is taken here, not when the pass began: rows reached late in a
        slow pass would otherwise be claimed with a lease already run out. The
        payload is read here, not with the due list, so an erasure's scrub
        committed meanwhile is sent, not the excerpts it removed.
        """
        now = self.clock()
        lease = now + dt.timedelta(seconds=_LEASE + self.config.timeout)
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            payload = conn.execute(
                sa.update(deliveries)
                .where(
                    self._pending(tenant, alert_id, sink, attempts),
                    deliveries.c.next_attempt_time <= now,
                )
                .values(next_attempt_time=lease)
                .returning(deliveries.c.payload)
            ).scalar()
        return None if payload is None else (lease, payload)

    def _attempt(
        self, tenant: str, alert_id: str, sink: str, attempts: int, lease: dt.datetime, payload: str
    ) -> None:
        error = ""
        try:
            self.config.send(sink, payload)
        except DeliveryError as exc:
            error = str(exc)[:2000]
        except Exception as exc:  # a row that cannot be sent is retried and dead-lettered,
            error = f"{type(exc).__name__}: {exc}"[:2000]  # never the end of the thread
        now = self.clock()
        tried = attempts + 1
        dead = bool(error) and tried >= self.config.max_attempts
        if not error:
            values: dict[str, object] = {
                "status": "delivered",
                "attempts": tried,
                "delivered_time": now,
                "last_error": None,
            }
        elif dead:  # the time it died, so an operator can re-send what died since a time
            values = {
                "status": "dead",
                "attempts": tried,
                "last_error": error,
                "next_attempt_time": now,
            }
        else:
            delay = backoff(self.config.retry_base, attempts)
            values = {
                "attempts": tried,
                "last_error": error,
                "next_attempt_time": now + dt.timedelta(seconds=delay),
            }
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            held = conn.execute(
                sa.update(deliveries)
                .where(
                    self._pending(tenant, alert_id, sink, attempts),
                    deliveries.c.next_attempt_time == lease,
                )
                .values(**values)
            ).rowcount
        if not held:  # the lease ran out and another deliverer took the row: its outcome stands
            log.warning("alert delivery outcome dropped: lease lost", extra={"alert": alert_id})
        elif dead:
            log.error(
                "alert delivery failed for good",
                extra={"alert": alert_id, "sink": sink, "error": error},
            )
