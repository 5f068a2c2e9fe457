"""Search benchmark: indexing rate, query latency, freshness, each against a baseline.

Run with `scripts/bench.sh search [--events N] [--queries Q] [--fresh F]
[--store postgresql|sqlite]` (starts PostgreSQL and OpenSearch). In one run,
against one OpenSearch node:

1. Indexing: N events are committed to the store (PostgreSQL as in production,
   a database of its own for the run; or the embedded SQLite), then the suite
   starts as a server process of its own (ingest and search), with API keys as
   outside the embedded mode, and its indexer tails the log into OpenSearch;
   rate = N / time from the process's start until all N are searchable.
   Baseline: a raw opensearch-py bulk load of the same documents (same template
   and ids, through the months' write aliases with ``require_alias`` as the
   indexer writes, each month made when first met) into a second index prefix.
2. Queries: three compliance queries (user + time range; phrase + model; trust
   signal range) through `SearchEvents` (gRPC, auth, access record, events read
   from the store), against the same DSL sent directly with opensearch-py,
   and through a server that only forwards it (:mod:`bench.forwarding_floor`:
   the least any server adds). Between the calls, each client's floor: ``Health/Check`` on the same
   channel, ``GET /`` on the same node (the clients' and transports' own time).
3. Freshness: one event appended over gRPC, then polled by id until searchable
   (production defaults: refresh interval 1 s, and the indexer refreshes
   after each batch that reaches the head of the log).
4. Export: `Export` in JSON Lines of one model's events among the first
   150,000 (a third of them), against a raw read of the same stored rows
   (canonical form and content) from the store: PostgreSQL ``COPY ... TO
   STDOUT``, or a plain SELECT on SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import orjson
import psycopg
import sqlalchemy as sa
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opensearchpy import OpenSearch, TransportError, helpers

from aiaudit.common import client
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.search import document, language
from aiaudit.search.backends.base import SearchSpec
from aiaudit.search.backends.opensearch import (
    VERSION_BASE,
    OpenSearchBackend,
    body,
    search_body,
    write_alias,
)
from aiaudit.search.settings import SearchSettings
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from bench import forwarding_floor as forwarding_floor_module
from bench.databases import fresh_database
from bench.servers import suite_server

TENANT = "bench"
T = TypeVar("T")
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WORDS = ["refund", "invoice", "credit card", "password", "weather", "contract", "holiday"]


def make_event(i: int) -> ev.Event:
    e = ev.Event(
        event_id=f"b-{i}",
        tenant_id=TENANT,
        event_type=ev.EVENT_TYPE_INTERACTION,
        actor=ev.Actor(user_id=f"user{i % 500}", application="bench"),
        model=ev.Model(provider="openai", name=["gpt-4o", "gpt-4o-mini", "claude-3"][i % 3]),
        input=ev.Input(
            messages=[
                ev.Message(
                    role=ev.ROLE_USER,
                    parts=[ev.Part(text=f"about my {WORDS[i % 7]} number {i} please help")],
                )
            ]
        ),
        output=ev.Output(
            messages=[ev.Message(role=ev.ROLE_ASSISTANT, parts=[ev.Part(text=f"answer {i}")])]
        ),
        usage=ev.Usage(input_tokens=10 + i % 100, output_tokens=20 + i % 300),
    )
    e.occurred_time.FromDatetime(BASE + dt.timedelta(seconds=i))
    e.timing.latency.FromMilliseconds(50 + i % 2000)
    e.trust_signals.add(name="user_rating", value=ev.AttributeValue(int_value=i % 5 + 1))
    return e


def append_events(store: SqlEventStore, n: int) -> None:
    """Commits events 0..n-1 of this benchmark in batches of 2,000, as a gateway would."""
    t0 = time.perf_counter()
    for start_at in range(0, n, 2000):
        now = dt.datetime.now(dt.UTC)
        batch = [make_event(i) for i in range(start_at, min(n, start_at + 2000))]
        store.append_group([[prepare(e, now) for e in batch]])
    print(f"loaded {n} events into the store in {time.perf_counter() - t0:.1f}s")


def raw_prefix(prefix: str) -> str:
    """The baseline's prefix: must not match the indexer's ``<prefix>-*`` pattern."""
    return prefix.replace("aiaudit-bench-", "aiaudit-rawbench-")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--fresh", type=int, default=100)
    parser.add_argument(
        "--store",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="where events are read from and access records written (production: postgresql)",
    )
    args = parser.parse_args()
    url = os.environ["AIAUDIT_TEST_OPENSEARCH_URL"]
    prefix = f"aiaudit-bench-{uuid.uuid4().hex[:6]}"
    direct = OpenSearch(hosts=[url], timeout=60)
    work = Path(tempfile.mkdtemp(prefix="search-bench-"))
    try:
        with store_database(args.store, work) as store:
            run(args, url, prefix, direct, work, store)
    finally:
        for p in (prefix, raw_prefix(prefix)):
            direct.indices.delete(index=f"{p}-*", params={"ignore_unavailable": "true"})
            direct.indices.delete_index_template(name=p, params={"ignore": 404})
        direct.close()


@contextlib.contextmanager
def store_database(store: str, work: Path) -> Iterator[str]:
    """A PostgreSQL database of the run's own, or SQLite in ``work``.

    Of its own because the indexer tails every log of its store: in the shared
    test database it would index every earlier run's and test's events.
    """
    if store == "sqlite":
        yield f"sqlite:///{work / 'aiaudit.db'}"
        return
    with fresh_database() as db:
        yield db.url


def run(
    args: argparse.Namespace,
    url: str,
    prefix: str,
    direct: OpenSearch,
    work: Path,
    store_url: str,
) -> None:
    n = args.events
    store = open_store(store_url, run_migrations=True)
    append_events(store, n)

    # Baseline: raw bulk of the same documents, same template, ids and versions, through
    # the months' write aliases as the indexer writes (a month made when first met, timed as
    # the indexer's is); documents are built from the store beforehand, chunk by chunk, and
    # only the bulk (and the months it needs) is timed.
    raw = OpenSearchBackend(direct, store.engine, raw_prefix(prefix), "1s")
    raw.ensure_template()
    raw_seconds = 0.0
    opened: set[str] = set()
    for start_at in range(0, n, 20_000):
        docs = [
            document.build(s.to_event(), s.sequence)
            for s in store.read_log(TENANT, start_at, 20_000)
        ]
        actions = [
            {
                "_index": write_alias(raw.index_name(d)),
                "_id": d.doc_id,
                "_routing": TENANT,
                "version": VERSION_BASE + d.revision,  # as the indexer sends them
                "version_type": "external",
                "_source": body(d),
            }
            for d in docs
        ]
        t0 = time.perf_counter()
        for month in sorted({raw.index_name(d) for d in docs} - opened):
            raw.open_month(month)
            opened.add(month)
        helpers.bulk(direct, actions, chunk_size=1000, require_alias="true")
        raw_seconds += time.perf_counter() - t0
    store.close()

    cfg = work / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "search": {
                    "backend": "opensearch",
                    "opensearch_url": url,
                    "index_prefix": prefix,
                    "poll_interval": 0.05,
                }
            }
        )
    )
    # Only what is measured: the notary and alerting tail the same log and would
    # share these two cores (in production they are other processes, as is this client).
    t0 = time.perf_counter()
    with suite_server(store_url, ["ingest", "search"], config=cfg) as server:
        wait_indexed(direct, prefix, n)
        index_seconds = time.perf_counter() - t0
        channel = client.channel(server.address, server.keys["admin"])
        with forwarding_floor(url, prefix) as forward:
            queries(args, channel, direct, prefix, forward)
        freshness(args, channel, n)
        export(channel, store_url)
    print()
    print(f"indexing ({n} events):")
    print(f"  raw bulk (baseline)   {n / raw_seconds:10.0f} events/s")
    print(f"  indexer from the log  {n / index_seconds:10.0f} events/s")
    print(f"  ratio                 {raw_seconds / index_seconds:10.2f} (target >= 0.70)")


def wait_indexed(direct: OpenSearch, prefix: str, n: int) -> None:
    """Returns once the log's first ``n`` events are searchable in the indexer's indices."""
    wanted = {
        "query": {
            "bool": {
                "filter": [{"term": {"tenant_id": TENANT}}, {"range": {"sequence": {"lt": n}}}]
            }
        }
    }
    deadline = time.monotonic() + 36000
    while searchable(direct, prefix, wanted) < n:
        if time.monotonic() > deadline:
            raise SystemExit("the indexer did not catch up")
        time.sleep(0.1)  # polling another process: at 1M events, 0.1 s is 0.1% of the time


def searchable(direct: OpenSearch, prefix: str, query: dict[str, Any]) -> int:
    """How many documents match; 0 while a new index's shards are not searchable yet (503)."""
    try:
        return int(direct.count(index=f"{prefix}-*", body=query)["count"])
    except TransportError as exc:
        if exc.status_code != 503:
            raise
        return 0


QUERIES = [
    (
        "user + time range",
        'actor.user_id = "user17" AND occurred_time >= "2026-01-01T01:00:00Z"'
        ' AND occurred_time < "2026-01-08T00:00:00Z"',
        "",
    ),
    ("phrase + model", 'model.name = "gpt-4o"', '"credit card"'),
    ("trust signal range", "trust_signals.user_rating >= 5 AND usage.output_tokens > 250", ""),
]


def timed(into: list[float], call: Callable[[], T]) -> T:
    """``call()``, its latency in ms appended to ``into``."""
    t0 = time.perf_counter()
    out = call()
    into.append((time.perf_counter() - t0) * 1000)
    return out


@contextlib.contextmanager
def forwarding_floor(url: str, prefix: str) -> Iterator[Callable[[bytes], bytes]]:
    """A :mod:`bench.forwarding_floor` process: its forwarding call, until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.forwarding_floor", url, prefix, TENANT],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("forwarding on "):
            raise SystemExit(f"the forwarding floor did not start: {line!r}")
        with grpc.insecure_channel(line.split()[-1]) as channel:
            yield channel.unary_unary(forwarding_floor_module.METHOD)
    finally:
        proc.terminate()
        proc.wait()


def queries(
    args: argparse.Namespace,
    channel: Any,
    direct: OpenSearch,
    prefix: str,
    forward: Callable[[bytes], bytes],
) -> None:
    stub = pb_grpc.SearchServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    direct.indices.refresh(index=f"{prefix}-*")
    print()
    print(f"SearchEvents vs direct opensearch-py ({args.queries} runs each, page size 50):")
    for name, filter_text, query_text in QUERIES:
        where = language.combine(
            language.parse_filter(filter_text), language.parse_query(query_text)
        )
        # The very DSL the server sends for a page of 50 (one more, to know a next page).
        order = language.parse_order_by("")
        request_body = search_body(SearchSpec(TENANT, where, order, 51, highlight=True))
        grpc_ms, direct_ms, forward_ms, grpc_floor, direct_floor = [], [], [], [], []
        request_json = orjson.dumps(request_body)
        request = pb.SearchEventsRequest(
            tenant_id=TENANT, filter=filter_text, query=query_text, page_size=50
        )
        for _ in range(args.queries):
            found = timed(grpc_ms, partial(stub.SearchEvents, request))
            raw = timed(
                direct_ms,
                partial(direct.search, index=f"{prefix}-*", body=request_body, routing=TENANT),
            )
            forwarded = orjson.loads(timed(forward_ms, partial(forward, request_json)))
            timed(grpc_floor, partial(health.Check, health_pb2.HealthCheckRequest()))
            timed(direct_floor, direct.info)
        totals = (found.total_size, raw["hits"]["total"]["value"])
        assert totals[0] == totals[1] == forwarded["hits"]["total"]["value"] > 0, (name, totals)
        print(
            f"  {name:20s} matches {found.total_size:7d}  "
            f"SearchEvents p50 {pct(grpc_ms, 50):6.1f} ms p99 {pct(grpc_ms, 99):6.1f} ms | "
            f"direct p50 {pct(direct_ms, 50):6.1f} ms p99 {pct(direct_ms, 99):6.1f} ms | "
            f"p99 ratio {pct(grpc_ms, 99) / pct(direct_ms, 99):6.3f}"
        )
        print(
            f"  {'':20s} forwarding only (no auth, record or store) p50 "
            f"{pct(forward_ms, 50):6.1f} ms p99 {pct(forward_ms, 99):6.1f} ms | "
            f"p99 ratio {pct(forward_ms, 99) / pct(direct_ms, 99):6.3f}"
        )
        print(
            f"  {'':20s} floors: gRPC Health/Check p50 {pct(grpc_floor, 50):.1f} ms "
            f"p99 {pct(grpc_floor, 99):.1f} ms | opensearch-py GET / p50 "
            f"{pct(direct_floor, 50):.1f} ms p99 {pct(direct_floor, 99):.1f} ms"
        )


def freshness(args: argparse.Namespace, channel: Any, n: int) -> None:
    ingest = ingest_grpc.IngestServiceStub(channel)
    stub = pb_grpc.SearchServiceStub(channel)
    delays = []
    for i in range(args.fresh):
        e = make_event(n + i)
        ingest.Append(ingest_pb.AppendRequest(events=[e]))
        t0 = time.perf_counter()
        request = pb.SearchEventsRequest(
            tenant_id=TENANT, filter=f'event_id = "{e.event_id}"', page_size=1
        )
        while stub.SearchEvents(request).total_size == 0:
            time.sleep(0.02)
        delays.append(time.perf_counter() - t0)
    print()
    print(
        f"freshness (ack to searchable, {args.fresh} events, "
        f"refresh {SearchSettings.refresh_interval}): "
        f"p50 {statistics.median(delays) * 1000:.0f} ms, p99 {pct(delays, 99) * 1000:.0f} ms"
        " (target p99 < 1500 ms)"
    )


EXPORTED = 150_000
"""The export reads the events of one model below this sequence (a third of them)."""


def export(channel: Any, store_url: str) -> None:
    stub = pb_grpc.SearchServiceStub(channel)
    request = pb.ExportRequest(
        tenant_id=TENANT,
        filter=f'model.name = "gpt-4o" AND sequence < {EXPORTED}',
        format=pb.EXPORT_FORMAT_JSONL,
    )
    t0 = time.perf_counter()
    lines = sum(chunk.data.count(b"\n") for chunk in stub.Export(request))
    export_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw_bytes = raw_read(store_url)
    raw_seconds = time.perf_counter() - t0
    raw_rows = raw_count(store_url)
    assert lines == raw_rows > 0, (lines, raw_rows)
    print()
    print(f"export (JSON Lines, {lines} events):")
    print(
        f"  raw read of the stored rows (baseline) {lines / raw_seconds:10.0f} events/s"
        f" ({raw_bytes / 1e6:.1f} MB)"
    )
    print(f"  Export                                 {lines / export_seconds:10.0f} events/s")
    print(f"  ratio                                  {raw_seconds / export_seconds:10.3f}")


_EXPORTED_ROWS = f"e.log_id = '{TENANT}' AND e.model_name = 'gpt-4o' AND e.seq < {EXPORTED}"


def raw_read(store_url: str) -> int:
    """Bytes of the exported events' stored canonical forms and content, read raw."""
    select = (
        "SELECT e.canonical, c.content FROM events e LEFT JOIN event_content c"
        " ON c.log_id = e.log_id AND c.seq = e.seq AND c.receive_time = e.receive_time"
        f" WHERE {_EXPORTED_ROWS} ORDER BY e.seq"
    )
    if store_url.startswith("sqlite"):
        engine = sa.create_engine(store_url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(select).all()
        engine.dispose()
        return sum(len(a) + len(b or b"") for a, b in rows)
    size = 0
    with (
        psycopg.connect(_dsn(store_url)) as conn,
        conn.cursor() as cursor,
        cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT binary)") as copy,
    ):
        for block in copy:
            size += len(block)
    return size


def raw_count(store_url: str) -> int:
    """How many events the export should hold."""
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        found = conn.exec_driver_sql(f"SELECT count(*) FROM events e WHERE {_EXPORTED_ROWS}")
        count = int(found.scalar_one())
    engine.dispose()
    return count


def _dsn(store_url: str) -> str:
    return store_url.replace("postgresql+psycopg://", "postgresql://", 1)


if __name__ == "__main__":
    main()
