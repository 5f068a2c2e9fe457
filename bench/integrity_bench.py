"""Integrity benchmark against one PostgreSQL, all figures from the same run.

(a) checkpoint lag: events committed at a fixed rate while the notary runs
    (checkpoint interval 1 s), into one log or spread over ``--tenants`` logs;
    lag = commit (ack) to the first stored checkpoint covering the event;
    p50 / p99.
(b) inclusion proof latency at N leaves (default 1,000,000): the log and its
    tree are bulk-built with COPY, then, for random leaves, (b1) the proof
    computed from the node table (one query each) and (b2) GetInclusionProof
    end to end through an integrity server process (auth, lookups, access
    record), called one after another by the Go load generator;
    every proof is verified; p50 / p99 of each.
(c) verify throughput: ``verify_store`` over the log of (a), grown to
    ``--verify-events`` (default 100,000) events, in both modes
    (``leaves``, ``full``), in events/s, against the raw SHA-256 rate of the
    same canonical bytes (0x00 || bytes): the median ratio of three runs,
    after a VACUUM of the freshly loaded log.

Usage: scripts/bench.sh integrity [--rate R] [--seconds S] [--tenants T] [--leaves N]
       [--parts lag,proofs,verify]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import psycopg
import sqlalchemy as sa

from aiaudit.common import client, leader
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.integrity import merkle, storage
from aiaudit.integrity.notary import CONSUMER, Notary, NotaryConfig
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.v1 import integrity_service_pb2 as integrity_pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as integrity_grpc
from aiaudit.integrity.verify import verify_store
from bench import load
from bench.databases import fresh_database, settle
from bench.servers import suite_server
from tests.helpers import sized_interaction

ORIGIN = "bench.aiaudit/log"
GET_INCLUSION_PROOF = "/aiaudit.integrity.v1.IntegrityService/GetInclusionProof"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def checkpoint_lag(
    url: str, tmp: Path, rate: float, seconds: float, tenants: int = 1
) -> tuple[list[float], str]:
    """Lags of events offered at ``rate`` for ``seconds``, spread over ``tenants`` logs.

    Each commit is a batch of 10 events, one log's with one tenant, or one
    event of each of 10 logs in turn with more: the notary then has every log
    behind each round. Returns the lags and the first log (grown for (c)).
    """
    store = open_store(url)
    run = uuid.uuid4().hex[:8]
    logs = [f"lag-{run}-{i:04d}" for i in range(tenants)]
    keys = FileKeys(ORIGIN, tmp / "key.pem")
    notary = Notary(
        store.engine,
        keys,
        leader.for_engine(store.engine, leader.NOTARY),
        NotaryConfig(ORIGIN, tmp / "checkpoints"),  # the defaults that ship
    )
    notary.start()
    acks: list[tuple[str, int, float]] = []  # (log, sequence, ack time)
    covered: dict[str, list[tuple[int, float]]] = {log_id: [] for log_id in logs}
    stop = threading.Event()

    def watch() -> None:
        with store.engine.connect() as conn:
            while not stop.is_set():
                seen = time.perf_counter()
                for log_id, _, size in storage.positions_and_latest(conn, "integrity", logs):
                    if size > (covered[log_id][-1][0] if covered[log_id] else 0):
                        covered[log_id].append((size, seen))
                conn.rollback()
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    batch = 10
    interval = batch / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n * interval
        time.sleep(max(0.0, due - time.perf_counter()))
        now = dt.datetime.now(dt.UTC)
        if tenants == 1:
            groups = [[prepare(sized_interaction(logs[0], 1024), now) for _ in range(batch)]]
        else:
            turn = [logs[(n * batch + i) % tenants] for i in range(batch)]
            groups = [[prepare(sized_interaction(log_id, 1024), now)] for log_id in turn]
        out = store.append_group(groups)
        t = time.perf_counter()
        for receipts in out:
            assert isinstance(receipts, list)
            acks += [(r.log_id, r.sequence, t) for r in receipts]
        n += 1
    last = {log_id: seq for log_id, seq, _ in acks}
    while any(not covered[g] or covered[g][-1][0] <= seq for g, seq in last.items()):
        time.sleep(0.01)
    stop.set()
    watcher.join()
    notary.stop()
    store.close()
    lags = []
    for log_id, seq, ack in acks:
        first = next(t for size, t in covered[log_id] if size > seq)
        lags.append(first - ack)
    return lags, logs[0]


def grow_log(url: str, tenant: str, tmp: Path, total: int) -> None:
    """Appends events in batches of 500 (notary running) until the log has ``total``.

    Gives (c) a log large enough that per-event costs, not the fixed ones
    (checkpoint signatures, the orphan query), set the rate.
    """
    store = open_store(url)
    notary = Notary(
        store.engine,
        FileKeys(ORIGIN, tmp / "key.pem"),
        leader.for_engine(store.engine, leader.NOTARY),
        NotaryConfig(ORIGIN, tmp / "checkpoints"),  # the defaults that ship
    )
    notary.start()
    with store.engine.connect() as conn:
        size = int(
            conn.execute(
                sa.text("SELECT size FROM logs WHERE log_id = :t"), {"t": tenant}
            ).scalar_one()
        )
    while size < total:
        now = dt.datetime.now(dt.UTC)
        batch = [
            prepare(sized_interaction(tenant, 1024), now) for _ in range(min(500, total - size))
        ]
        store.append_group([batch])
        size += len(batch)
    with store.engine.connect() as conn:
        while (cp := storage.latest_checkpoint(conn, tenant)) is None or cp.tree_size < size:
            conn.rollback()
            time.sleep(0.05)
    notary.stop()
    store.close()


def build_tree(dsn: str, tenant: str, leaves: int) -> bytes:
    """Bulk-writes a log of ``leaves`` entries and its whole tree; returns the root.

    The tree is hashed level by level (no per-leaf objects) and every table is
    written with COPY: what ingest + notary would store for that many events,
    in seconds instead of an hour of gRPC ingest. The notary's cursor is set to
    the end, so a notary started on this database signs the checkpoint only.
    """
    now = dt.datetime.now(dt.UTC)
    level = [hashlib.sha256(b"\x00leaf %d" % i).digest() for i in range(leaves)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY log_entries (log_id, seq, event_id, leaf_hash, receive_time) FROM STDIN"
        ) as copy:
            for i, leaf in enumerate(level):
                copy.write_row((tenant, i, f"bench-{i}", leaf, now))
        with cur.copy("COPY integrity_nodes (log_id, level, idx, hash) FROM STDIN") as copy:
            height = 0
            while True:
                for i, digest in enumerate(level):
                    copy.write_row((tenant, height, i, digest))
                if len(level) < 2:
                    break
                pairs = zip(level[0::2], level[1::2], strict=False)
                level = [hashlib.sha256(b"\x01" + a + b).digest() for a, b in pairs]
                height += 1
        cur.execute("INSERT INTO logs (log_id, size) VALUES (%s, %s)", (tenant, leaves))
        cur.execute(
            "INSERT INTO consumer_cursors (consumer, log_id, position) VALUES (%s, %s, %s)",
            (CONSUMER, tenant, leaves),
        )
        conn.commit()
        conn.execute("ANALYZE log_entries")
        conn.execute("ANALYZE integrity_nodes")
        conn.commit()
    with sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as c:
        return merkle.root_at(leaves, storage.NodeTable(c, tenant))


def leaf_of(index: int) -> bytes:
    """The bench's leaf hash at ``index`` (as ``build_tree`` wrote it)."""
    return hashlib.sha256(b"\x00leaf %d" % index).digest()


def proof_computation(url: str, tenant: str, leaves: int, root: bytes, samples: int) -> list[float]:
    """(b1) ``merkle.inclusion_proof`` over ``NodeTable``: the node query plus the hashing."""
    engine = sa.create_engine(url)
    times = []
    with engine.connect() as conn:
        rng = random.Random(7)
        for _ in range(samples):
            index = rng.randrange(leaves)
            t = time.perf_counter()
            proof = merkle.inclusion_proof(index, leaves, storage.NodeTable(conn, tenant))
            times.append(time.perf_counter() - t)
            merkle.verify_inclusion(index, leaves, leaf_of(index), proof, root)
    engine.dispose()
    return times


def proof_rpc(url: str, tenant: str, leaves: int, samples: int) -> tuple[list[float], list[float]]:
    """(b2) GetInclusionProof end to end: calls to an integrity server process.

    Includes authentication, the entry and checkpoint lookups, the node query
    and the committed access record of every call. The calls are sent one after
    another by the Go load generator (``bench/load.py``), and every proof is
    verified afterwards against the signed checkpoint (the bulk-built tree plus
    the access records of the first calls).
    """
    rng = random.Random(11)
    indexes = [rng.randrange(leaves) for _ in range(samples + 1)]  # the first warms up
    with suite_server(url, ["integrity"]) as server:
        channel = client.channel(server.address, server.keys["auditor"])
        stub = integrity_grpc.IntegrityServiceStub(channel)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 60
        while True:  # the notary signs the bulk-built tree (plus any access records) first
            try:
                cp = stub.GetCheckpoint(integrity_pb.GetCheckpointRequest(log_id=tenant)).checkpoint
                if cp.tree_size >= leaves:
                    break
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError("no checkpoint of the bulk-built tree within 60 s")
            time.sleep(0.05)
        channel.close()
        requests = [
            integrity_pb.GetInclusionProofRequest(
                log_id=tenant, sequence=i, tree_size=cp.tree_size
            ).SerializeToString()
            for i in indexes
        ]
        calls = load.run(server.address, GET_INCLUSION_PROOF, server.keys["auditor"], requests)
        floor = load.floor(server.address, server.keys["auditor"], samples)
    for index, call in zip(indexes[1:], calls, strict=True):
        if call.code != 0:
            raise RuntimeError(f"GetInclusionProof of leaf {index} failed: {call}")
        reply = integrity_pb.GetInclusionProofResponse.FromString(call.body)
        proof = list(reply.proof.hashes)
        merkle.verify_inclusion(index, cp.tree_size, leaf_of(index), proof, cp.root_hash)
    return [c.seconds for c in calls], floor


ROUNDS = 3
"""Runs of each verify mode; the figure is their median ratio (each run is printed)."""


def verify_rate(
    dsn: str, url: str, tenant: str, tmp: Path
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Per mode, per run: (events/s of ``verify_store``, raw SHA-256 events/s of the same bytes).

    The raw rate is ``sha256(0x00 || canonical)`` over the canonical bytes held
    in memory, measured right before and right after each run and averaged,
    so both figures see the same load on this shared machine. The log is
    vacuumed first, as autovacuum leaves a store at rest: without it the first
    read of the rows just inserted also set their hint bits (first runs
    195-275 k events/s, the next ones 310-350 k, 2026-12-05), which is the
    load's cost, not verify's.
    """
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("VACUUM (ANALYZE)")
    store = open_store(url)
    keys = FileKeys(ORIGIN, tmp / "key.pem").verifier_keys()
    with store.engine.connect() as conn:
        blobs = [
            bytes(r[0])
            for r in conn.execute(
                sa.text("SELECT canonical FROM events WHERE log_id = :t"), {"t": tenant}
            )
        ]

    def raw() -> float:
        t = time.perf_counter()
        for b in blobs:
            hashlib.sha256(b"\x00" + b).digest()
        return len(blobs) / (time.perf_counter() - t)

    rates: dict[str, list[tuple[float, float]]] = {}
    for mode in ("leaves", "full"):
        for _ in range(ROUNDS):
            before = raw()
            t = time.perf_counter()
            found = verify_store(
                store.engine, keys, ORIGIN, tmp / "checkpoints", [tenant], mode=mode
            )
            eps = found.events / (time.perf_counter() - t)
            rates.setdefault(mode, []).append((eps, (before + raw()) / 2))
            assert found.ok, found.problems[:3]
            assert found.events == len(blobs)
    store.close()
    return rates, len(blobs)


def report(name: str, times: list[float]) -> None:
    """One latency line: p50 / p99 in ms."""
    print(
        f"    {name}: p50 {statistics.median(times) * 1000:.2f} ms, "
        f"p99 {pct(times, 99) * 1000:.2f} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500, help="events/s offered in (a)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--tenants", type=int, default=1, help="logs the events of (a) are spread over"
    )
    parser.add_argument("--leaves", type=int, default=1_000_000, help="tree size N in (b)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--verify-events", type=int, default=100_000, help="log size verified in (c)"
    )
    parser.add_argument(
        "--parts",
        default="lag,proofs,verify",
        help="which of lag,proofs,verify (verify: lag's log)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    load.build()
    with fresh_database() as db, tempfile.TemporaryDirectory() as tmp:
        dsn, url = db.dsn, db.url
        if "lag" in parts or "verify" in parts:
            lags, tenant = checkpoint_lag(url, Path(tmp), args.rate, args.seconds, args.tenants)
            print(
                f"(a) checkpoint lag, {len(lags)} events at {args.rate:.0f}/s over "
                f"{args.tenants} log(s), interval 1 s:"
            )
            report("lag", lags)
        if "proofs" in parts:
            proof_tenant = f"proof-{uuid.uuid4().hex[:8]}"
            t = time.perf_counter()
            root = build_tree(dsn, proof_tenant, args.leaves)
            settle(dsn)
            print(
                f"(b) inclusion proof at N={args.leaves:,} ({args.samples} proofs each; "
                f"log and tree bulk-built in {time.perf_counter() - t:.0f} s):"
            )
            computed = proof_computation(url, proof_tenant, args.leaves, root, args.samples)
            report("computation (node query + hashing)", computed)
            served, floor = proof_rpc(url, proof_tenant, args.leaves, args.samples)
            report("GetInclusionProof RPC end to end", served)
            report("floor: Health/Check on the same server, sent alike", floor)
        if "verify" in parts:
            grow_log(url, tenant, Path(tmp), args.verify_events)
            rates, n = verify_rate(dsn, url, tenant, Path(tmp))
            print(
                f"(c) verify {n:,} events against raw SHA-256 of the same bytes "
                f"(vacuumed log; median of {ROUNDS} runs):"
            )
            for mode, runs in rates.items():
                each = ", ".join(f"{e:,.0f} vs {r:,.0f}/s = {e / r:.1%}" for e, r in runs)
                ratio = statistics.median(e / r for e, r in runs)
                print(f"    --mode {mode}: ratio {ratio:.1%} (runs: {each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
