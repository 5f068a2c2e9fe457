"""WatchAlerts streams are capped: each holds one of the server's 64 RPC threads while open.

Found by a review (2026-12-03): 64 streams opened by a ``developer`` key starved
every other RPC of the process, a gateway's ``Append`` included (DEADLINE_EXCEEDED).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.alerting.settings import AlertingSettings
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import client, config
from aiaudit.common.config import ConfigError
from aiaudit.common.store import open_store
from tests.alerting.conftest import serving
from tests.alerting.test_service import Server, send
from tests.conftest import serve_suite
from tests.helpers import close_listener, interaction, open_log, wait_until


@pytest.fixture
def small_server(store_url: str, alerting_url: str, tmp_path: Path) -> Iterator[Server]:
    """Three streams at most, two a caller."""
    with serving(
        store_url, alerting_url, tmp_path, max_watch_streams=3, max_watch_streams_per_caller=2
    ) as running:
        yield running


def open_watch(server: Server, role: str, tenant: str) -> grpc.Future:  # type: ignore[type-arg]
    """A stream, subscribed (its initial metadata came) or refused (it raises on reading)."""
    _, keys, address = server
    stub = pb_grpc.AlertingServiceStub(client.channel(address, keys[role]))  # type: ignore[no-untyped-call]
    stream = stub.WatchAlerts(pb.WatchAlertsRequest(parent=f"tenants/{tenant}"))
    stream.initial_metadata()
    return stream


def refusal(stream: grpc.Future) -> str:  # type: ignore[type-arg]
    """The ErrorInfo reason a refused stream ends with ("" while it is open)."""
    if stream.running():
        return ""
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    status = rpc_status.from_call(info.value)
    assert status is not None
    reason = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(reason)
    return reason.reason


def test_streams_beyond_the_limits_are_refused_and_freed_when_closed(
    small_server: Server, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = small_server
    mine = [open_watch(small_server, "developer", tenant) for _ in range(2)]
    assert [refusal(s) for s in mine] == ["", ""]
    assert refusal(open_watch(small_server, "developer", tenant)) == "WATCH_STREAMS_EXHAUSTED"
    theirs = open_watch(small_server, "admin", tenant)  # another caller: the third slot
    assert refusal(theirs) == ""
    assert refusal(open_watch(small_server, "admin", tenant)) == "WATCH_STREAMS_EXHAUSTED"
    send(channel, [interaction(tenant)])  # the other RPCs still have threads
    mine[0].cancel()  # its slot comes back once the server sees the stream end

    def reopened() -> bool:
        stream = open_watch(small_server, "admin", tenant)
        if refusal(stream):
            return False
        stream.cancel()
        return True

    wait_until(reopened)
    for stream in (mine[1], theirs):
        stream.cancel()


@pytest.mark.parametrize(
    ("most", "per_caller", "named"),
    [
        (0, 1, "max_watch_streams"),
        (49, 4, "max_watch_streams"),
        (4, 5, "max_watch_streams_per_caller"),
        (4, 0, "max_watch_streams_per_caller"),
    ],
)
def test_stream_limits_that_cannot_work_are_refused_at_start(
    most: int, per_caller: int, named: str
) -> None:
    settings = AlertingSettings(max_watch_streams=most, max_watch_streams_per_caller=per_caller)
    with pytest.raises(ConfigError, match=f"'alerting.{named}': "):
        settings.validate()


# ---- streams of clients that vanished: the server's keepalive ----

PING, GOAWAY = 6, 7
"""HTTP/2 frame types."""
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
KEEPALIVE, KEEPALIVE_TIMEOUT = 1.0, 1.0


class DarkProxy:
    """A TCP proxy to the server that can go dark: it then passes nothing either way and
    closes nothing, as a NAT that dropped its mapping or a cut network. It counts the
    HTTP/2 frames each side sends, by type and flags."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._dark = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._frames: list[tuple[str, int, int]] = []  # (sender, type, flags)
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:
                return  # closed
            far = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._sockets += [near, far]
            threading.Thread(target=self._pump, args=(near, far, "client"), daemon=True).start()
            threading.Thread(target=self._pump, args=(far, near, "server"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, sender: str) -> None:
        pending, preface = b"", sender == "client"
        while not self._dark.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data or self._dark.is_set():
                break
            pending += data
            if preface and len(pending) >= len(PREFACE):
                pending, preface = pending[len(PREFACE) :], False
            while not preface and len(pending) >= 9:
                end = 9 + int.from_bytes(pending[:3], "big")
                if len(pending) < end:
                    break
                with self._lock:
                    self._frames.append((sender, pending[3], pending[4]))
                pending = pending[end:]
            try:
                sink.sendall(data)
            except OSError:
                return
        self._closed.wait()  # dark: both ends stay open, nothing passes

    def count(self, sender: str, kind: int, flags: int = 0) -> int:
        """Frames of a type (and flags) the client or the server has sent so far."""
        with self._lock:
            return sum(1 for f in self._frames if f == (sender, kind, flags))

    def go_dark(self) -> None:
        self._dark.set()

    def close(self) -> None:
        self._closed.set()
        close_listener(self._listener)  # its accepting thread ends too
        with self._lock:
            for s in self._sockets:
                s.close()


class Suites:
    """Servers of the suite with top-level settings of a test's own, stopped after it."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path
        self._stops: list[Callable[[], object]] = []

    def start(self, tenant: str, **settings: object) -> tuple[dict[str, str], str]:
        """Alerting alone, on SQLite (the transport is the subject), two watches a caller;
        (keys, address). ``tenant``'s log is opened (a watch of a tenant with none is
        NOT_FOUND)."""
        where = self._tmp / f"suite-{len(self._stops)}"
        where.mkdir()
        url = f"sqlite:///{where / 'aiaudit.db'}"
        open_store(url, run_migrations=True).close()
        open_log(url, tenant)
        sections = where / "sections.yaml"
        sections.write_text(yaml.safe_dump({"alerting": {"max_watch_streams_per_caller": 2}}))
        suite, keys = serve_suite(
            where, sections, database_url=url, services=("alerting",), **settings
        )
        self._stops.append(suite.stop)
        return keys, f"127.0.0.1:{suite.port}"

    def proxy(self, address: str) -> DarkProxy:
        """A proxy to a server started here, closed after the test (before the server)."""
        proxy = DarkProxy(int(address.rsplit(":", 1)[1]))
        self._stops.insert(0, proxy.close)
        return proxy

    def stop(self) -> None:
        for stop in self._stops:
            stop()


@pytest.fixture
def suites(tmp_path: Path) -> Iterator[Suites]:
    running = Suites(tmp_path)
    yield running
    running.stop()


def _watch(channel: grpc.Channel, tenant: str) -> Any:
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    stream = stub.WatchAlerts(pb.WatchAlertsRequest(parent=f"tenants/{tenant}"))
    stream.initial_metadata()  # subscribed, or refused
    return stream


def test_the_slots_of_a_client_that_vanished_come_back_within_the_keepalive_bound(
    suites: Suites, tenant: str
) -> None:
    """Found by a review (2026-12-05): the server set no keepalive, so the streams of a
    client whose path went dark (no FIN, no RST) stayed open for gRPC's two hours of
    TCP keepalive, and their principal was refused every new watch meanwhile. Here the
    server pings every second and waits a second for the answer."""
    keys, address = suites.start(
        tenant, keepalive_time_seconds=KEEPALIVE, keepalive_timeout_seconds=KEEPALIVE_TIMEOUT
    )
    proxy = suites.proxy(address)
    far = client.channel(proxy.address, keys["developer"])
    streams = [_watch(far, tenant) for _ in range(2)]
    near = client.channel(address, keys["developer"])
    assert refusal(_watch(near, tenant)) == "WATCH_STREAMS_EXHAUSTED"
    # Quiet and healthy: pinged again and again (past gRPC's two pings without data),
    # each answered, and kept.
    wait_until(lambda: proxy.count("server", PING) >= 4)
    assert all(s.running() for s in streams)
    proxy.go_dark()
    for stream in streams:
        stream.cancel()  # the client gives up: nothing reaches the server
    far.close()

    def reopened() -> bool:
        stream = _watch(near, tenant)
        if refusal(stream):
            return False
        stream.cancel()
        return True

    # The next ping, unanswered for the timeout, ends both streams; the watch loop sees
    # it within its interval. Before, the slots stayed taken for about two hours: 15 s of
    # room for a loaded machine (3 s was close to what a stalled process loses).
    wait_until(reopened, timeout=KEEPALIVE + KEEPALIVE_TIMEOUT + 15)
    near.close()


def test_clients_may_keep_a_quiet_watch_alive_as_often_as_the_server_permits(
    suites: Suites, tenant: str
) -> None:
    """A client's own keepalive within keepalive_min_client_ping_seconds is answered, with
    or without calls; more often is GOAWAY too_many_pings. Under gRPC's defaults (5
    minutes, 2 hours without calls) a client pinging a quiet watch every 20 s got it.
    (The server's own pings, every 30 s by default, would stand in for the client's.)
    Permitted every 2 s here: a gRPC core client pings at most once a second."""
    keys, address = suites.start(tenant, keepalive_min_client_ping_seconds=2.0)

    def pinging(every_ms: int) -> tuple[DarkProxy, grpc.Channel, Any]:
        proxy = suites.proxy(address)
        options = [
            ("grpc.keepalive_time_ms", every_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),  # as grpc-go and grpc-java ping
        ]
        channel = client.channel(proxy.address, keys["developer"], options=options)
        return proxy, channel, _watch(channel, tenant)

    allowed, patient, watch = pinging(2500)
    hasty, _, refused = pinging(1000)
    wait_until(lambda: allowed.count("client", PING) >= 4, timeout=60)  # past 2 strikes
    assert allowed.count("server", GOAWAY) == 0 and watch.running()
    watch.cancel()
    pinged = allowed.count("client", PING)
    wait_until(lambda: allowed.count("client", PING) >= pinged + 2, timeout=60)  # no call
    assert allowed.count("server", GOAWAY) == 0
    patient.close()
    wait_until(lambda: hasty.count("server", GOAWAY) == 1)
    with pytest.raises(grpc.RpcError) as info:
        next(refused)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_keepalive_settings_out_of_range_are_refused_at_start(tmp_path: Path) -> None:
    for name, value in (
        ("keepalive_time_seconds", 0.5),
        ("keepalive_timeout_seconds", 601),
        ("keepalive_min_client_ping_seconds", 7201),
    ):
        with pytest.raises(ConfigError, match=f"setting '{name}': "):
            config.load(None, env={}, overrides={name: value, "data_dir": tmp_path})
