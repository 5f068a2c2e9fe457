"""Drives ``bench/loadgen`` (Go): pre-serialised gRPC calls timed by a client that costs little.

A Python gRPC client spends about 1 ms of CPU per call on this machine, which
the server under test would otherwise share its two cores with; see the
program's own comment. Replies come back as bytes, for the benchmark to parse
and check after the timed run.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "bench" / "loadgen"
BINARY = REPO / ".tools" / "bin" / "aiaudit-loadgen"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Call:
    """One timed call: its latency, gRPC status code and reply (or the status message)."""

    seconds: float
    code: int
    body: bytes


def build() -> Path:
    """Builds the load generator (Go modules from the module proxy, cached by Go)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"  # where the machine's Go lives
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    subprocess.run([go, "build", "-o", str(BINARY), "."], cwd=SOURCE, env=env, check=True)
    return BINARY


def run(
    address: str,
    method: str,
    token: str,
    requests: Sequence[bytes],
    *,
    rate: float = 0.0,
    connections: int = 1,
    warmup: int = 1,
) -> list[Call]:
    """Sends ``requests`` (the first ``warmup`` untimed on each connection); one Call each after.

    ``rate`` > 0: open loop at that many calls/s, latency from each call's
    scheduled time; 0: one call after another on one connection.
    """
    with tempfile.TemporaryDirectory() as tmp:
        infile, outfile = Path(tmp) / "requests", Path(tmp) / "results"
        with infile.open("wb") as f:
            for body in requests:
                f.write(struct.pack(">I", len(body)))
                f.write(body)
        done = subprocess.run(
            [
                str(BINARY),
                f"-addr={address}",
                f"-method={method}",
                f"-token={token}",
                f"-requests={infile}",
                f"-out={outfile}",
                f"-rate={rate}",
                f"-conns={connections}",
                f"-warmup={warmup}",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"loadgen exited {done.returncode}")
        data = outfile.read_bytes()
    calls = []
    offset = 0
    while offset < len(data):
        nanos, code, size = struct.unpack_from(">QiI", data, offset)
        offset += 16
        calls.append(Call(nanos / 1e9, code, data[offset : offset + size]))
        offset += size
    if len(calls) != len(requests) - warmup:
        raise RuntimeError(f"loadgen returned {len(calls)} results for {len(requests)} requests")
    return calls


def floor(
    address: str, token: str, calls: int, *, rate: float = 0.0, connections: int = 1
) -> list[float]:
    """Latencies (s) of ``Health/Check`` on the same server, sent like the calls measured.

    The least a call to that server can take on this machine at that moment:
    printed beside a latency target, it tells the service's own time from the
    machine's (on these shared cores a trivial call's p99 ranged 1.3-33 ms
    from one hour to the next).
    """
    body = health_pb2.HealthCheckRequest().SerializeToString()
    done = run(
        address, HEALTH_CHECK, token, [body] * (calls + 1), rate=rate, connections=connections
    )
    failed = [c for c in done if c.code != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} health checks failed, the first: {failed[0]}")
    return [c.seconds for c in done]
