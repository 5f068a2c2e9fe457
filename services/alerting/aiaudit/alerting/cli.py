"""Command line of alerting.

- ``aiaudit rules check|test``: offline rule tooling for rule authors and their CI.
- ``aiaudit alerting redeliver``: re-queues dead-lettered deliveries (:func:`register`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from google.protobuf import json_format

from aiaudit.alerting import redeliver_record
from aiaudit.alerting.evaluate import Hit, evaluate_in_receive_order
from aiaudit.alerting.redeliver import Outcome, Recorder, Selection, dry_run, redeliver
from aiaudit.alerting.rules import RuleSyntaxError, compile_file
from aiaudit.alerting.settings import AlertingSettings
from aiaudit.alerting.sinks import SINKS
from aiaudit.common import config, erasure, logs, rfc3339
from aiaudit.common.config import ConfigError
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.v1 import event_pb2

Common = Callable[[argparse.ArgumentParser], None]
log = logging.getLogger("aiaudit.alerting.redeliver")


def check(path: Path, out: TextIO | None = None) -> int:
    """Validates a rule file: 0 and the rule ids, or 1 and ``FILE:LINE: field: message``.

    ``out`` None is ``sys.stdout`` when printing, not when this module was imported
    (a default bound then kept writing to a stream a test or caller had since replaced).
    """
    text = _read(path, "aiaudit rules check: rules file")
    if text is None:
        return 1
    try:
        rules = compile_file(text)
    except RuleSyntaxError as exc:
        for e in exc.errors:
            where = f" {e.field}:" if e.field else ""
            print(f"{path}:{e.line}:{where} {e.message}", file=out)
        return 1
    print(f"{path}: {len(rules)} rule(s) valid: {', '.join(r.id for r in rules)}", file=out)
    return 0


def _read(path: Path, what: str) -> str | None:
    """The file's text, or None once ``what`` and the file are named on stderr.

    As ``verify --bundle`` names its file; an unreadable one printed ``[Errno 2] ...``
    (review, 2026-12-07).
    """
    try:
        return path.read_text()
    except OSError as exc:
        print(f"{what} {path}: {exc.strerror or exc}", file=sys.stderr)
        return None


def test(rules_path: Path, events_path: Path, out: TextIO | None = None) -> int:
    """Prints, per event (proto3 JSON, one per line), the rules that fire with score and evidence.

    Windows slide on each event's ``receiveTime`` (else ``occurredTime``, else
    the line number in seconds), as they would on the log: the events are evaluated
    in that time's order, as TestRule evaluates stored ones, and printed in the file's.
    Exit code 0 when the files are valid (whether or not anything fired), 1 otherwise.
    """
    text = _read(rules_path, "aiaudit rules test: rules file")
    if text is None:
        return 1
    events_text = _read(events_path, "aiaudit rules test: events file")
    if events_text is None:
        return 1
    if check(rules_path, out=io.StringIO()) != 0:
        return check(rules_path, out)
    rules = compile_file(text)
    lines = events_text.splitlines()
    events: list[tuple[str, event_pb2.Event]] = []
    times: list[float] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        event = event_pb2.Event()
        try:
            json_format.Parse(line, event)
        except json_format.ParseError as exc:
            print(f"{events_path}:{n}: not an Event in proto3 JSON: {exc}", file=out)
            return 1
        events.append((event.event_id or f"line {n}", event))
        times.append(_time(event, n))
    by_event: dict[int, list[Hit]] = {}
    wire = [e.SerializeToString() for _, e in events]
    hits = evaluate_in_receive_order(rules, wire, times)
    for i, hit in hits:
        by_event.setdefault(i, []).append(hit)
    for i, (label, _) in enumerate(events):
        if i not in by_event:
            print(f"{label}: -", file=out)
        for h in by_event.get(i, []):
            score = max((x.score for x in h.evidence), default=1.0)
            print(f"{label}: {h.rule.id} score={score:.2f} key={h.dedup_key} {h.summary}", file=out)
            for x in h.evidence:
                print(
                    f"    {x.detector} {x.score:.2f} {x.field}[{x.start}:{x.end}] {x.excerpt!r}",
                    file=out,
                )
    fired = len(hits)
    print(f"{fired} rule match(es)", file=out)
    return 0


def _time(event: event_pb2.Event, n: int) -> float:
    for ts in (event.receive_time, event.occurred_time):
        if ts.seconds or ts.nanos:
            return ts.ToDatetime(tzinfo=dt.UTC).timestamp()
    return float(n)


# ---- aiaudit alerting redeliver ----------------------------------------------------------------

_KEY_CHARS = 64
"""Longest tenant and alert id (the outbox's key columns)."""


def _sink(text: str) -> str:
    """An argparse type: a sink name outbox rows carry (whether configured here or not)."""
    if text not in SINKS:
        raise argparse.ArgumentTypeError(f"unknown sink {text!r}; one of: {', '.join(SINKS)}")
    return text


def _key(text: str) -> str:
    """An argparse type: a non-empty tenant or alert id that fits the key column."""
    if not text.strip() or len(text) > _KEY_CHARS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 to {_KEY_CHARS} characters")
    return text


def _since(text: str) -> dt.datetime:
    """An argparse type: an RFC 3339 time with its UTC offset, not in the future.

    Without an offset the operator's local time and UTC would both be plausible
    readings, and a wrong guess re-sends hours too much or too little.
    """
    if "t" not in text.lower():  # a date alone, which a filter reads as midnight UTC
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add a time and Z or +HH:MM")
    try:
        t = rfc3339.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if t > dt.datetime.now(dt.UTC):
        raise argparse.ArgumentTypeError(f"{text!r} is in the future")
    return t


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def _store_urls(args: argparse.Namespace) -> tuple[str, str | None]:
    """The outbox's store, and the store the re-send's records go through (None: its own).

    The outbox: --database-url, else ``alerting.database_url``, else the suite's
    store (must exist). The records (not for a dry run): on SQLite, or when the
    outbox is the suite's store, in the re-send's own transaction; else through
    --record-database-url, else the suite's store (``database_url``), since
    alerting's login may not append to the log (:mod:`aiaudit.alerting.redeliver_record`).

    Off loopback only over verified TLS unless ``allow_insecure``, checked before any
    connection (the login's password goes there), as ``serve`` checks its settings;
    ``allow_insecure`` was forced on here to skip the OIDC check, which waived that too.
    """
    overrides = {"data_dir": args.data_dir}
    settings = config.load(args.config, overrides=overrides, serving=False)  # database_url too
    if not logging.getLogger().handlers:  # the trace as JSON on stderr, like the server's logs
        logs.configure(settings.log_level)
    own = config.section(settings, "alerting", AlertingSettings).database_url
    if args.database_url:
        config.require_secure_database(args.database_url, "--database-url", settings.allow_insecure)
    elif own:
        config.require_secure_database(own, "alerting.database_url", settings.allow_insecure)
    if args.record_database_url:
        config.require_secure_database(
            args.record_database_url, "--record-database-url", settings.allow_insecure
        )
    url: str = args.database_url or own or settings.store_url
    _require_file(url, "--database-url or --data-dir")
    record: str = args.record_database_url or settings.store_url
    if args.dry_run or url == record or sa.make_url(url).get_backend_name() == "sqlite":
        return url, None
    _require_file(record, "--record-database-url or set database_url (the suite's store)")
    return url, record


def _require_file(url: str, fix: str) -> None:
    """A SQLite store must exist: opening it would create an empty file."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise ConfigError(f"no store at {parsed.database}; pass {fix}")


def _requester(requested_by: str) -> str:
    """Who re-sends: required (it is the records' actor) and storable."""
    if not requested_by.strip():
        raise ConfigError("--requested-by: required, who re-sends ($USER is not set)")
    if bad := erasure.problems(requested_by, ""):
        raise ConfigError("; ".join(f"--requested-by {problem}" for _, problem in bad))
    return requested_by


@contextlib.contextmanager
def _recorder(
    store: SqlEventStore, record_url: str | None, s: Selection, requested_by: str
) -> Iterator[Recorder]:
    """Records through the outbox's own transaction, or through the store at ``record_url``."""
    if record_url is None:
        yield redeliver_record.in_transaction(store, s, requested_by)
        return
    # The records have no content fields, so they are stored unsealed: no keyring, no KEK.
    recording = open_store(record_url)
    try:
        yield redeliver_record.through(recording, s, requested_by)
    finally:
        recording.close()


def summary(s: Selection, outcome: Outcome, dry_run: bool) -> dict[str, object]:
    """The JSON the command prints: the selection, how many and which rows, unmatched ids."""
    return {
        "dry_run": dry_run,
        "sink": s.sink,
        "tenant": s.tenant or None,
        "since": _iso(s.since),
        "alert_ids": list(s.alert_ids),
        "count": len(outcome.rows),
        "deliveries": [
            {
                "tenant": r.tenant,
                "alert_id": r.alert_id,
                "attempts": r.attempts,
                "dead_time": _iso(r.dead_time),
                "last_error": r.last_error,
            }
            for r in outcome.rows
        ],
        "skipped": [
            {"tenant": k.tenant, "alert_id": k.alert_id, "status": k.status}
            for k in outcome.skipped
        ],
        "not_found": outcome.not_found,
        "records": [{"tenant": t, "event_id": e} for t, e in outcome.records],
    }


def run_redeliver(args: argparse.Namespace) -> int:
    """Re-queues (or with --dry-run lists) dead rows; prints a JSON summary.

    A re-send is recorded in each affected tenant's log first (a dry run, which
    hands out no event data, is not). Exit 0 when it ran (whether or not
    anything matched), 2 for a bad setting or a store that does not exist, 1
    when a store fails or the records cannot be written (nothing moved then).
    """
    selection = Selection(args.sink, args.tenant or "", args.since, tuple(args.alert_id))
    prog = "aiaudit alerting redeliver"
    try:
        url, record_url = _store_urls(args)
        requested_by = args.requested_by if args.dry_run else _requester(args.requested_by)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    store = open_store(url)
    try:
        if args.dry_run:
            outcome = dry_run(store.engine, selection)
        else:
            with _recorder(store, record_url, selection, requested_by) as record:
                outcome = redeliver(store.engine, selection, dt.datetime.now(dt.UTC), record)
    except redeliver_record.NotRecordedError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except sa.exc.DBAPIError as exc:
        where = store.engine.url.render_as_string(hide_password=True)
        print(f"{prog}: store {where}: {' '.join(str(exc.orig).split())}", file=sys.stderr)
        return 1
    finally:
        store.close()
    out = summary(selection, outcome, args.dry_run)
    if not args.dry_run:
        # An operator's action on the outbox: who, what they chose, which rows it moved,
        # and the records it left in the tenants' logs.
        log.warning(
            "dead-lettered alert deliveries re-queued",
            extra={
                "operator": requested_by,
                **{k: out[k] for k in ("sink", "tenant", "since", "alert_ids", "count")},
                "deliveries": [f"{r.tenant}/{r.alert_id}" for r in outcome.rows],
                "records": [f"{t}/{e}" for t, e in outcome.records],
            },
        )
    print(json.dumps(out, indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    """Adds ``alerting redeliver`` to the ``aiaudit`` command."""
    alerting = sub.add_parser("alerting", help="alert delivery administration")
    asub = alerting.add_subparsers(dest="alerting_command", required=True)
    r = asub.add_parser(
        "redeliver",
        help="send dead-lettered alert deliveries again (back to pending, attempts from 0)",
        description="Moves a sink's dead-lettered deliveries back to pending, due now, with "
        "the attempt count reset; running deliverers then send them. Only dead rows move; "
        "prints a JSON summary.",
    )
    common(r)
    r.add_argument(
        "--database-url",
        help="the store, as a login in aiaudit_alerting "
        "(default: alerting.database_url, else the suite's store)",
    )
    r.add_argument(
        "--record-database-url",
        help="where the re-send is recorded in the tenants' logs, as a login in "
        "aiaudit_recorder or aiaudit_writer, of the same database (default: the suite's "
        "store; unused on SQLite and when the outbox is the suite's store)",
    )
    r.add_argument(
        "--sink",
        required=True,
        type=_sink,
        metavar="{" + ",".join(SINKS) + "}",
        help="the sink whose dead rows to re-send",
    )
    r.add_argument("--tenant", type=_key, help="only this tenant's deliveries")
    r.add_argument(
        "--since",
        type=_since,
        help="only rows dead-lettered at or after this ISO 8601 time with offset, "
        "e.g. 2025-01-31T09:00:00Z",
    )
    r.add_argument(
        "--alert-id",
        type=_key,
        action="append",
        default=[],
        help="only this alert (repeatable); named ids not re-sent are listed in the summary",
    )
    r.add_argument(
        "--dry-run", action="store_true", help="list what would be re-sent and change nothing"
    )
    r.add_argument(
        "--requested-by",
        default=os.environ.get("USER", ""),
        help="who re-sends (the records' actor and the log line; default $USER)",
    )
    r.set_defaults(func=run_redeliver)
