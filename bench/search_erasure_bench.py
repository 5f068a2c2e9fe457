"""What taking erased text out of the search index's files costs, on both backends.

Run with `scripts/bench.sh search_erasure [--events N] [--erase K]` (starts
OpenSearch). N documents of about 1 KB of text each (two fields of 80 words
from 20,000) are written through each backend in the indexer's batches of
2,000; then K of them, spread over the index, are replaced by their text-free
documents, as an erasure's batch does.

- SQLite FTS5: indexing time with ``secure_delete`` on (the backend's) and
  off, and the time of the erasure's write, which merges the FTS5 index into
  one segment ('optimize') and truncates the WAL.
- OpenSearch: the time of one expunging pass (refresh, ``_forcemerge`` with
  ``only_expunge_deletes``, refresh), timed after the shard's retention lease
  has passed the indexed documents, as for events indexed more than about
  30 s before their erasure.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from opensearchpy import OpenSearch

from aiaudit.common.store import open_store
from aiaudit.search.backends.opensearch import OpenSearchBackend
from aiaudit.search.backends.sqlite_fts import SqliteFtsBackend
from aiaudit.search.document import Document

TENANT = "bench"
BATCH = 2000
VOCABULARY = [f"w{i}" for i in range(20_000)]
START = 1_767_225_600_000_000
"""2026-01-01 in microseconds: every document in one month index."""


def make_doc(i: int, rng: random.Random) -> Document:
    """Event ``i`` with two text fields of 80 words."""
    words = " ".join(rng.choices(VOCABULARY, k=80))
    return Document(
        TENANT,
        f"e-{i}",
        i,
        {"event_id": f"e-{i}", "occurred_time": START + i},
        texts={"input.text": words, "output.text": words[::-1]},
    )


def erased(n: int, k: int) -> list[Document]:
    """The text-free documents of k events spread over the n, at a later revision."""
    docs = []
    for i in range(n // (2 * k), n, n // k):
        doc = Document(TENANT, f"e-{i}", i, {"event_id": f"e-{i}", "occurred_time": START + i})
        doc.revision = n
        docs.append(doc)
    return docs


def index(backend: SqliteFtsBackend | OpenSearchBackend, n: int) -> float:
    """Seconds to write the n documents in the indexer's batches."""
    rng = random.Random(1)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        end = min(n, start + BATCH)
        backend.write(TENANT, [make_doc(i, rng) for i in range(start, end)], end)
    return time.perf_counter() - t0


def sqlite(args: argparse.Namespace, work: Path) -> None:
    """Indexing with and without secure_delete, then the erasure's write."""
    for secure in ("OFF", "ON"):
        backend = SqliteFtsBackend(work / f"search-{secure}.db")
        backend._conn().execute(f"PRAGMA secure_delete={secure}")  # OFF: a build's default
        seconds = index(backend, args.events)
        print(f"sqlite: {args.events} documents indexed in {seconds:.1f}s, secure_delete {secure}")
        if secure == "OFF":
            backend.close()
    size = sum(f.stat().st_size for f in work.glob("search-ON.db*"))
    t0 = time.perf_counter()
    backend.write(TENANT, erased(args.events, args.erase), args.events + 1, erasing=True)
    print(
        f"sqlite: erasing write of {args.erase} documents (optimize, WAL truncated) "
        f"{time.perf_counter() - t0:.2f}s, index {size / 1e6:.0f} MB"
    )
    backend.close()


def lease_passed(direct: OpenSearch, name: str) -> bool:
    """Whether every retention lease of the index's shards is past its last operation."""
    stats = direct.indices.stats(index=name, level="shards")["indices"][name]["shards"]
    for copies in stats.values():
        for shard in copies:
            leases = shard["retention_leases"]["leases"]
            if any(x["retaining_seq_no"] <= shard["seq_no"]["max_seq_no"] for x in leases):
                return False
    return True


def opensearch(args: argparse.Namespace, work: Path) -> None:
    """One expunging pass after the erasure's write, once the leases let go."""
    url = os.environ["AIAUDIT_TEST_OPENSEARCH_URL"]
    direct = OpenSearch(hosts=[url], timeout=600)
    prefix = f"aiaudit-bench-erasure-{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{work / 'store.db'}", run_migrations=True)
    backend = OpenSearchBackend(OpenSearch(hosts=[url], timeout=600), store.engine, prefix, "1s")
    try:
        seconds = index(backend, args.events)
        name = f"{prefix}-2026.01"
        direct.indices.flush(index=name)
        print(f"opensearch: {args.events} documents indexed in {seconds:.1f}s")
        deadline = time.monotonic() + 120
        while not lease_passed(direct, name) and time.monotonic() < deadline:
            time.sleep(1)  # a benchmark waits for the cluster's 30 s lease renewal
        backend.write(TENANT, erased(args.events, args.erase), args.events + 1)
        direct.indices.refresh(index=name)
        before = direct.indices.segments(index=name)["indices"][name]["shards"]["0"][0]
        t0 = time.perf_counter()
        left = backend._expunge_deletes()  # the pass the erasing write's thread runs
        seconds = time.perf_counter() - t0
        docs = direct.indices.stats(index=name, metric="docs,store")["indices"][name]["total"]
        print(
            f"opensearch: expunging pass for {args.erase} replaced documents {seconds:.2f}s "
            f"({len(before['segments'])} segments before; {docs['docs']['deleted']} deleted "
            f"left, {left or 'no'} index still holding some; "
            f"index {docs['store']['size_in_bytes'] / 1e6:.0f} MB)"
        )
    finally:
        backend.close()
        direct.indices.delete(index=f"{prefix}-*")
        direct.indices.delete_index_template(name=prefix)
        direct.close()
        store.close()


def main() -> None:
    """Both backends, one after the other."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--erase", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        sqlite(args, Path(work))
        opensearch(args, Path(work))


if __name__ == "__main__":
    main()
