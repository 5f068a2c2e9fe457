"""Built-in detectors: pure functions from text to findings (score plus evidence span).

Each detector looks at the parts of an event where its risk lives: injection in
what goes *into* the model (user messages, retrieved RAG chunks, tool results),
PII and secrets, harmful content, refusals and system-prompt leakage in what
comes *out*. Detectors run once per event however many rules use them
(``aiaudit.alerting.memo``).
"""

from __future__ import annotations

from collections.abc import Callable

from aiaudit.alerting.detectors import harmful, injection, leakage, pii, refusal
from aiaudit.alerting.detectors.base import EventTexts, Finding, Text, excerpt, mask

__all__ = ["DETECTORS", "EventTexts", "Finding", "Text", "excerpt", "family_of", "mask"]

_MESSAGES = "output.messages"
"""Refusals are looked for in what the model said, not in reasoning or tool arguments."""

EventDetector = Callable[[EventTexts], list[Finding]]

DETECTORS: dict[str, EventDetector] = {
    "prompt_injection": lambda t: injection.detect(t.inputs),
    "pii": lambda t: pii.detect_pii(t.outputs),
    "secrets": lambda t: pii.detect_secrets(t.outputs),
    "harmful": lambda t: harmful.detect(t.inputs + t.outputs),
    "refusal": lambda t: refusal.detect([x for x in t.outputs if x.field.startswith(_MESSAGES)]),
    "system_prompt_leak": lambda t: leakage.detect(t.system, t.outputs),
}
"""Detector families by name; findings are named ``family`` or ``family.kind``."""


def family_of(name: str) -> str:
    """``pii.credit_card`` belongs to family ``pii``."""
    return name.split(".", 1)[0]
