"""Export with proofs against export without, on one PostgreSQL store in one run.

Run with `scripts/bench.sh export_proofs [--events N] [--database-url URL]
[--key-file PEM] [--save DIR]` (starts PostgreSQL). N events are committed to a
database of the run's own (or to ``--database-url`` when it holds no event
yet), then ingest, integrity and search start as one server process (search
on its SQLite index, as the embedded mode) and wait until the notary signed
and the indexer indexed all N. Then ``Export`` in JSON Lines of the N events
with ``include_proofs`` (an offline bundle: a ``BatchGetInclusionProofs`` call
per page, every path verified against the signed root), and without; the
figure is the ratio of their rates. The events are read once beforehand,
straight from the store, so that neither export reads a cold store.

The bundle is exported first, once the notary has signed the whole log, and
the run writes no access record before it (readiness is read from the store
and the index file, not asked of the services): two runs on copies of one
database (``CREATE DATABASE ... TEMPLATE``) with one ``--key-file`` prove the
same lines against the same checkpoint, and ``--save`` keeps the bundle to
compare them.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from bench.databases import fresh_database
from bench.search_bench import TENANT, append_events
from bench.servers import suite_server

EXPORTED = 'event_type = "EVENT_TYPE_INTERACTION"'
"""The loaded events, not the access records the run itself adds to the log."""
READY_SECONDS = 600.0
"""Longest wait for the notary and the indexer to reach the loaded events."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--database-url", help="a migrated store to use (loaded if empty)")
    parser.add_argument("--key-file", type=Path, help="the notary's Ed25519 key (PEM)")
    parser.add_argument("--save", type=Path, help="directory to keep the bundle in")
    args = parser.parse_args()
    with store(args.database_url) as url:
        run(args, url)


@contextlib.contextmanager
def store(url: str | None) -> Iterator[str]:
    """``url``, or a fresh database of the run's own (dropped afterwards)."""
    if url:
        yield url
        return
    with fresh_database() as db:
        yield db.url


def load(url: str, n: int) -> None:
    """Commits events 0..n-1 of the search benchmark, unless the log holds events already."""
    events = open_store(url, run_migrations=True)
    try:
        if events.read_log(TENANT, 0, 1):
            print("the store holds events already: not loaded")
            return
        append_events(events, n)
    finally:
        events.close()


def run(args: argparse.Namespace, url: str) -> None:
    n = args.events
    load(url, n)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        integrity: dict[str, Any] = {"checkpoint_interval": 0.2, "poll_interval": 0.1}
        if args.key_file:
            integrity["key_file"] = str(args.key_file)
        search = {"backend": "sqlite", "poll_interval": 0.05}
        cfg.write_text(yaml.safe_dump({"integrity": integrity, "search": search}))
        with suite_server(url, ["ingest", "integrity", "search"], config=cfg) as server:
            channel = client.channel(server.address, server.keys["admin"])
            stub = pb_grpc.SearchServiceStub(channel)
            ready(url, server.data_dir / "search.db")
            warm(url)
            bundle, with_proofs = export(stub, include_proofs=True)
            plain, without = export(stub, include_proofs=False)
            channel.close()
    lines, events = bundle.count(b"\n"), plain.count(b"\n")
    assert lines == events + 2 and events >= n, (lines, events)  # + scope and seal
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "bundle.jsonl").write_bytes(bundle)
    print(f"export of {events} events (JSON Lines, PostgreSQL store):")
    rate("without proofs", events, without)
    rate("include_proofs", events, with_proofs)
    print(f"  {'ratio':30}{without / with_proofs:10.3f}")


def rate(name: str, events: int, seconds: float) -> None:
    print(f"  {name:30}{events / seconds:10.0f} events/s  ({seconds:.2f} s)")


def _poll(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {READY_SECONDS} s")
        time.sleep(0.2)


def _log_size_signed(url: str) -> tuple[int, int]:
    """The log's size and its latest signed size, read from the store (no access record)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            size = conn.execute(
                sa.text("SELECT size FROM logs WHERE log_id = :t"), {"t": TENANT}
            ).scalar()
            cp = conn.execute(
                sa.text("SELECT max(tree_size) FROM integrity_checkpoints WHERE log_id = :t"),
                {"t": TENANT},
            ).scalar()
            return int(size or 0), int(cp or 0)
    finally:
        engine.dispose()


def warm(url: str) -> None:
    """Reads every event of the log as the exports read them, so that neither reads a cold
    store (the first export of a run took a third longer), writing no access record."""
    events = open_store(url)
    try:
        size, _ = _log_size_signed(url)
        for start_at in range(0, size, 500):
            events.read_sequences(TENANT, range(start_at, min(size, start_at + 500)))
    finally:
        events.close()


def signed(url: str) -> None:
    """Returns once the latest checkpoint covers the whole log."""
    _poll("the whole log signed", lambda: len(set(_log_size_signed(url))) == 1)


def ready(url: str, index: Path) -> None:
    """Returns once the whole log is signed and indexed, asking the store and the index file.

    Not through the services: every call writes an access record, a number of them
    depending on timing, which would make the bundle's checkpoint differ between runs.
    """
    signed(url)
    size, _ = _log_size_signed(url)

    def indexed() -> bool:
        if not index.exists():
            return False
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
            try:
                at = db.execute("SELECT position FROM positions WHERE log_id = ?", (TENANT,))
                row = at.fetchone()
                building = db.execute("SELECT 1 FROM building WHERE log_id = ?", (TENANT,))
                return row is not None and row[0] >= size and building.fetchone() is None
            except sqlite3.OperationalError:  # tables not made yet
                return False

    _poll("the whole log indexed", indexed)


def export(stub: pb_grpc.SearchServiceStub, include_proofs: bool) -> tuple[bytes, float]:
    """The export's bytes and its seconds."""
    request = pb.ExportRequest(
        tenant_id=TENANT,
        filter=EXPORTED,
        format=pb.EXPORT_FORMAT_JSONL,
        include_proofs=include_proofs,
    )
    t0 = time.perf_counter()
    data = b"".join(chunk.data for chunk in stub.Export(request))
    return data, time.perf_counter() - t0


if __name__ == "__main__":
    main()
