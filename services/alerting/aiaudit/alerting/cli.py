"""Offline rule tooling for rule authors and their CI: ``aiaudit rules check|test``."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from typing import TextIO

from google.protobuf import json_format

from aiaudit.alerting.evaluate import Evaluator, Hit, WindowState
from aiaudit.alerting.rules import RuleSyntaxError, compile_file
from aiaudit.common.v1 import event_pb2


def check(path: Path, out: TextIO = sys.stdout) -> int:
    """Validates a rule file: 0 and the rule ids, or 1 and ``FILE:LINE: field: message``."""
    try:
        rules = compile_file(path.read_text())
    except RuleSyntaxError as exc:
        for e in exc.errors:
            where = f" {e.field}:" if e.field else ""
            print(f"{path}:{e.line}:{where} {e.message}", file=out)
        return 1
    except OSError as exc:
        print(f"{path}: {exc}", file=out)
        return 1
    print(f"{path}: {len(rules)} rule(s) valid: {', '.join(r.id for r in rules)}", file=out)
    return 0


def test(rules_path: Path, events_path: Path, out: TextIO = sys.stdout) -> int:
    """Prints, per event (proto3 JSON, one per line), the rules that fire with score and evidence.

    Windows slide on each event's ``receiveTime`` (else ``occurredTime``, else
    the line number in seconds), as they would on the log. Exit code 0 when the
    files are valid (whether or not anything fired), 1 otherwise.
    """
    if check(rules_path, out=io.StringIO()) != 0:
        return check(rules_path, out)
    rules = compile_file(rules_path.read_text())
    events: list[tuple[str, event_pb2.Event]] = []
    times: list[float] = []
    for n, line in enumerate(events_path.read_text().splitlines(), 1):
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
    hits = Evaluator(rules).evaluate(wire, times, WindowState())
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
