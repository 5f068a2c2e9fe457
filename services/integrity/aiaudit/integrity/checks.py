"""Checks of one stored event against what the log committed to (pure, no I/O).

Shared by ``VerifyEvent`` and ``aiaudit verify`` so both name problems the
same way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any, cast

from aiaudit.common import canonical, erasure
from aiaudit.common.store.schema import TEXT_COLUMNS
from aiaudit.common.v1 import event_pb2

MISSING_EVENT = "the event row is missing (deleted?) but its log entry remains"
CHANGED_EVENT = "canonical form does not match the log entry's leaf hash (changed)"


def event_problems(
    log_id: str,
    event_id: str,
    leaf: bytes,
    committed: bytes | None,
    salt: bytes | None,
    content: Mapping[str, str] | None,
    parsed: Any = None,
) -> list[str]:
    """What is wrong with a stored event given its log entry (event id, leaf hash).

    ``parsed``: ``committed`` already parsed by the caller (``verify`` parses
    it once for all its checks), else parsed here.
    """
    if committed is None:
        return [MISSING_EVENT]
    problems = []
    if canonical.leaf_hash(committed) != leaf:
        problems.append(CHANGED_EVENT)
    try:
        node = json.loads(committed) if parsed is None else parsed
    except ValueError:
        return [*problems, "canonical form is not JSON"]
    if not isinstance(node, dict):
        return [*problems, "canonical form is not a JSON object"]
    if node.get("eventId") != event_id:
        problems.append(f"canonical eventId {node.get('eventId')!r} is not {event_id!r}")
    if node.get("tenantId") != log_id:
        problems.append(f"canonical tenantId {node.get('tenantId')!r} is not the log {log_id!r}")
    if salt is not None and content is not None:
        problems.extend(canonical.content_problems(committed, dict(content), salt, node))
    return problems


def _time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp of the proto3 JSON mapping (0-9 fractional digits, ``Z``)."""
    if not isinstance(value, str):
        return None
    head, dot, frac = value.removesuffix("Z").partition(".")
    micros = int((frac + "000000")[:6]) if dot else 0
    return dt.datetime.fromisoformat(head).replace(microsecond=micros, tzinfo=dt.UTC)


def search_columns(node: Mapping[str, Any]) -> dict[str, object]:
    """The ``events`` search columns as ingest derives them, from the canonical JSON.

    Read from the parsed JSON rather than a protobuf round trip: ``verify``
    runs this for every event, and the JSON names are those of the proto3
    JSON mapping (defaults omitted, enums by name).
    """
    columns: dict[str, object] = {
        "event_id": node.get("eventId", ""),
        "event_type": node.get("eventType", "EVENT_TYPE_UNSPECIFIED"),
        "occurred_time": _time(node.get("occurredTime", "1970-01-01T00:00:00Z")),
        "receive_time": _time(node.get("receiveTime", "1970-01-01T00:00:00Z")),
    }
    for column, message, name in _TEXT_JSON:
        columns[column] = node.get(message, {}).get(name) or None
    return columns


def _json_name(field: str) -> str:
    """The proto3 JSON name of a snake_case field (``user_id`` -> ``userId``)."""
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)


_TEXT_JSON = [
    (column, message, _json_name(field)) for column, (message, field) in TEXT_COLUMNS.items()
]
"""``TEXT_COLUMNS`` with the JSON names of their fields (named once, not per event)."""


def column_problems(node: Mapping[str, Any], stored: Mapping[str, object]) -> list[str]:
    """Search columns of the ``events`` row that disagree with the committed metadata."""
    try:
        expected = search_columns(node)
    except (ValueError, AttributeError):
        return ["committed metadata is malformed (bad timestamp or structure)"]
    problems = []
    for name, want in expected.items():
        have = stored.get(name)
        if isinstance(have, dt.datetime) and have.tzinfo is None:
            have = have.replace(tzinfo=dt.UTC)
        if have != want:
            problems.append(f"column {name} is {have!r} but the committed event says {want!r}")
    return problems


_CLASSES: dict[str, int | None] = {
    name: number or None for name, number in event_pb2.DataClassification.items()
}
"""The column ingest writes for each classification the canonical form names (JSON name)."""


def _class_name(number: object) -> str:
    """A classification number as named in problems (``DATA_CLASSIFICATION_RESTRICTED (4)``)."""
    try:
        return f"{event_pb2.DataClassification.Name(number)} ({number})"  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return f"{number!r} (no classification)"


REQUIRED_SINCE = "integrity.classification_required_since"
"""The setting since which NULL on a classified event is damage (``aiaudit.integrity.settings``)."""


def rfc3339(when: dt.datetime) -> str:
    """A UTC time as problems name it (``2026-12-07T10:00:00Z``)."""
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def classification_required(
    node: Mapping[str, Any], since: dt.datetime | None, later_than: tuple[int, Any] | None
) -> str | None:
    """Why the event's classification column may not be NULL, or None (a NULL is a warning).

    ``since``: :data:`REQUIRED_SINCE`, the time since which every replica
    writes the column. The event's committed receive time is in its leaf, so
    nobody changes it; but whoever appends an event (a writer login) chooses
    its receive time, and could backdate one to pass as a rolling upgrade's.
    ``later_than``: (sequence, receive time) of an earlier entry of the log
    received at or after ``since``: what follows it in the log was appended
    after it, so after ``since`` whatever receive time it carries.
    """
    if since is None:
        return None
    try:
        received = _time(node.get("receiveTime"))
    except ValueError:
        received = None  # not proto3 JSON: column_problems names it
    setting = f"{REQUIRED_SINCE} ({rfc3339(since)})"
    if received is not None and received >= since:
        return f"received {rfc3339(received)}, at or after {setting}"
    if later_than is not None:
        seq, at = later_than
        got = rfc3339(received) if received is not None else "at no time"
        return (
            f"received {got}, but appended after sequence {seq} of its log, received "
            f"{rfc3339(at)}, at or after {setting} (backdated?)"
        )
    return None


def classification_problem(
    node: Mapping[str, Any], column: object, empty: bool, required: str | None = None
) -> tuple[str, bool] | None:
    """What is wrong with a content row's ``data_classification``, and whether only a warning.

    Ingest writes the committed classification's number, NULL for UNSPECIFIED
    (revision 0013); the retention sweep finds content by this column alone,
    so a changed one erases content early or keeps it past its deadline.
    NULL where the event is classified is also what a replica of the previous
    version writes during a rolling upgrade (the migration fills only the rows
    before it), so that is a warning: named, no damage; unless ``required``
    (:func:`classification_required`) says why no replica wrote it. ``empty``:
    content ``{}``, which no sweep erases (and the migration leaves NULL).
    """
    value = node.get("dataClassification")
    want = _CLASSES.get(value) if isinstance(value, str) else value
    if want is not None and (isinstance(want, bool) or not isinstance(want, int)):
        want = None  # not a classification: not proto3 JSON (the leaf check names a change)
    if column == want or (column is None and empty):
        return None
    committed = _class_name(want) if want else "DATA_CLASSIFICATION_UNSPECIFIED (held as NULL)"
    if column is None and required is not None:
        return (
            f"column event_content.data_classification is NULL but the committed event is "
            f"{committed}: content retention keeps it as INTERNAL, and the event was "
            f"{required}, since when every replica writes the column (set to NULL?)",
            False,
        )
    if column is None:
        return (
            f"column event_content.data_classification is NULL but the committed event is "
            f"{committed}: content retention keeps it as INTERNAL (written by a replica "
            "older than revision 0013 during a rolling upgrade, or set to NULL?)",
            True,
        )
    return (
        f"column event_content.data_classification is {_class_name(column)} but the "
        f"committed event is {committed}: content retention goes by the column (changed?)",
        False,
    )


class Parts:
    """Names the erasures whose records are not all there: parts 1..n, consecutive, once each.

    An erasure of more than :data:`erasure.RECORD_IDS` ids is recorded in
    several records committed in one transaction: consecutive entries of the
    log sharing the request (time, subject, reason, requester). A part missing
    can only have been deleted (or cut with the tail): past the last checkpoint
    no root says so, and every reader would take the erasure as whole. Fed the
    intact records in sequence order (a changed record is none, so the part it
    held is named missing too); a record of one part (retention's, erasures
    before parts) is whole alone. Each finding carries the run (one erasure's
    records read together) it belongs to, which :meth:`add` returns, so that
    ``VerifyEvent`` names only those of the erasures that erased its event.
    """

    def __init__(self) -> None:
        self.found: list[tuple[int, str, str, int]] = []
        """(Sequence, record's event id, what, run) of each finding."""
        self.run: list[tuple[int, erasure.Record]] = []
        """(Sequence, record) of the parts read of the last erasure in parts, in log order."""
        self.runs = 0
        """Runs begun so far; the current one's number is :attr:`run_id`."""
        self.run_id = 0

    def add(self, seq: int, record: erasure.Record) -> int:
        """Takes the next intact record of the log; returns the number of its run."""
        part, parts = record.part, record.parts
        if part is None or parts is None:
            self.runs += 1
            what = f"erasure record: attributes {erasure.PART} and {erasure.PARTS} are no part "
            self.found.append(
                (seq, record.event_id, what + "number of a count (forged?)", self.runs)
            )
            return self.runs
        last = self.run[-1] if self.run else None
        if (
            parts == 1
            or last is None
            or (last[1].request, last[1].parts) != (record.request, parts)
        ):
            self.finish_run()
            self.runs += 1
            self.run_id = self.runs
            if part > 1:
                self.missing(seq, record, range(1, part), "before it")
            if parts > 1:
                self.run = [(seq, record)]
            return self.run_id
        seen = next((at for at, r in self.run if r.part == part), None)
        had = max(cast(int, r.part) for _, r in self.run)
        if seen is not None:
            self.note(
                seq,
                record,
                f" appears again (first at sequence {seen}): each part is recorded once"
                " (inserted?)",
            )
        elif part > had + 1:
            self.missing(
                seq,
                record,
                range(had + 1, part),
                f"between part {had} at sequence {last[0]} and it",
            )
        elif part < had or seq != last[0] + 1:
            self.note(
                seq,
                record,
                f" is not the entry after part {part - 1}: an erasure's "
                "parts are consecutive entries of the log, in order (moved?)",
            )
        self.run.append((seq, record))
        return self.run_id

    def note(self, seq: int, record: erasure.Record, what: str) -> None:
        """Files a finding of the current run."""
        part = f"erasure record part {record.part} of {record.parts}{what}"
        self.found.append((seq, record.event_id, part, self.run_id))

    def missing(self, seq: int, record: erasure.Record, absent: range, where: str) -> None:
        """Files the parts ``absent`` of the current run as missing."""
        self.note(
            seq,
            record,
            f": part(s) {_span(absent[0], absent[-1])} of its erasure {where} are not among "
            "the log's intact records (deleted, changed, or the tail truncated?)",
        )

    def finish_run(self) -> None:
        """Names the parts missing after the last one read of the erasure being read."""
        if self.run:
            had = max(cast(int, r.part) for _, r in self.run)
            seq, record = max(self.run, key=lambda read: cast(int, read[1].part))
            parts = cast(int, record.parts)
            if had < parts:
                self.missing(seq, record, range(had + 1, parts + 1), "after it")
        self.run = []

    def finish(self, runs: Collection[int] | None = None) -> list[tuple[int, str, str]]:
        """(Sequence, record's event id, what) of each finding, in the log's order.

        ``runs``: only the findings of these runs (as :meth:`add` numbered them).
        """
        self.finish_run()
        return sorted(
            (seq, event_id, what)
            for seq, event_id, what, run in self.found
            if runs is None or run in runs
        )


def put_back(record: int) -> str:
    """Content present although the intact record at ``record``, after the event, names it.

    A restore from a backup taken before the erasure brought it back, and every
    reader serves it again; ``verify`` and ``VerifyEvent`` name it alike.
    """
    return (
        f"content present although the erasure record at sequence {record} names the "
        "event (put back?)"
    )


def erasure_problems(records: Iterable[tuple[int, bytes]], event_id: str) -> tuple[bool, list[str]]:
    """Whether an intact record names the event, and what its erasures lack (``VerifyEvent``).

    ``records``: the intact erasure and retention records after the event, in
    log order (``storage.erasure_records``). All of an erasure's parts are
    committed together, after the events it names, so they are all among them.
    Read up to the first record of another erasure after the first that names
    the event: that one erasure, whole, explains the content gone, and the
    records after it are not read (a later erasure naming the event again is
    checked by ``verify``, and by ``VerifyEvent`` of the events it alone erased).
    """
    parts = Parts()
    runs: set[int] = set()
    for seq, committed in records:
        record = erasure.read_record(committed)
        if record is None:
            continue
        run = parts.add(seq, record)
        if runs and run not in runs and parts.run_id not in runs:
            break  # the erasure naming the event is over (a forged record does not end it)
        if event_id in record.ids:
            runs.add(run)
    found = parts.finish(runs)
    return bool(runs), [f"sequence {seq} event {record}: {what}" for seq, record, what in found]


def _span(first: int, last: int) -> str:
    """``2`` or ``2..4``."""
    return str(first) if first == last else f"{first}..{last}"
