"""kill -9 the server mid-stream: every acknowledged event survives, exactly once."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import serve_suite, subprocess_env, write_keys
from tests.helpers import clear_on_postgres_env, free_port, interaction, serve_process


def serve(store_url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return serve_process(
        ["--address", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
        {
            **subprocess_env(),
            "AIAUDIT_DATABASE_URL": store_url,
            "AIAUDIT_API_KEYS_FILE": str(data_dir / "keys.yaml"),
            **clear_on_postgres_env(store_url),
        },
    )


def test_kill_9_mid_stream_loses_no_acknowledged_event(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    if store_url.startswith("sqlite"):
        store_url = f"sqlite:///{tmp_path / 'kill.db'}"
    port = free_port()
    key = write_keys(tmp_path / "keys.yaml")["gateway"]
    proc = serve(store_url, tmp_path, port)
    events = [interaction(tenant, f"k{i}", text=f"prompt {i}") for i in range(2000)]
    acked: dict[str, bytes] = {}
    killed = threading.Event()

    def requests():
        for i in range(0, len(events), 5):
            if killed.is_set():
                return
            yield pb.AppendStreamRequest(request_id=i, events=events[i : i + 5])

    channel = client.channel(f"127.0.0.1:{port}", key)
    stream = pb_grpc.IngestServiceStub(channel).AppendStream(requests())
    try:
        for response in stream:
            assert response.status.code == 0
            for r in response.receipts:
                acked[r.event_id] = r.leaf_hash
            if len(acked) >= 300 and not killed.is_set():
                os.kill(proc.pid, signal.SIGKILL)
                killed.set()
    except grpc.RpcError as err:
        assert err.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNKNOWN,
        )
    channel.close()
    proc.wait()
    assert killed.is_set() and len(acked) >= 300

    # Restart and resend everything, as the SDK would: acked events come back as duplicates.
    proc = serve(store_url, tmp_path, port)
    try:
        with client.channel(f"127.0.0.1:{port}", key) as channel:
            stub = pb_grpc.IngestServiceStub(channel)
            for i in range(0, len(events), 100):
                for r in stub.Append(pb.AppendRequest(events=events[i : i + 100])).receipts:
                    if r.event_id in acked:
                        assert r.duplicate and r.leaf_hash == acked[r.event_id]
    finally:
        proc.terminate()
        proc.wait()

    store = open_store(store_url)
    try:
        assert store.log_sizes()[tenant] == len(events)
        stored = store.read_log(tenant, 0, len(events) + 10)
        assert [s.sequence for s in stored] == list(range(len(events)))
        assert sorted(s.event_id for s in stored) == sorted(e.event_id for e in events)
        by_id = {s.event_id: s for s in stored}
        for event_id, leaf in acked.items():
            assert by_id[event_id].leaf_hash == leaf
    finally:
        store.close()


def test_ingest_workers_share_the_port_and_stop_together(tmp_path: Path, tenant: str) -> None:
    port = free_port()
    store_url = f"sqlite:///{tmp_path / 'w.db'}"
    proc = serve_process(
        [
            "--address",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path),
            "--services",
            "ingest",
            "--workers",
            "2",
        ],
        {**subprocess_env(), "AIAUDIT_DATABASE_URL": store_url, **clear_on_postgres_env(store_url)},
    )
    sequences = []
    for i in range(40):  # a new connection each time, so the kernel spreads them over processes
        with client.channel(f"127.0.0.1:{port}") as ch:
            r = pb_grpc.IngestServiceStub(ch).Append(
                pb.AppendRequest(events=[interaction(tenant, f"w{i}")])
            )
            sequences.append(r.receipts[0].sequence)
    assert sorted(sequences) == list(range(40))
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True).returncode == 1
    assert not Path(f"/proc/{children[0]}").exists()


def test_a_second_server_on_a_port_in_use_refuses_to_start(tmp_path: Path, tenant: str) -> None:
    """gRPC sets SO_REUSEPORT by default: a second `serve` on the same port (another data
    directory, say) started, and the kernel split new connections between two stores."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first, keys = serve_suite(tmp_path / "first", services=("ingest",))
    try:
        with pytest.raises(OSError, match="cannot bind"):
            serve_suite(tmp_path / "second", address=f"127.0.0.1:{first.port}")
        for i in range(10):  # fresh connections: every one reaches the first server
            with client.channel(f"127.0.0.1:{first.port}", keys["gateway"]) as ch:
                pb_grpc.IngestServiceStub(ch).Append(
                    pb.AppendRequest(events=[interaction(tenant, f"p{i}")])
                )
        assert first.store.log_sizes()[tenant] == 10
    finally:
        first.stop()


def test_a_sigterm_handed_to_any_thread_stops_the_server(tmp_path: Path) -> None:
    proc = serve_process(
        ["--address", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path)],
        {**subprocess_env(), "AIAUDIT_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"},
    )
    try:
        others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert others
        # As the kernel may do with `kill`: the signal lands on a thread that is not
        # the main one (tgkill picks which, so the test does not depend on luck).
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(proc.pid, others[-1], signal.SIGTERM) == 0
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
