"""A health watch whose client takes nothing holds no service's thread.

A status is set by the services' own workers (the search indexer, the notary, alerting,
reporting an outage or its end), and a watch's send waits until its bytes leave. A client
with any valid key that opened a ``Health/Watch`` announcing an HTTP/2 flow-control window
of 0, and never raised it, held the next ``set`` for as long as the watch stayed open:
the worker that reported stopped for good (review, 2026-12-06). Sends now run apart from
the setters, one at a time per watch. The client here is a raw HTTP/2 connection (h2),
as nothing in grpcio withholds a window; the server is the real one.
"""

from __future__ import annotations

import queue
import socket
import threading
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common import client
from tests.conftest import Running, serve_suite
from tests.contract.test_reflection_streams import running  # noqa: F401 (fixture)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ANSWERED = 10.0


class WindowlessWatch:
    """A ``Health/Watch`` on a raw HTTP/2 connection that announces a window of 0 and never
    raises it (it answers the server's settings and pings, so keepalive keeps it)."""

    def __init__(self, address: str, key: str) -> None:
        host, port = address.rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)))
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._conn.initiate_connection()
        self._conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        stream = self._conn.get_next_available_stream_id()
        self._conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/grpc.health.v1.Health/Watch"),
                (":authority", address),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("authorization", f"Bearer {key}"),
            ],
        )
        request = health_pb2.HealthCheckRequest().SerializeToString()
        frame = b"\x00" + len(request).to_bytes(4, "big") + request
        self._conn.send_data(stream, frame, end_stream=True)
        self._sock.sendall(self._conn.data_to_send())
        self.answered = threading.Event()
        """Set once the server sent the call's headers: the watch is open, its first
        status waiting for a window."""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while data := self._sock.recv(65536):
                for event in self._conn.receive_data(data):  # no WINDOW_UPDATE for any DATA
                    if isinstance(event, h2.events.ResponseReceived):
                        self.answered.set()
                if out := self._conn.data_to_send():
                    self._sock.sendall(out)
        except (OSError, h2.exceptions.ProtocolError):  # closed by close(), or the server
            return

    def close(self) -> None:
        """Ends the connection (the server's waiting send fails, and the watch ends)."""
        self._sock.close()


def test_a_watch_that_takes_nothing_holds_no_setter_and_no_other_watch(
    running: Running,  # noqa: F811 (the fixture)
) -> None:
    """The windowless watch open, each status set returns at once; ``Check`` answers it,
    and an ordinary watch of another key receives it."""
    health = running.suite.health  # type: ignore[attr-defined]
    windowless = WindowlessWatch(running.address, running.keys["gateway"])
    channel = running.as_role("auditor")
    try:
        assert windowless.answered.wait(ANSWERED)
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=60)
        seen: queue.SimpleQueue[int] = queue.SimpleQueue()

        def read() -> None:
            try:
                for answer in watch:
                    seen.put(answer.status)
            except grpc.RpcError:  # cancelled at the end
                pass

        threading.Thread(target=read, daemon=True).start()
        assert seen.get(timeout=ANSWERED) == SERVING

        for status in (NOT_SERVING, SERVING):
            done = threading.Event()
            threading.Thread(target=lambda s=status, d=done: (health.set("", s), d.set())).start()
            assert done.wait(ANSWERED), "set() waited for a watch that takes nothing"
            check = stub.Check(health_pb2.HealthCheckRequest(), timeout=ANSWERED)
            assert check.status == status
            assert seen.get(timeout=ANSWERED) == status
        watch.cancel()
    finally:
        windowless.close()  # before the suite stops: a send still waiting on it fails
        channel.close()


def test_a_stop_without_grace_tells_every_watch_first(store_url: str, tmp_path: Path) -> None:
    """``stop(0)`` cancels every call at once: each watch is told NOT_SERVING before that.
    Sent from the pool without a wait, 1 to 5 of 50 watches were cut off untold (review)."""
    suite, keys = serve_suite(tmp_path, None, database_url=store_url, services=("ingest",))
    channel = client.channel(f"127.0.0.1:{suite.port}", keys["auditor"])
    try:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        watches = [stub.Watch(health_pb2.HealthCheckRequest(), timeout=60) for _ in range(50)]
        assert {next(w).status for w in watches} == {SERVING}
        suite.stop(0)
        assert [next(w).status for w in watches] == [NOT_SERVING] * len(watches)
    finally:
        channel.close()
