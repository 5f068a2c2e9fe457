"""What the rules ask of one event, computed once however many rules ask it.

Fifty rules typically name a handful of field paths and detectors: each path's
values and each detector family's findings are computed at the first rule that
needs them and shared by the rest.
"""

from __future__ import annotations

from aiaudit.alerting.detectors import DETECTORS, EventTexts, Finding
from aiaudit.alerting.fields import Field, Value
from aiaudit.common.v1 import event_pb2


class EventMemo:
    """Field values and detector findings of one event, on demand."""

    __slots__ = ("_found", "_values", "event", "texts")

    def __init__(self, event: event_pb2.Event) -> None:
        """Nothing is computed until a rule asks."""
        self.event = event
        self.texts = EventTexts(event)
        self._values: dict[str, list[Value]] = {}
        self._found: dict[str, list[Finding]] = {}

    def values(self, field: Field) -> list[Value]:
        """Every value of a compiled field path (shared: callers must not modify it)."""
        got = self._values.get(field.path)
        if got is None:
            got = self._values[field.path] = field.get(self.event)
        return got

    def first_text(self, field: Field) -> str:
        """The field's first value as text ("" when it has none): for keys and summaries."""
        values = self.values(field)
        return str(values[0]) if values else ""

    def findings(self, family: str) -> list[Finding]:
        """Every finding of a detector family on this event."""
        got = self._found.get(family)
        if got is None:
            got = self._found[family] = DETECTORS[family](self.texts)
        return got
