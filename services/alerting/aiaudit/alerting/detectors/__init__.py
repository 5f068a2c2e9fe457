"""Built-in detectors: pure functions from text to findings (score plus evidence span).

Each detector looks at the parts of an event where its risk lives: injection in
what goes *into* the model (user messages, retrieved RAG chunks, tool results),
PII and secrets, harmful content, refusals and system-prompt leakage in what
comes *out*. Detectors run once per event however many rules use them
(:class:`DetectorCache`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiaudit.alerting.detectors import harmful, injection, leakage, pii, refusal
from aiaudit.alerting.detectors.base import Finding, Text, excerpt, mask
from aiaudit.common.v1 import event_pb2

__all__ = ["DETECTORS", "DetectorCache", "Finding", "Text", "excerpt", "family_of", "mask"]

EventDetector = Callable[[event_pb2.Event], list[Finding]]

DETECTORS: dict[str, EventDetector] = {
    "prompt_injection": injection.detect_event,
    "pii": pii.detect_pii_event,
    "secrets": pii.detect_secrets_event,
    "harmful": harmful.detect_event,
    "refusal": refusal.detect_event,
    "system_prompt_leak": leakage.detect_event,
}
"""Detector families by name; findings are named ``family`` or ``family.kind``."""


class DetectorCache:
    """Runs each detector family at most once per event."""

    def __init__(self, event: event_pb2.Event) -> None:
        """Findings of one event, computed on demand."""
        self.event = event
        self._found: dict[str, list[Finding]] = {}

    def findings(self, family: str) -> list[Finding]:
        """Every finding of a detector family on this event."""
        if family not in self._found:
            self._found[family] = DETECTORS[family](self.event)
        return self._found[family]


def family_of(name: str) -> str:
    """``pii.credit_card`` belongs to family ``pii``."""
    return name.split(".", 1)[0]
