"""AppendStreams are capped: each holds one of the server's 64 RPC threads while open.

Uncapped, about 60 open streams (gateways, or any key: a stream is opened before
any event says which tenant it writes) left no thread for the other RPCs of the
process, a gateway's unary ``Append`` included. A key that may write to no tenant
is refused at once.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client, config
from aiaudit.common.config import ConfigError
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, serve_suite
from tests.helpers import interaction, wait_until


def limits_file(tmp_path: Path, **ingest: int) -> Path:
    """A config file with these ``ingest:`` keys."""
    path = tmp_path / "aiaudit.yaml"
    path.write_text(yaml.safe_dump({"ingest": ingest}))
    return path


@pytest.fixture
def small_server(store_url: str, tmp_path: Path) -> Iterator[Running]:
    """Two streams at most, one a caller."""
    cfg = limits_file(tmp_path, max_append_streams=2, max_append_streams_per_caller=1)
    suite, keys = serve_suite(tmp_path, cfg, database_url=store_url)
    address = f"127.0.0.1:{suite.port}"
    running = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    yield running
    running.channel.close()
    suite.stop()


class Stream:
    """An AppendStream of one role, fed request by request."""

    def __init__(self, server: Running, role: str) -> None:
        self._channel = server.as_role(role)
        self._requests: queue.SimpleQueue[pb.AppendStreamRequest | None] = queue.SimpleQueue()
        stub = pb_grpc.IngestServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.call = stub.AppendStream(iter(self._requests.get, None), timeout=60)
        self._next_id = 0

    def append(self, tenant: str) -> pb.AppendStreamResponse:
        """Sends one event and waits for its answer (a refused stream raises here)."""
        self._next_id += 1
        self._requests.put(
            pb.AppendStreamRequest(request_id=self._next_id, events=[interaction(tenant)])
        )
        answer: pb.AppendStreamResponse = next(self.call)
        return answer

    def refusal(self, tenant: str) -> tuple[str, dict[str, str], str] | None:
        """None when the stream answers an append; else the refusal's reason, metadata, message."""
        try:
            answer = self.append(tenant)
        except grpc.RpcError as err:
            self.close()
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            assert status is not None
            info = error_details_pb2.ErrorInfo()
            assert status.details[0].Unpack(info)
            return info.reason, dict(info.metadata), status.message
        assert answer.status.code == 0 and len(answer.receipts) == 1, answer
        return None

    def finish(self) -> None:
        """Ends the requests (half-close) and reads the stream to its end."""
        self._requests.put(None)
        assert list(self.call) == []
        self._channel.close()

    def close(self) -> None:
        """Cancels the stream."""
        self._requests.put(None)
        self.call.cancel()
        self._channel.close()


def opens(server: Running, role: str, tenant: str) -> bool:
    """Whether a new stream of ``role`` is taken (it is finished again at once)."""
    stream = Stream(server, role)
    if stream.refusal(tenant) is not None:
        return False
    stream.finish()
    return True


LIMITS = {"limit": "2", "per_caller": "1"}


@pytest.fixture
def streams(small_server: Running) -> Iterator[Callable[[str], Stream]]:
    """Opens streams of a role on the small server; whatever is still open is closed after."""
    opened: list[Stream] = []

    def open_stream(role: str) -> Stream:
        opened.append(Stream(small_server, role))
        return opened[-1]

    yield open_stream
    for stream in opened:
        stream.close()


def test_streams_beyond_the_limits_are_refused_and_freed_when_they_end(
    small_server: Running, streams: Callable[[str], Stream], tenant: str
) -> None:
    gateway = streams("gateway")  # holds a slot from its opening on
    assert gateway.refusal(tenant) is None
    assert streams("gateway").refusal(tenant) == (
        "APPEND_STREAMS_EXHAUSTED",
        LIMITS,
        "caller 'test-gateway' has 1 AppendStream streams open; close one, or send unary Append",
    )
    admin = streams("admin")
    assert admin.refusal(tenant) is None  # another caller: the second slot
    # The server is full: one more is refused for that, before the caller's own limit.
    assert streams("gateway").refusal(tenant) == (
        "APPEND_STREAMS_EXHAUSTED",
        LIMITS,
        "2 AppendStream streams are open on this server, its limit; "
        "close one, or send unary Append",
    )
    # The other RPCs still have threads, and the open streams go on.
    unary = pb_grpc.IngestServiceStub(small_server.channel)  # type: ignore[no-untyped-call]
    assert len(unary.Append(pb.AppendRequest(events=[interaction(tenant)])).receipts) == 1
    assert gateway.refusal(tenant) is None and admin.refusal(tenant) is None

    gateway.close()  # cancelled: its slot comes back once the server sees the stream end
    wait_until(lambda: opens(small_server, "gateway", tenant))
    assert streams("gateway").refusal(tenant) is None  # the server is full again
    admin.finish()  # ended by the client: its slot comes back too
    wait_until(lambda: opens(small_server, "admin", tenant))


def test_a_stream_ended_by_its_deadline_gives_its_slot_back(
    small_server: Running, tenant: str
) -> None:
    """The server cancels a stream past its deadline: the slot comes back then."""
    channel = small_server.as_role("gateway")
    requests: queue.SimpleQueue[pb.AppendStreamRequest | None] = queue.SimpleQueue()
    try:
        stub = pb_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        # 10 s: the first answer and the look at the slot must come before it, on a loaded
        # machine too (3 s left one or two).
        short = stub.AppendStream(iter(requests.get, None), timeout=10)
        requests.put(pb.AppendStreamRequest(request_id=1, events=[interaction(tenant)]))
        assert next(short).status.code == 0  # open: it holds the caller's one slot
        assert not opens(small_server, "gateway", tenant)
        with pytest.raises(grpc.RpcError) as ended:
            next(short)  # nothing more is sent: the deadline ends it
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        requests.put(None)
        channel.close()
    wait_until(lambda: opens(small_server, "gateway", tenant))


def test_limits_are_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    cfg = limits_file(tmp_path, max_append_streams=30)
    env = {"AIAUDIT_INGEST_MAX_APPEND_STREAMS_PER_CALLER": "10"}
    own = ingest_settings.load(config.load(cfg, env=env))
    assert (own.max_append_streams, own.max_append_streams_per_caller) == (30, 10)
    defaults = ingest_settings.load(config.load(env={}))
    assert (defaults.max_append_streams, defaults.max_append_streams_per_caller) == (24, 8)


@pytest.mark.parametrize(
    ("most", "per_caller", "message"),
    [
        (0, 1, r"'ingest\.max_append_streams': '?0'? is invalid: must be positive"),
        (49, 4, r"'ingest\.max_append_streams': 49 is invalid: 1 to 48"),
        (4, 5, r"'ingest\.max_append_streams_per_caller': 5 is invalid: 1 to max_append_streams"),
        (4, 0, r"'ingest\.max_append_streams_per_caller': '?0'? is invalid: must be positive"),
        (None, 25, r"'ingest\.max_append_streams_per_caller': 25 is invalid: .* \(24\)"),
    ],
    ids=["none", "over-the-ceiling", "per-caller-over-all", "none-a-caller", "over-the-default"],
)
def test_stream_limits_that_cannot_work_are_refused_at_start(
    tmp_path: Path, most: int | None, per_caller: int, message: str
) -> None:
    env = {"AIAUDIT_INGEST_MAX_APPEND_STREAMS_PER_CALLER": str(per_caller)}
    if most is not None:
        env["AIAUDIT_INGEST_MAX_APPEND_STREAMS"] = str(most)
    with pytest.raises(ConfigError, match=message):
        ingest_settings.load(config.load(env=env))
    ingest = {"max_append_streams_per_caller": per_caller}
    if most is not None:
        ingest["max_append_streams"] = most
    with pytest.raises(ConfigError, match=message):  # `serve` does not start
        serve_suite(tmp_path, limits_file(tmp_path, **ingest))


def test_a_key_that_writes_nowhere_opens_no_stream(small_server: Running, tenant: str) -> None:
    """It could only hold one of the server's threads: refused before taking a slot."""
    for _ in range(3):  # more than the caps: no slot was taken by the refused ones
        stream = Stream(small_server, "developer")
        with pytest.raises(grpc.RpcError) as refused:
            stream.append(tenant)
        stream.close()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'test-developer' lacks 'events.write' on every tenant" in str(
            refused.value.details()
        )
    assert opens(small_server, "gateway", tenant) and opens(small_server, "admin", tenant)
