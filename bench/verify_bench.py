"""Time and peak memory of ``aiaudit verify`` over a store of N events.

``build`` fills a store (a new SQLite file, or an empty PostgreSQL database
created beforehand, migrated here) with one log of N interactions with
content (appended in batches of 1,000 through the store, as ingest does),
erasures of one event in ``--erased-every`` (``erase``: records with their
``erasure_names`` rows), and a signed checkpoint from the notary covering
all of it. ``run`` times ``aiaudit verify`` on it as a process of its own
(each mode), under ``/usr/bin/time -v``: wall seconds and peak RSS, the
figures an operator sees.

Usage: .venv/bin/python -m bench.verify_bench build --url URL --dir DIR --events N
           [--erased-every K]
       .venv/bin/python -m bench.verify_bench run --url URL --dir DIR [--mode full,leaves]
(``--dir`` holds the notary key and the exported checkpoints.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from aiaudit.common import leader
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.integrity import storage
from aiaudit.integrity.notary import Notary, NotaryConfig
from aiaudit.integrity.signers import FileKeys
from tests.helpers import interaction

ORIGIN = "bench.aiaudit/log"
LOG = "verify-bench"
BATCH = 1000
ERASED_EVERY = 1000
"""By default one event in this many is erased (by id, 10,000 ids a record)."""


def build(url: str, folder: Path, total: int, every: int = ERASED_EVERY) -> None:
    """Appends ``total`` events to :data:`LOG`, erases one in ``every``, waits for a checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(url, run_migrations=True)
    started = time.perf_counter()
    erased: list[str] = []
    for start in range(0, total, BATCH):
        now = dt.datetime.now(dt.UTC)
        events = [
            interaction(LOG, text=f"question {start + i} " + "x" * 200, user=f"u{i % 50}")
            for i in range(min(BATCH, total - start))
        ]
        store.append_group([[prepare(e, now) for e in events]])
        erased += [e.event_id for e in events[::every]]
        if start % 100_000 == 0:
            print(f"{start + len(events)} appended, {time.perf_counter() - started:.0f} s")
    erase(store, LOG, "data subject request", "dpo", erased)
    notary = Notary(
        store.engine,
        FileKeys(ORIGIN, folder / "key.pem"),
        leader.for_engine(store.engine, leader.NOTARY),
        NotaryConfig(ORIGIN, folder / "checkpoints"),
    )
    notary.start()
    with store.engine.connect() as conn:
        size = int(
            conn.execute(
                sa.text("SELECT size FROM logs WHERE log_id = :t"), {"t": LOG}
            ).scalar_one()
        )
        while (cp := storage.latest_checkpoint(conn, LOG)) is None or cp.tree_size < size:
            conn.rollback()
            time.sleep(0.2)
    notary.stop()
    store.close()
    print(f"{size} entries ({len(erased)} erased), {time.perf_counter() - started:.0f} s")


def run(url: str, folder: Path, mode: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB, verify's summary line) of one ``aiaudit verify``."""
    key = FileKeys(ORIGIN, folder / "key.pem").verifier_keys()[0].encode()
    (folder / "verify.yaml").write_text("")
    command = [
        "/usr/bin/time",
        "-v",
        str(Path(sys.executable).parent / "aiaudit"),
        "verify",
        "--config",
        str(folder / "verify.yaml"),
        "--database-url",
        url,
        "--verifier-key",
        key,
        "--origin-prefix",
        ORIGIN,
        "--checkpoint-dir",
        str(folder / "checkpoints"),
        "--mode",
        mode,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0 or wall is None or rss is None:
        raise RuntimeError(f"aiaudit verify exited {done.returncode}: {done.stderr[-2000:]}")
    hours, minutes, seconds = wall.groups()
    summary = next(line for line in done.stderr.splitlines() if "checked:" in line)
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(rss[1]), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "run"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--erased-every", type=int, default=ERASED_EVERY)
    parser.add_argument("--mode", default="full,leaves")
    args = parser.parse_args()
    if args.action == "build":
        build(args.url, args.dir, args.events, args.erased_every)
        return 0
    for mode in args.mode.split(","):
        wall, rss, summary = run(args.url, args.dir, mode)
        print(f"verify --mode {mode}: {wall:.1f} s, peak RSS {rss / 1024:.0f} MiB ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
