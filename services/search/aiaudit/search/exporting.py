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
import json
import re
from collections.abc import Callable
from typing import NamedTuple, Protocol
from xml.sax.saxutils import escape, quoteattr

from aiaudit.common import canonical
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2
from aiaudit.search import catalogue, document, stored_document
from aiaudit.search.catalogue import Field, Kind
from aiaudit.search.document import Entry, Scalar, iso

NAMESPACE = "urn:aiaudit:export:v1"
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
LINE_SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
"""The line breaks JSON leaves raw, as escapes: Python's ``str.splitlines`` (and
readers that take Unicode line ends) split on them, so a JSON Lines reader saw one
event as two lines, neither of them JSON. JSON escapes every other character
``splitlines`` splits on; the escapes parse back to the same text."""


def one_line(text: str) -> str:
    """``text`` with :data:`LINE_SEPARATORS` escaped, looked for first.

    ``str.translate`` looks every character of a text that is not all ASCII up
    in the table: 150 us for a proof bundle's line of 2.5 KB, every one of which
    holds the checkpoint's signature line and its em dash (a tenth of an export
    with proofs until 2026-12-07); the three scans take 0.2 us.
    """
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        return text.translate(LINE_SEPARATORS)
    return text


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


class Columns(NamedTuple):
    """What the CSV and XML columns of an event are written from."""

    scalars: dict[str, Scalar]
    """The index document's scalars (``Document.scalars``)."""
    values: list[Entry]
    """Every value of the multi-valued fields (:func:`~aiaudit.search.document.values`)."""
    texts: dict[str, str]
    """The index document's texts (``Document.texts``)."""


def columns_of(event: event_pb2.Event, sequence: int) -> Columns:
    """The columns of a protobuf event (the exact path)."""
    doc = document.build(event, sequence)
    return Columns(doc.scalars, document.values(event), doc.texts)


class View(Protocol):
    """What a caller may see of a tenant's events (``handlers.Visibility``)."""

    @property
    def content(self) -> bool:
        """Whether the caller holds ``content.read``."""

    @property
    def pii(self) -> bool:
        """Whether the caller holds ``pii.read``."""

    def redact(self, found: StoredEvent) -> event_pb2.Event:
        """The stored event as the caller may see it."""

    def shows_content_of(self, event_type: int) -> bool:
        """Whether an event of this type keeps its content for the caller."""

    def withhold(self, event: event_pb2.Event, shown: bool) -> None:
        """Removes from a restored event what the caller may not see but its content."""


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
    """The XML ``type`` attribute (``"bool"``, ``"number"``, ``"string"``) and text of a value."""
    if e.bool_value is not None:
        return '"bool"', "true" if e.bool_value else "false"
    if e.num_value is not None:
        return '"number"', repr(e.num_value)
    return '"string"', str(e.str_value)


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


def _cell(field: Field) -> Callable[[Scalar], str]:
    """How a scalar column's cell is written: keywords guarded, times in RFC 3339."""
    if field.kind is Kind.KEYWORD:
        return guarded  # type: ignore[return-value]  # a keyword's value is its text
    if field.kind is Kind.TIMESTAMP:
        return iso  # type: ignore[return-value]  # a time's value is its microseconds
    return str


def _xml_text(value: Scalar) -> str:
    """A value as XML text (``_escape(_clean(text))``, when there is something to replace)."""
    text = str(value)
    return _escape(_clean(text)) if _XML_SPECIAL.search(text) else text


_CELLS = {f.name: (i, _cell(f)) for i, f in enumerate(catalogue.SCALARS)}
"""Column and cell writer of each scalar (an event sets a few of them: placed, not searched)."""
_MULTI_NAMES = [f.name for f in catalogue.MULTIS]
_XML_SCALARS = {
    f.name: (i, f"<{f.name}>", f"</{f.name}>", _xml_text if f.kind is Kind.KEYWORD else _cell(f))
    for i, f in enumerate(catalogue.SCALARS)
}
"""Place, tags and text of each scalar element: keywords escaped, other values (numbers,
enum names, times) have nothing to escape."""
_JSON = json.JSONEncoder(ensure_ascii=False).encode
_JSON_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
"""``json.dumps`` with these options, without making an encoder for each value."""
_FAMILY_TAGS = {"trust_signals": "trust_signal", "attributes": "attribute"}
_EVENT_TYPES = dict(event_pb2.EventType.items())


def row(c: Columns) -> list[str]:
    """The CSV row of an event's columns.

    The multi-valued columns come from ``values``, not from ``Document.entries``:
    the index leaves empty texts out, which misaligned the ``safety_flags.*``
    arrays and lost an attribute holding ``""`` (until 2026-12-06).
    """
    out = [""] * len(_CELLS)
    for name, value in c.scalars.items():
        place, cell = _CELLS[name]
        out[place] = cell(value)
    multi: dict[str, list[object]] = {}
    families: dict[str, dict[str, list[object]]] = {}
    for e in c.values:  # one pass; each list keeps the event's order
        head, _, name = e.field.partition(".")
        if head in _FAMILY_TAGS:
            families.setdefault(head, {}).setdefault(name, []).append(_entry_value(e))
        else:
            multi.setdefault(e.field, []).append(_entry_value(e))
    for name in _MULTI_NAMES:
        items = multi.get(name)
        out.append(_JSON(items) if items else "")
    for family in catalogue.FAMILIES:
        grouped = families.get(family)
        out.append(_JSON_SORTED(grouped) if grouped else "")
    out += [guarded(c.texts.get(f.name, "")) for f in catalogue.TEXTS]
    return out


class _Returned:
    """A CSV writer's file whose ``write`` returns the line: ``writerow`` returns it too."""

    @staticmethod
    def write(line: str) -> str:
        return line


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
        # One writer for the export (a new StringIO and writer per row cost as much as the row).
        self._line: Callable[[list[str]], str] = csv.writer(
            _Returned(), lineterminator="\r\n"
        ).writerow

    def header(self) -> str:
        """What precedes the first event."""
        if self._fmt == "csv":
            return self._line(columns())
        if self._fmt == "xml":
            return (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<events xmlns="{NAMESPACE}" tenant={quoteattr(self._tenant)}>\n'
            )
        return ""

    def footer(self) -> str:
        """What follows the last event."""
        return "</events>\n" if self._fmt == "xml" else ""

    def write(self, found: StoredEvent, view: View) -> str:
        """A stored event as the caller may see it: :meth:`event` of ``view.redact(found)``.

        CSV and XML through :meth:`stored`, where it applies.
        """
        if self._fmt != "jsonl":
            try:
                return self.stored(found, view)
            except stored_document.UNEXPECTED:  # the exact path writes it, or raises
                pass
        return self._encode(view.redact(found), found.sequence)

    def stored(self, found: StoredEvent, view: View) -> str:
        """CSV or XML of a stored event, as :meth:`event` writes ``view.redact(found)``.

        The columns are read from the canonical JSON (:mod:`aiaudit.search.stored_document`):
        restoring each event into protobuf and building its index document from
        that (``document.build``) was most of those exports' time until 2026-12-06.
        The stored form is still restored natively, as ``view.redact`` restores it,
        so a row that path refuses goes the exact way (:meth:`write`), as does a
        suite record whose content the caller may not see (``redact`` restores it
        twice). Raises one of ``stored_document.UNEXPECTED`` where it does not apply.
        """
        node = stored_document.parse(found.canonical)
        scalars = stored_document.scalars(node, found.sequence)
        content = found.content if view.content else None
        if content is not None and not view.shows_content_of(
            _EVENT_TYPES[str(scalars["event_type"])]
        ):
            raise stored_document.FastPathError("content withheld from a suite record")
        # What redact parses: a row it does not take (damaged, unusual) goes the exact way.
        wire = canonical.native_schema().restore(found.canonical, content)
        if not view.pii:  # as view.withhold clears it
            scalars.pop("actor.ip_address", None)
        c = Columns(scalars, stored_document.values(node), stored_document.texts(node, content))
        if self._fmt == "csv":
            return self._line(row(c))
        event = event_pb2.Event.FromString(wire)
        view.withhold(event, content is not None)
        return self._xml_of(c, event)

    def event(self, event: event_pb2.Event, sequence: int) -> str:
        """One event, at its sequence in the log (the exact path of :meth:`write`).

        The columns of CSV and XML are the index document's, built here from the
        protobuf event for those two only: JSON Lines built it for nothing until
        2026-12-06, a quarter of an export's time.
        """
        return self._encode(event, sequence)

    def _jsonl(self, event: event_pb2.Event, sequence: int) -> str:
        del sequence
        return one_line(event_json(event)) + "\n"

    def _csv(self, event: event_pb2.Event, sequence: int) -> str:
        return self._line(row(columns_of(event, sequence)))

    def _xml(self, event: event_pb2.Event, sequence: int) -> str:
        return self._xml_of(columns_of(event, sequence), event)

    @staticmethod
    def _xml_of(c: Columns, event: event_pb2.Event) -> str:
        """The ``<event>`` of an event's columns, with the event itself as JSON."""
        parts = ["<event>", *[""] * len(_XML_SCALARS)]  # "" for a scalar not set
        for name, value in c.scalars.items():
            place, start, end, written = _XML_SCALARS[name]
            parts[1 + place] = f"{start}{written(value)}{end}"
        multi: dict[str, list[str]] = {}
        families: dict[str, list[str]] = {"trust_signals": [], "attributes": []}
        for e in c.values:  # one pass; each list keeps the event's order
            head, _, name = e.field.partition(".")
            tag = _FAMILY_TAGS.get(head)
            if tag is None:
                multi.setdefault(e.field, []).append(_element(e.field, _entry_xml(e)[1]))
            else:
                kind, text = _entry_xml(e)
                families[head].append(
                    f"<{tag} name={_attribute(name)} type={kind}>{_xml_text(text)}</{tag}>"
                )
        for name in _MULTI_NAMES:
            parts += multi.get(name, ())
        parts += families["trust_signals"]
        parts += families["attributes"]
        parts += [_element(f.name, c.texts[f.name]) for f in catalogue.TEXTS if c.texts.get(f.name)]
        # The exact event: U+FFFE/U+FFFF (not allowed in XML) as JSON escapes, not replaced.
        exact = event_json(event).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
        parts.append(f"<json>{_escape(exact)}</json>")
        parts.append("</event>\n")
        return "".join(parts)


def _clean(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


_XML_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""What :func:`_escape` or :func:`_clean` replaces."""
_ATTRIBUTE_SPECIAL = re.compile("[&<>\r\n\t\"'\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""What ``quoteattr`` or :func:`_clean` replaces, or makes ``quoteattr`` quote otherwise."""


def _attribute(name: str) -> str:
    """``quoteattr(_clean(name))``, skipped when it is only the name in double quotes."""
    return quoteattr(_clean(name)) if _ATTRIBUTE_SPECIAL.search(name) else f'"{name}"'


def _escape(text: str) -> str:
    """XML text; a carriage return as a reference, or parsers read it as a line feed.

    Looked for first: four scans of a whole event's JSON are a tenth of ``escape``.
    """
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return escape(text, {"\r": "&#13;"})
    return text


def _element(name: str, text: str) -> str:
    return f"<{name}>{_xml_text(text)}</{name}>"


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
