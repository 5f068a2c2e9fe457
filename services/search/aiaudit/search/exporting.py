"""Export formats: JSON Lines, CSV and XML, written one event at a time.

- JSON Lines: one event per line in its proto3 JSON mapping (as every
  protobuf library prints it), so each line parses back to the event; U+2028,
  U+2029 and U+0085 as JSON escapes, so that no line reader splits an event.
- CSV (RFC 4180, UTF-8, header row): the flattened columns of :func:`columns`,
  the same values the filter language uses (times in RFC 3339 UTC with
  microseconds, durations in seconds, enums by name); multi-valued columns
  hold a JSON array, ``trust_signals`` and ``attributes`` a JSON object of
  arrays by name, each value in the JSON type the event gave it (the text
  ``"true"`` a string, the boolean ``true`` a boolean). The arrays hold one
  value per item, an empty text as ``""`` (:func:`aiaudit.search.document.values`):
  each ``safety_flags.*`` column one per flag, ``output.finish_reasons`` one per
  reason, ``output.tool_calls.name`` one per call, in the event's order, so the
  i-th values of the ``safety_flags.*`` columns are one flag's. A text cell (ids,
  names, content) that begins with ``=``, ``+``, ``-``, ``@``, a tab, a
  carriage return, a line feed, U+0000 or ``'``, or with whitespace (or
  U+0000) and then one of ``= + - @``, gets one more ``'`` in front
  (:func:`guarded`): a spreadsheet would run a formula there (a prompt is
  attacker-controlled text), and the apostrophe is what spreadsheets take as
  "text". Reading back, drop one leading ``'``.
- XML: one ``<event>`` per event with an element per column present (one per
  value of a multi-valued column, as the CSV arrays: the i-th
  ``<safety_flags.category>`` and the i-th ``<safety_flags.severity>`` are one
  flag's, an empty text an empty element), and the
  whole event as proto3 JSON in ``<json>``; valid against ``export.xsd``
  (generated from the catalogue by :func:`xsd`, published beside this module).
  Characters XML 1.0 cannot carry (control characters) are replaced by U+FFFD
  in the column elements; ``<json>`` keeps them escaped, exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2
from aiaudit.search import catalogue, document
from aiaudit.search.catalogue import Field, Kind
from aiaudit.search.document import Document, Entry, iso

NAMESPACE = "urn:aiaudit:export:v1"
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
LINE_SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
"""The line breaks JSON leaves raw, as escapes: Python's ``str.splitlines`` (and
readers that take Unicode line ends) split on them, so a JSON Lines reader saw one
event as two lines, neither of them JSON. JSON escapes every other character
``splitlines`` splits on; the escapes parse back to the same text."""


def columns() -> list[str]:
    """The CSV header: scalars, multi-valued fields, families, texts."""
    return [
        *(f.name for f in catalogue.SCALARS),
        *(f.name for f in catalogue.MULTIS),
        *catalogue.FAMILIES,
        *(f.name for f in catalogue.TEXTS),
    ]


def event_json(event: event_pb2.Event) -> str:
    """The event's proto3 JSON on one line (RFC 8785 text, as its canonical form is written).

    Until 2026-12-06 ``json_format.MessageToDict`` and ``json.dumps``, about 60 us an
    event against 5: most of a JSON Lines export's time.
    """
    return canonical.proto_json(event).decode()


def _scalar_text(field: Field, value: object) -> str:
    if field.kind is Kind.TIMESTAMP:
        return iso(int(value))  # type: ignore[call-overload]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _entry_value(e: Entry) -> object:
    """The value in the type the event gave it (entries are built from the stored event).

    Until 2026-12-05 every text "true"/"false" came out as a boolean: the entry
    did not say which it was.
    """
    if e.bool_value is not None:
        return e.bool_value
    if e.num_value is not None:
        return e.num_value
    return e.str_value


def _entry_xml(e: Entry) -> tuple[str, str]:
    """The XML ``type`` (``bool``, ``number``, ``string``) and text of a value."""
    if e.bool_value is not None:
        return "bool", "true" if e.bool_value else "false"
    if e.num_value is not None:
        return "number", repr(e.num_value)
    return "string", str(e.str_value)


_FORMULA = re.compile(r"[\s\x00]*[=+\-@]|[\t\r\n\x00']")
"""A cell to guard: ``= + - @`` first or after leading whitespace or NULs, or a tab,
CR, LF, NUL or ``'`` first."""


def guarded(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (OWASP's CSV injection advice).

    OWASP names ``= + - @``, tab, CR and NUL as first characters; spreadsheets
    also skip leading whitespace before a formula (``" =HYPERLINK(...)"``,
    after a line feed or a no-break space), so those were run too until
    2026-12-05. A cell already starting with ``'`` gets one more, so that a
    reader always drops exactly one.
    """
    return "'" + text if _FORMULA.match(text) else text


def _scalar_cell(field: Field, value: object) -> str:
    text = _scalar_text(field, value)
    return guarded(text) if field.kind is Kind.KEYWORD else text


def row(doc: Document, values: list[Entry]) -> list[str]:
    """The CSV row of a document and its event's :func:`~aiaudit.search.document.values`.

    The multi-valued columns come from ``values``, not from ``doc.entries``: the
    index leaves empty texts out, which misaligned the ``safety_flags.*``
    arrays and lost an attribute holding ``""`` (until 2026-12-06).
    """
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
    out += [guarded(doc.texts.get(f.name, "")) for f in catalogue.TEXTS]
    return out


class Writer:
    """Turns events into chunks of one format."""

    def __init__(self, fmt: str, tenant: str) -> None:
        """``fmt`` is ``jsonl``, ``csv`` or ``xml``."""
        self._fmt = fmt
        self._tenant = tenant
        self._encode: Callable[[event_pb2.Event, int], str] = {
            "jsonl": self._jsonl,
            "csv": self._csv,
            "xml": self._xml,
        }[fmt]

    def header(self) -> str:
        """What precedes the first event."""
        if self._fmt == "csv":
            return _csv_line(columns())
        if self._fmt == "xml":
            return (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<events xmlns="{NAMESPACE}" tenant={quoteattr(self._tenant)}>\n'
            )
        return ""

    def footer(self) -> str:
        """What follows the last event."""
        return "</events>\n" if self._fmt == "xml" else ""

    def event(self, event: event_pb2.Event, sequence: int) -> str:
        """One event, at its sequence in the log.

        The columns of CSV and XML are the index document's (built here, for
        those two only: JSON Lines built it for nothing until 2026-12-06, a
        quarter of an export's time).
        """
        return self._encode(event, sequence)

    def _jsonl(self, event: event_pb2.Event, sequence: int) -> str:
        del sequence
        return event_json(event).translate(LINE_SEPARATORS) + "\n"

    def _csv(self, event: event_pb2.Event, sequence: int) -> str:
        return _csv_line(row(document.build(event, sequence), document.values(event)))

    def _xml(self, event: event_pb2.Event, sequence: int) -> str:
        doc = document.build(event, sequence)
        values = document.values(event)
        parts = ["<event>"]
        for f in catalogue.SCALARS:
            if f.name in doc.scalars:
                parts.append(_element(f.name, _scalar_text(f, doc.scalars[f.name])))
        for f in catalogue.MULTIS:
            for e in values:
                if e.field == f.name:
                    parts.append(_element(f.name, _entry_xml(e)[1]))
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
        # The exact event: U+FFFE/U+FFFF (not allowed in XML) as JSON escapes, not replaced.
        exact = event_json(event).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
        parts.append(f"<json>{_escape(exact)}</json>")
        parts.append("</event>\n")
        return "".join(parts)


def _clean(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


def _escape(text: str) -> str:
    """XML text; a carriage return as a reference, or parsers read it as a line feed."""
    return escape(text, {"\r": "&#13;"})


def _element(name: str, text: str) -> str:
    return f"<{name}>{_escape(_clean(text))}</{name}>"


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


_XSD_TYPES = {
    Kind.KEYWORD: "xs:string",
    Kind.INT: "xs:long",
    Kind.FLOAT: "xs:double",
    Kind.DURATION: "xs:double",
    Kind.TIMESTAMP: "xs:dateTime",
    Kind.BOOL: "xs:boolean",
    Kind.TEXT: "xs:string",
}


def _xsd_element(f: Field, many: bool) -> list[str]:
    occurs = ' minOccurs="0"' + (' maxOccurs="unbounded"' if many else "")
    if f.kind is not Kind.ENUM:
        return [f'      <xs:element name="{f.name}" type="{_XSD_TYPES[f.kind]}"{occurs}/>']
    out = [f'      <xs:element name="{f.name}"{occurs}>', "        <xs:simpleType>"]
    out.append('          <xs:restriction base="xs:string">')
    out += [f'            <xs:enumeration value="{v}"/>' for v in f.enum_values]
    out += ["          </xs:restriction>", "        </xs:simpleType>", "      </xs:element>"]
    return out


def xsd() -> str:
    """The XML schema of exports (published as export.xsd; a test keeps them equal)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- aiaudit export format: generated from aiaudit.search.catalogue. -->",
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"',
        f'           targetNamespace="{NAMESPACE}" xmlns="{NAMESPACE}"',
        '           elementFormDefault="qualified">',
        '  <xs:complexType name="NamedValue">',
        "    <xs:simpleContent>",
        '      <xs:extension base="xs:string">',
        '        <xs:attribute name="name" type="xs:string" use="required"/>',
        '        <xs:attribute name="type" use="required">',
        "          <xs:simpleType>",
        '            <xs:restriction base="xs:string">',
        '              <xs:enumeration value="string"/>',
        '              <xs:enumeration value="number"/>',
        '              <xs:enumeration value="bool"/>',
        "            </xs:restriction>",
        "          </xs:simpleType>",
        "        </xs:attribute>",
        "      </xs:extension>",
        "    </xs:simpleContent>",
        "  </xs:complexType>",
        '  <xs:complexType name="Event">',
        "    <xs:sequence>",
    ]
    for f in catalogue.SCALARS:
        lines += _xsd_element(f, many=False)
    for f in catalogue.MULTIS:
        lines += _xsd_element(f, many=True)
    lines += [
        '      <xs:element name="trust_signal" type="NamedValue" minOccurs="0"'
        ' maxOccurs="unbounded"/>',
        '      <xs:element name="attribute" type="NamedValue" minOccurs="0"'
        ' maxOccurs="unbounded"/>',
    ]
    for f in catalogue.TEXTS:
        lines += _xsd_element(f, many=False)
    lines += [
        '      <xs:element name="json" type="xs:string"/>',
        "    </xs:sequence>",
        "  </xs:complexType>",
        '  <xs:element name="events">',
        "    <xs:complexType>",
        "      <xs:sequence>",
        '        <xs:element name="event" type="Event" minOccurs="0" maxOccurs="unbounded"/>',
        "      </xs:sequence>",
        '      <xs:attribute name="tenant" type="xs:string" use="required"/>',
        "    </xs:complexType>",
        "  </xs:element>",
        "</xs:schema>",
    ]
    return "\n".join(lines) + "\n"
