"""Integrity benchmark against one PostgreSQL, all figures from the same run.

(a) checkpoint lag: events committed at a fixed rate while the notary runs
    (checkpoint interval 1 s); lag = commit (ack) to the first stored
    checkpoint covering the event; p50 / p99.
(b) inclusion proof latency at N leaves (default 1,000,000): the tree's
    nodes are bulk-loaded, then proofs for random leaves are read from the
    node table (one query each) and verified; p50 / p99.
(c) verify throughput: ``verify_store`` over the log of (a) in both modes
    (``leaves``, ``full``), in events/s, against the raw SHA-256 rate of the
    same canonical bytes (0x00 || bytes).

Usage: scripts/bench.sh integrity [--rate R] [--seconds S] [--leaves N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.integrity import leader, merkle, storage
from aiaudit.integrity.notary import Notary, NotaryConfig
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.verify import verify_store
from tests.helpers import sized_interaction

ORIGIN = "bench.aiaudit/log"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def checkpoint_lag(url: str, tmp: Path, rate: float, seconds: float) -> tuple[list[float], str]:
    store = open_store(url)
    tenant = f"lag-{uuid.uuid4().hex[:8]}"
    keys = FileKeys(ORIGIN, tmp / "key.pem")
    notary = Notary(
        store.engine,
        keys,
        leader.for_engine(store.engine),
        NotaryConfig(ORIGIN, tmp / "checkpoints", checkpoint_interval=1.0, poll_interval=0.05),
    )
    notary.start()
    acks: list[tuple[int, float]] = []  # (sequence, ack time)
    covered: list[tuple[int, float]] = []  # (checkpoint size, first seen)
    stop = threading.Event()

    def watch() -> None:
        last = 0
        with store.engine.connect() as conn:
            while not stop.is_set():
                cp = storage.latest_checkpoint(conn, tenant)
                conn.rollback()
                if cp is not None and cp.tree_size > last:
                    covered.append((cp.tree_size, time.perf_counter()))
                    last = cp.tree_size
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
        out = store.append_group(
            [[prepare(sized_interaction(tenant, 1024), now) for _ in range(batch)]]
        )
        t = time.perf_counter()
        receipts = out[0]
        assert isinstance(receipts, list)
        acks += [(r.sequence, t) for r in receipts]
        n += 1
    total = acks[-1][0] + 1
    while not covered or covered[-1][0] < total:
        time.sleep(0.01)
    stop.set()
    watcher.join()
    notary.stop()
    store.close()
    lags = []
    for seq, ack in acks:
        first = next(t for size, t in covered if size > seq)
        lags.append(first - ack)
    return lags, tenant


def proof_latency(dsn: str, url: str, leaves: int, samples: int) -> tuple[list[float], float]:
    tenant = f"proof-{uuid.uuid4().hex[:8]}"
    edge = merkle.CompactRange()
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy(
            "COPY integrity_nodes (log_id, level, idx, hash) FROM STDIN"
        ) as copy:
            for i in range(leaves):
                leaf = hashlib.sha256(b"\x00leaf %d" % i).digest()
                for node, digest in edge.append(leaf):
                    copy.write_row((tenant, node.level, node.index, digest))
        conn.commit()
    load = time.perf_counter() - t0
    root = edge.root()
    engine = sa.create_engine(url)
    times = []
    with engine.connect() as conn:
        reader = storage.NodeTable(conn, tenant)
        rng = random.Random(7)
        for _ in range(samples):
            index = rng.randrange(leaves)
            t = time.perf_counter()
            proof = merkle.inclusion_proof(index, leaves, reader)
            times.append(time.perf_counter() - t)
            leaf = hashlib.sha256(b"\x00leaf %d" % index).digest()
            merkle.verify_inclusion(index, leaves, leaf, proof, root)
    engine.dispose()
    return times, load


def verify_rate(url: str, tenant: str, tmp: Path) -> tuple[dict[str, float], float, int]:
    store = open_store(url)
    keys = FileKeys(ORIGIN, tmp / "key.pem").verifier_keys()
    rates = {}
    for mode in ("leaves", "full"):
        t = time.perf_counter()
        report = verify_store(store.engine, keys, ORIGIN, tmp / "checkpoints", [tenant], mode=mode)
        rates[mode] = report.events / (time.perf_counter() - t)
        assert report.ok, report.problems[:3]
    with store.engine.connect() as conn:
        blobs = [
            bytes(r[0])
            for r in conn.execute(
                sa.text("SELECT canonical FROM events WHERE log_id = :t"), {"t": tenant}
            )
        ]
    store.close()
    t = time.perf_counter()
    for _ in range(5):
        for b in blobs:
            hashlib.sha256(b"\x00" + b).digest()
    raw_s = (time.perf_counter() - t) / 5
    return rates, len(blobs) / raw_s, report.events


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500, help="events/s offered in (a)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--leaves", type=int, default=1_000_000, help="tree size N in (b)")
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    base = os.environ["AIAUDIT_TEST_PG_DSN"]
    db = f"aiaudit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    dsn = base.rsplit("/", 1)[0] + f"/{db}"
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    open_store(url, run_migrations=True).close()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lags, tenant = checkpoint_lag(url, Path(tmp), args.rate, args.seconds)
            proofs, load = proof_latency(dsn, url, args.leaves, args.samples)
            verify_eps, raw_eps, n = verify_rate(url, tenant, Path(tmp))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(f"(a) checkpoint lag, {len(lags)} events at {args.rate:.0f}/s, interval 1 s:")
    print(f"    p50 {statistics.median(lags) * 1000:.0f} ms, p99 {pct(lags, 99) * 1000:.0f} ms")
    print(
        f"(b) inclusion proof at N={args.leaves:,} ({args.samples} proofs; "
        f"nodes loaded in {load:.0f} s):"
    )
    print(f"    p50 {statistics.median(proofs) * 1000:.2f} ms, p99 {pct(proofs, 99) * 1000:.2f} ms")
    print(f"(c) verify {n} events; raw SHA-256 of the same bytes {raw_eps:,.0f}/s:")
    for mode, eps in verify_eps.items():
        print(f"    --mode {mode}: {eps:,.0f} events/s, ratio {eps / raw_eps:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
