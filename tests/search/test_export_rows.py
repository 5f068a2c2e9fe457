"""CSV rows and XML elements read from the stored form are the bytes the old writer wrote.

The reference below is the writer as it was before 2026-12-06 (``document.build`` on the
redacted protobuf event, ``strftime`` for times, a CSV writer per row), kept here verbatim
with the redaction it was fed: exports must not change by one byte.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.common import canonical, media, restore
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import catalogue, document, exporting, stored_document
from aiaudit.search.catalogue import Field, Kind
from aiaudit.search.handlers import QUOTING_RECORDS, Visibility
from tests.helpers import interaction
from tests.search.test_stored_document import corpus
from tests.unit import test_native_canonical

VIEWS = [Visibility(content, pii) for content in (True, False) for pii in (True, False)]


def _iso(us: int) -> str:
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _redact(found: StoredEvent, view: Visibility) -> ev.Event:
    event = ev.Event()
    restore.restore_stored_into(event, found, found.content if view.content else None)
    if not view.pii:
        if view.content and event.event_type in QUOTING_RECORDS:
            event.Clear()
            restore.restore_stored_into(event, found, None)
        event.actor.ClearField("ip_address")
    shows = view.content and (view.pii or event.event_type not in QUOTING_RECORDS)
    if found.content is None or not shows:
        media.drop_hashes(event)
    return event


def _scalar_text(field: Field, value: object) -> str:
    if field.kind is Kind.TIMESTAMP:
        return _iso(int(value))  # type: ignore[call-overload]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _entry_value(e: document.Entry) -> object:
    if e.bool_value is not None:
        return e.bool_value
    if e.num_value is not None:
        return e.num_value
    return e.str_value


def _entry_xml(e: document.Entry) -> tuple[str, str]:
    if e.bool_value is not None:
        return "bool", "true" if e.bool_value else "false"
    if e.num_value is not None:
        return "number", repr(e.num_value)
    return "string", str(e.str_value)


def _scalar_cell(field: Field, value: object) -> str:
    text = _scalar_text(field, value)
    return exporting.guarded(text) if field.kind is Kind.KEYWORD else text


def _row(doc: document.Document, values: list[document.Entry]) -> list[str]:
    out = [
        _scalar_cell(f, doc.scalars[f.name]) if f.name in doc.scalars else ""
        for f in catalogue.SCALARS
    ]
    for f in catalogue.MULTIS:
        items = [_entry_value(e) for e in values if e.field == f.name]
        out.append(json.dumps(items, ensure_ascii=False) if items else "")
    for family in catalogue.FAMILIES:
        grouped: dict[str, list[object]] = {}
        for e in values:
            if e.field.startswith(family + "."):
                name = e.field[len(family) + 1 :]
                grouped.setdefault(name, []).append(_entry_value(e))
        out.append(json.dumps(grouped, ensure_ascii=False, sort_keys=True) if grouped else "")
    out += [exporting.guarded(doc.texts.get(f.name, "")) for f in catalogue.TEXTS]
    return out


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


def _escape(text: str) -> str:
    return escape(text, {"\r": "&#13;"})


def _element(name: str, text: str) -> str:
    return f"<{name}>{_escape(_clean(text))}</{name}>"


def _xml(event: ev.Event, sequence: int) -> str:
    doc = document.build(event, sequence)
    values = document.values(event)
    parts = ["<event>"]
    for f in catalogue.SCALARS:
        if f.name in doc.scalars:
            parts.append(_element(f.name, _scalar_text(f, doc.scalars[f.name])))
    for f in catalogue.MULTIS:
        parts += [_element(f.name, _entry_xml(e)[1]) for e in values if e.field == f.name]
    for family, tag in (("trust_signals", "trust_signal"), ("attributes", "attribute")):
        for e in values:
            if e.field.startswith(family + "."):
                name = e.field[len(family) + 1 :]
                kind, text = _entry_xml(e)
                parts.append(
                    f"<{tag} name={quoteattr(_clean(name))} type={quoteattr(kind)}>"
                    f"{_escape(_clean(text))}</{tag}>"
                )
    for f in catalogue.TEXTS:
        if doc.texts.get(f.name):
            parts.append(_element(f.name, doc.texts[f.name]))
    exact = exporting.event_json(event).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
    parts.append(f"<json>{_escape(exact)}</json>")
    parts.append("</event>\n")
    return "".join(parts)


def reference(fmt: str, found: StoredEvent, view: Visibility) -> str:
    """What the writer wrote for ``found`` before 2026-12-06."""
    event = _redact(found, view)
    if fmt == "xml":
        return _xml(event, found.sequence)
    buffer = io.StringIO()
    row = _row(document.build(event, found.sequence), document.values(event))
    csv.writer(buffer, lineterminator="\r\n").writerow(row)
    return buffer.getvalue()


def outcome(write: object, *args: object) -> str:
    """What a writer gives, or the type of what it raises (an unknown enum number raises)."""
    try:
        return write(*args)  # type: ignore[operator,no-any-return]
    except Exception as exc:  # compared: the same error on both paths
        return f"raised {type(exc).__name__}"


def stored(event: ev.Event, erased: bool = False) -> StoredEvent:
    committed = canonical.commit(event, b"s" * 32)
    content = None if erased else committed.content
    return StoredEvent(
        "log", 41, event.event_id, b"", dt.datetime.now(dt.UTC), committed.canonical, None, content
    )


def special() -> ev.Event:
    """Text a spreadsheet would run, XML specials and characters XML cannot carry."""
    e = interaction("t", "=1+2\r\n<b>&amp;\ufffe\x01")
    e.event_type = ev.EVENT_TYPE_AUDIT_ACCESS  # content withheld without pii.read
    e.actor.user_id = " @SUM(A1)"
    e.actor.ip_address = "198.51.100.23"
    e.model.name = "-x<y>&'\"\x0b"
    e.attributes['it\'s "q" <&>\x02'].string_value = "'quoted"
    e.attributes["n"].double_value = 1e21
    e.attributes["i"].int_value = 2**63 - 1
    e.trust_signals.add(name="b", value=ev.AttributeValue(bool_value=True))
    e.trust_signals.add(name="a", value=ev.AttributeValue(string_value="\r"))
    e.trust_signals.add(name="b", value=ev.AttributeValue(int_value=-1))
    e.safety_flags.add(category="", severity=ev.SEVERITY_HIGH, score=0.25, blocked=True)
    e.safety_flags.add(category="x", source="\tsrc")
    e.output.finish_reasons.extend(["stop", ""])
    e.output.tool_calls.add(name="+tool", arguments="{}")
    e.input.messages.add().parts.add(
        media=ev.Media(mime_type="image/png", data=b"\x00", sha256=b"h" * 32)
    )
    return e


@pytest.mark.parametrize("fmt", ["csv", "xml"])
@pytest.mark.parametrize("event", [*corpus(), special()], ids=lambda e: e.event_id[:12] or "x")
def test_every_field_is_written_from_the_stored_form_as_before(fmt: str, event: ev.Event) -> None:
    """Each view of each event (content erased or not): the old bytes, from the fast path."""
    for erased in (False, True):
        found = stored(event, erased)
        for view in VIEWS:
            expected = reference(fmt, found, view)
            writer = exporting.Writer(fmt, "t")
            assert writer.write(found, view) == expected
            assert writer.event(view.redact(found), found.sequence) == expected
            quoted = event.event_type in QUOTING_RECORDS and view.content and not view.pii
            if quoted and not erased:  # redact restores it twice: the exact path
                with pytest.raises(stored_document.FastPathError):
                    writer.stored(found, view)
            else:
                assert writer.stored(found, view) == expected


@settings(max_examples=150, deadline=None)
@given(test_native_canonical.events(), st.sampled_from(VIEWS), st.booleans())
def test_random_events_take_the_fast_path_and_write_the_old_bytes(
    event: ev.Event, view: Visibility, erased: bool
) -> None:
    found = stored(event, erased)
    for fmt in ("csv", "xml"):
        expected = outcome(reference, fmt, found, view)
        writer = exporting.Writer(fmt, "t")
        if event.event_type in QUOTING_RECORDS and view.content and not view.pii and not erased:
            assert writer.write(found, view) == expected
        else:
            assert writer.stored(found, view) == expected


@settings(max_examples=200, deadline=None)
@given(test_native_canonical.any_events(), st.sampled_from(VIEWS), st.booleans())
def test_any_field_set_or_not_writes_the_old_bytes_or_the_same_error(
    event: ev.Event, view: Visibility, erased: bool
) -> None:
    """Every field, unknown enum numbers (the exact path, which raises as it did) included."""
    found = stored(event, erased)
    for fmt in ("csv", "xml"):
        writer = exporting.Writer(fmt, "t")
        assert outcome(writer.write, found, view) == outcome(reference, fmt, found, view)


def test_a_damaged_row_is_refused_as_before() -> None:
    """The fast path reads what the native restore takes; anything else, the exact way."""
    found = stored(interaction("t", "hello"))
    body = found.canonical.replace(b'"eventId"', b'"event_id"', 1)  # json_format reads it
    for damaged in (found._replace(canonical=body), found._replace(canonical=b"null")):
        for fmt in ("csv", "xml"):
            writer = exporting.Writer(fmt, "t")
            assert outcome(writer.write, damaged, VIEWS[0]) == outcome(
                reference, fmt, damaged, VIEWS[0]
            )


@given(st.integers(-62135596800_000_000, 253402300799_999_999))
def test_times_are_written_as_strftime_wrote_them(us: int) -> None:
    assert document.iso(us) == _iso(us)
